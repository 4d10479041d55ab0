"""One thread per publisher address that reads every message and hands it to the Hub.

Intake never waits for browsers: it only decodes and stores the newest message
per stream, so the publisher's queue for the dashboard stays empty however slow
the browsers are.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time

from realtime.subscribe import CurveClient, ReceiveCounters, ReceiveLimits, subscribe_raw

from .hub import Hub

log = logging.getLogger(__name__)


class Intake:
    """Subscribes to every address and feeds ``hub`` until ``stop()``.

    addresses: ZeroMQ endpoints; message i of address k goes to hub source k.
    curve: CurveClient for CURVE publishers, None = plain TCP.
    tick_s: how often, seconds, an idle thread looks at the stop flag.
    limits: ReceiveLimits of every subscriber socket (maximum message size, queue).
    The constructor connects (SubscribeError / ValueError for a bad address,
    naming it) before any thread starts; ``errors`` lists one line per thread
    that failed later; ``counters[k]`` (ReceiveCounters) of address k counts its
    connection drops (``disconnects``) and shares the hub's rejections of source k.
    """

    def __init__(self, addresses: tuple[str, ...], hub: Hub, curve: CurveClient | None = None,
                 tick_s: float = 0.2, limits: ReceiveLimits = ReceiveLimits()):
        self.errors: list[str] = []
        self.counters = [ReceiveCounters(rejections=hub.rejections[k]) for k in range(len(addresses))]
        self._hub = hub
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        primed = []
        try:
            for address, counters in zip(addresses, self.counters):
                # Every message in order: this thread reads at once, the hub keeps the newest.
                messages = subscribe_raw(address, curve=curve, tick_s=tick_s, latest_only=False,
                                         limits=limits, counters=counters)
                # The first next() connects, so a bad address fails here, in the caller's thread.
                primed.append((address, messages, next(messages)))
        except BaseException:
            for _, messages, _ in primed:
                messages.close()
            raise
        for index, (address, messages, first) in enumerate(primed):
            t = threading.Thread(target=self._run, args=(index, address, messages, first),
                                 name=f"dashboard-intake-{index}", daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self, index: int, address: str, messages, first) -> None:
        try:
            for data in itertools.chain([first], messages):
                if self._stop.is_set():
                    return
                if data is not None:
                    self._hub.offer(index, data, time.monotonic())
        except Exception as e:  # a dead intake must be visible, not silent
            line = f"{address}: intake stopped: {type(e).__name__}: {' '.join(str(e).split())}"
            self.errors.append(line)
            log.error(line)
        finally:
            messages.close()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Ask every thread to end and join them (each within timeout_s seconds)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout_s)

    @property
    def disconnects(self) -> list[int]:
        """Per address: times its connection dropped (oversize message, publisher gone); it reconnects."""
        return [c.disconnects for c in self.counters]

    @property
    def alive(self) -> int:
        """Number of intake threads still running."""
        return sum(t.is_alive() for t in self._threads)
