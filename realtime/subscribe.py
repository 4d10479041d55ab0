"""Receive the heatmap stream (realtime.protocol) from a Publisher; a CLI to watch or record it.

    for msg in subscribe("tcp://127.0.0.1:5556", streams=["cam1"]):   # newest per stream and kind
        ...

    python -m realtime.subscribe tcp://127.0.0.1:5556 --stream cam1 --count 100 --record a.fgrec

``subscribe()`` gives a display what it needs by default: the newest message of
each stream and kind, however slowly it reads. ``latest_only=False`` gives every
message in order (recording, measuring loss) to a reader that keeps up.
Every subscriber socket is bounded (ReceiveLimits): a message over
max_message_bytes is refused before it is buffered, and the receive queue is a
few messages, so a flooding publisher cannot grow this process's memory.

Recording file (``--record``): the 8 bytes b"FGLREC1\\n", then per received
message a uint32 big-endian length and the raw wire message, as received.
``--record out.mp4`` (or .mkv) writes the overlay video instead (realtime.overlay_video).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import struct
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Iterator

import numpy as np
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from flowgrad.errors import FlowGradError, InputError

from realtime.overlay_video import VIDEO_SUFFIXES, OverlayVideoWriter
from realtime.protocol import (KINDS, MAX_TOPIC_BYTES, STREAM_NAME_RULE, Heatmap, ProtocolError, Rejections,
                               Status, decode, is_stream_name, topic)
from realtime.publisher import load_keypair

log = logging.getLogger(__name__)
RECORDING_MAGIC = b"FGLREC1\n"
_LENGTH = struct.Struct(">I")
MIB = 2 ** 20
# ZeroMQ reconnects by itself only after network errors; after a refused message or handshake we
# do: first this long after, doubling while nothing arrives in between (a refused CURVE key).
_RECONNECT_S = 0.2
_RECONNECT_MAX_S = 10.0
_READER_POLL_S = 0.1


class SubscribeError(InputError):
    """The subscriber could not connect (one-line message naming the address and the fix)."""


class SubscribeTimeout(FlowGradError, TimeoutError):
    """No message arrived within the requested number of seconds (a TimeoutError too)."""


@dataclasses.dataclass(frozen=True)
class CurveClient:
    """CURVE keys for a subscriber of a CURVE publisher.

    secret_key_file: this client's ``.key_secret`` file (its public ``.key`` must be
        in the publisher's authorized_keys_dir).
    server_key_file: the publisher's public ``.key`` file.
    """

    secret_key_file: Path
    server_key_file: Path


@dataclasses.dataclass(frozen=True)
class ReceiveLimits:
    """Memory bounds of one subscription: at most about
    (queue_messages + 1) x max_message_bytes in ZeroMQ, plus latest_bytes in
    latest-only mode, plus the kernel's socket buffers, whatever the publisher sends.

    max_message_bytes: ZeroMQ refuses a longer message from its length prefix,
        before buffering it (ZMQ_MAXMSGSIZE), and drops the connection; the
        subscriber counts a disconnect and reconnects. Default 16 MiB: the
        largest legitimate message is a map at model resolution (a float16
        1024x1024 map is 2 MiB) plus one JPEG frame (run_live sends 640 wide at
        quality 80, ~50 KB; a 3840x2160 frame of pure noise at quality 95,
        JPEG's worst case, measured 9.7 MB): 16 MiB holds both with room.
    queue_messages: messages ZeroMQ queues for this socket (ZMQ_RCVHWM). When it
        is full ZeroMQ stops reading, the publisher's own queue fills and the
        publisher drops messages for this subscriber (seq gaps), never blocking.
    latest_bytes: latest-only mode holds the newest message of each stream and
        kind, at most this many bytes in all; a message of a further stream
        beyond it is dropped and counted (ReceiveCounters.dropped).
    """

    max_message_bytes: int = 16 * MIB
    queue_messages: int = 8
    latest_bytes: int = 64 * MIB

    def __post_init__(self) -> None:
        if self.max_message_bytes < 1 or self.queue_messages < 1 or self.latest_bytes < self.max_message_bytes:
            raise ValueError(f"receive limits must be positive with latest_bytes >= max_message_bytes, "
                             f"got {self}")


@dataclasses.dataclass
class ReceiveCounters:
    """What one subscription refused or lost so far; updated while it runs, read any time.

    rejections: messages that did not decode, by reason (protocol.Rejections);
        subscribe() fills it, a subscribe_raw caller that decodes fills its own.
    disconnects: times the connection to the publisher dropped: a message over
        max_message_bytes, or the publisher went away. It reconnects by itself.
    dropped: latest-only messages of a new stream dropped at the latest_bytes bound.
    """

    rejections: Rejections = dataclasses.field(default_factory=Rejections)
    disconnects: int = 0
    dropped: int = 0


def subscribe(address: str, *, streams=None, kinds=KINDS, latest_only=True, timeout_s=None, curve=None,
              limits: ReceiveLimits = ReceiveLimits(),
              counters: ReceiveCounters | None = None) -> Iterator[Heatmap | Status]:
    """Decoded messages from ``address``; see subscribe_raw for the arguments.

    By default (latest_only=True) each next() gives the newest message of a
    stream and kind not yet given, so a slow display stays current and still sees
    every stream and its status; sequence numbers then have gaps. Pass
    latest_only=False for every message in order (a reader that keeps up:
    recording, counting loss); a slower reader then falls behind by up to the
    queues' length and the publisher drops the rest.
    A message that does not decode is skipped and counted in
    ``counters.rejections`` by reason (the first of each reason is logged as a
    warning); the messages after it keep coming.
    """
    counters = ReceiveCounters() if counters is None else counters
    for data in subscribe_raw(address, streams=streams, kinds=kinds, latest_only=latest_only,
                              timeout_s=timeout_s, curve=curve, limits=limits, counters=counters):
        try:
            msg = decode(data)
        except ProtocolError as e:
            if counters.rejections.add(e):
                log.warning("%s: rejected a message (%s): %s; further ones are counted", address, e.reason, e)
            continue
        yield msg


def subscribe_raw(address: str, *, streams=None, kinds=KINDS, latest_only=True, timeout_s=None, curve=None,
                  tick_s=None, limits: ReceiveLimits = ReceiveLimits(),
                  counters: ReceiveCounters | None = None) -> Iterator[bytes | None]:
    """Raw wire messages from the publisher at ``address``; the socket closes with the generator.

    streams: stream names to receive; None = all streams.
    kinds: any of "heatmap", "status".
    latest_only: True (default, for displays): a reader thread takes every
        message off the socket at once and keeps only the newest per topic (kind
        and stream); each next() gives the topic that has waited longest, so
        every stream and its status come through however slow the caller.
        False: every message in arrival order; a caller slower than the stream
        falls behind by the queues' length (ZeroMQ's and the publisher's), then
        the publisher drops messages for it. Recorders use False.
    timeout_s: raise SubscribeTimeout after this many seconds without a message.
    curve: CurveClient for a CURVE publisher; None = plain TCP.
    tick_s: if set, yield None after each tick_s seconds without a message, so a
        caller can do periodic work (print stats, check a deadline).
    limits: ReceiveLimits (maximum message size, queue length, latest-only bytes).
    counters: ReceiveCounters to update (disconnects, dropped); None = not kept.
    The first messages after connecting may be missed (ZeroMQ's slow joiner).
    """
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds {tuple(kinds)} must be a non-empty subset of {KINDS}")
    prefixes = [topic(k, s) for k in kinds for s in streams] if streams else \
        [f"{k}/".encode() for k in kinds]
    counters = ReceiveCounters() if counters is None else counters
    context = zmq.Context()
    link = None
    try:
        link = _Link(context, address, prefixes, limits, curve, counters)
        if latest_only:
            yield from _receive_newest(link, _Newest(limits.latest_bytes, counters), timeout_s, tick_s)
        else:
            yield from _receive_in_order(link, timeout_s, tick_s)
    finally:
        if link is not None:
            link.close()
        context.term()


class _Link:
    """One SUB socket, bounded by ReceiveLimits, that reconnects after ZeroMQ drops it.

    ZeroMQ ends a connection that sends a message over ZMQ_MAXMSGSIZE and, as it
    treats that as a protocol error, never reconnects it: a monitor socket sees
    the drop, the link counts it and connects again after _RECONNECT_S, backing
    off to _RECONNECT_MAX_S while drops follow each other without a message.
    Used from one thread at a time (handing it to another at a thread start or join).
    """

    def __init__(self, context: zmq.Context, address: str, prefixes: list[bytes], limits: ReceiveLimits,
                 curve: CurveClient | None, counters: ReceiveCounters):
        self.address, self.counters = address, counters
        self.reconnect_at: float | None = None
        self.streak = 0  # drops since the last message
        self.sock = context.socket(zmq.SUB)
        self.monitor = None
        try:
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.setsockopt(zmq.MAXMSGSIZE, limits.max_message_bytes)
            self.sock.setsockopt(zmq.RCVHWM, limits.queue_messages)
            if curve is not None:
                _set_curve(self.sock, curve)
            for p in prefixes:
                self.sock.setsockopt(zmq.SUBSCRIBE, p)
            self.monitor = self.sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
            self.sock.connect(address)
        except zmq.ZMQError as e:
            self.close()
            raise SubscribeError(f"{address}: cannot connect ({zmq.strerror(e.errno)}); use an endpoint "
                                 "such as tcp://127.0.0.1:5556") from None
        except SubscribeError:
            self.close()
            raise

    def poller(self) -> zmq.Poller:
        """A poller for the data socket and the monitor."""
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        return poller

    def tend(self, ready: dict, now: float) -> None:
        """Count drops the monitor reported (``ready`` from the poller); reconnect when due."""
        if self.monitor in ready:
            while self.monitor.poll(0):
                event = recv_monitor_message(self.monitor)["event"]
                if event == zmq.EVENT_DISCONNECTED:
                    self.counters.disconnects += 1
                    self.reconnect_at = now + min(_RECONNECT_S * 2 ** self.streak, _RECONNECT_MAX_S)
                    self.streak = min(self.streak + 1, 16)
                elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:  # ZeroMQ reconnected by itself
                    self.reconnect_at = None
        if self.reconnect_at is not None and now >= self.reconnect_at:
            self.reconnect_at = None
            try:
                self.sock.disconnect(self.address)
            except zmq.ZMQError:  # ZeroMQ had already forgotten the endpoint
                pass
            self.sock.connect(self.address)

    def recv(self) -> bytes:
        """The next message (zmq.Again if none is queued); a message ends a backoff."""
        data = self.sock.recv(zmq.NOBLOCK)
        self.streak = 0
        return data

    def close(self) -> None:
        """Close the monitor and the socket (at once, dropping anything queued)."""
        if self.monitor is not None:
            self.sock.disable_monitor()
            self.monitor.close(linger=0)
            self.monitor = None
        self.sock.close(linger=0)


def _set_curve(sock: zmq.Socket, curve: CurveClient) -> None:
    """Configure sock as a CURVE client with the given key files."""
    try:
        public, secret = load_keypair(curve.secret_key_file)
    except ValueError as e:
        raise SubscribeError(str(e)) from None
    try:
        server_public, _ = zmq.auth.load_certificate(str(curve.server_key_file))
    except (OSError, ValueError) as e:
        raise SubscribeError(f"{curve.server_key_file}: cannot read the publisher's public key "
                             f"({e})") from None
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server_public


def _receive_in_order(link: _Link, timeout_s: float | None, tick_s: float | None) -> Iterator[bytes | None]:
    """Every message of link's socket in arrival order; None per idle tick; SubscribeTimeout."""
    poller = link.poller()
    clock = _IdleClock(timeout_s, tick_s)
    while True:
        wait = _until(time.monotonic(), *clock.deadlines(), link.reconnect_at)
        ready = dict(poller.poll(None if wait is None else wait * 1000))
        now = time.monotonic()
        link.tend(ready, now)
        if link.sock in ready:
            clock.received(now)
            yield link.recv()
        elif clock.idle(now):
            yield None


class _IdleClock:
    """A receive loop's two clocks: SubscribeTimeout after ``timeout_s`` seconds without a
    message, and an idle tick (the loop yields None) every ``tick_s`` seconds without one;
    either None = never."""

    def __init__(self, timeout_s: float | None, tick_s: float | None):
        self.timeout_s, self.tick_s = timeout_s, tick_s
        self.received(time.monotonic())

    def received(self, now: float) -> None:
        """A message arrived at monotonic ``now``: both clocks restart."""
        self.last = now
        self.next_tick = None if self.tick_s is None else now + self.tick_s

    def deadlines(self) -> tuple[float | None, float | None]:
        """(next tick, timeout), monotonic seconds, for :func:`_until`."""
        return self.next_tick, None if self.timeout_s is None else self.last + self.timeout_s

    def idle(self, now: float) -> bool:
        """After a wait that brought no message: raise SubscribeTimeout when it timed out;
        True when an idle tick is due (and the next one is scheduled)."""
        if self.timeout_s is not None and now - self.last >= self.timeout_s:
            raise SubscribeTimeout(f"no message within {self.timeout_s:g} s")
        if self.next_tick is not None and now >= self.next_tick:
            self.next_tick = now + self.tick_s
            return True
        return False


def _until(now: float, *deadlines: float | None) -> float | None:
    """Seconds from ``now`` to the nearest of the monotonic deadlines given (0 if past); None if none."""
    due = [d for d in deadlines if d is not None]
    return None if not due else max(0.0, min(due) - now)


class _Newest:
    """The newest raw message per topic, put by a reader thread, taken oldest-waiting topic first.

    Holds at most ``budget`` bytes, counting _ENTRY_BYTES more per topic for the
    bookkeeping, so many tiny messages of made-up streams cannot grow it either.
    """

    _ENTRY_BYTES = 256

    def __init__(self, budget: int, counters: ReceiveCounters):
        self._budget, self._counters = budget, counters
        self._items: dict[bytes, bytes] = {}
        self._held = 0
        self._error: BaseException | None = None
        self._ready = threading.Condition()

    def put(self, data: bytes) -> None:
        """Keep data as its topic's newest (a replaced topic keeps its place in the order)."""
        key = data[:data.find(b"\n", 0, MAX_TOPIC_BYTES) + 1]  # b"" without a topic: decode rejects those
        with self._ready:
            old = self._items.get(key)
            if old is not None:
                self._held -= len(old) + self._ENTRY_BYTES
            if self._held + len(data) + self._ENTRY_BYTES > self._budget:
                self._counters.dropped += 1
                if old is not None:  # stale now, and its successor does not fit
                    del self._items[key]
                return
            self._items[key] = data
            self._held += len(data) + self._ENTRY_BYTES
            self._ready.notify()

    def take(self, timeout_s: float | None) -> bytes | None:
        """The message of the topic that has waited longest; None if none within timeout_s.

        Raises the reader thread's error, if it failed.
        """
        with self._ready:
            if not self._items and self._error is None:
                self._ready.wait(timeout_s)
            if self._error is not None:
                raise self._error
            if not self._items:
                return None
            data = self._items.pop(next(iter(self._items)))
            self._held -= len(data) + self._ENTRY_BYTES
            return data

    def fail(self, error: BaseException) -> None:
        """Hand the reader thread's error to the taker."""
        with self._ready:
            self._error = error
            self._ready.notify()


def _receive_newest(link: _Link, newest: _Newest, timeout_s: float | None,
                    tick_s: float | None) -> Iterator[bytes | None]:
    """Newest message per topic (a reader thread empties the socket as messages arrive)."""
    stop = threading.Event()
    # Not a daemon: at interpreter exit it is joined (it ends within one poll once the main
    # thread has finished) instead of being left inside ZeroMQ while the interpreter tears
    # the context down, which can crash the process when a script exits holding the iterator.
    reader = threading.Thread(target=_read_into, args=(link, newest, stop), daemon=False,
                              name=f"subscribe-reader {link.address}")
    reader.start()
    try:
        clock = _IdleClock(timeout_s, tick_s)
        while True:
            data = newest.take(_until(time.monotonic(), *clock.deadlines()))
            now = time.monotonic()
            if data is not None:
                clock.received(now)
                yield data
            elif clock.idle(now):
                yield None
    finally:
        stop.set()
        reader.join()


def _read_into(link: _Link, newest: _Newest, stop: threading.Event) -> None:
    """Reader thread: move every message from link's socket into newest until stop is set
    or the main thread has finished (the interpreter is exiting)."""
    try:
        poller = link.poller()
        while not stop.is_set() and threading.main_thread().is_alive():
            wait = _until(time.monotonic(), time.monotonic() + _READER_POLL_S, link.reconnect_at)
            ready = dict(poller.poll(wait * 1000))
            link.tend(ready, time.monotonic())
            if link.sock in ready:
                for _ in range(1000):  # a bounded batch: a flood cannot keep stop unchecked
                    try:
                        newest.put(link.recv())
                    except zmq.Again:
                        break
    except Exception as e:  # the taker raises it, so a failed reader is not a silent hang
        newest.fail(e)


def read_recording(path: str | Path) -> Iterator[Heatmap | Status]:
    """Decoded messages of a ``--record`` file, in the order received.

    Raises ProtocolError naming the file if it is not a recording or is truncated.
    """
    with open(path, "rb") as f:
        if f.read(len(RECORDING_MAGIC)) != RECORDING_MAGIC:
            raise ProtocolError(f"{path}: not a heatmap-stream recording (bad magic)")
        while head := f.read(_LENGTH.size):
            data = f.read(_LENGTH.unpack(head)[0]) if len(head) == _LENGTH.size else None
            if data is None or len(data) != _LENGTH.unpack(head)[0]:
                raise ProtocolError(f"{path}: truncated recording at byte {f.tell()}")
            yield decode(data)


class _Stats:
    """Counts, seq gaps and message ages (now - capture_time) per second and overall.

    counters: the subscription's ReceiveCounters; rejections and disconnects are read from it.
    """

    def __init__(self, counters: ReceiveCounters | None = None, window: int = 10_000):
        self.counters = ReceiveCounters() if counters is None else counters
        self.total = self.second = self.gaps = 0
        self.last_seq: dict[str, int] = {}
        # Bounded: a long run keeps the most recent ages for the summary percentiles.
        self.ages_all: deque[float] = deque(maxlen=window)
        self.ages_second: list[float] = []

    def add(self, msg: Heatmap | Status, now: float) -> None:
        """Count one decoded message received at UNIX time ``now``."""
        self.total += 1
        self.second += 1
        if isinstance(msg, Heatmap):
            last = self.last_seq.get(msg.stream)
            # A seq at or below the last one means the publisher restarted: no gap.
            if last is not None and msg.seq > last + 1:
                self.gaps += msg.seq - last - 1
            self.last_seq[msg.stream] = msg.seq
            age = now - msg.capture_time
            self.ages_all.append(age)
            self.ages_second.append(age)

    def line(self, seconds: float) -> str:
        """The per-second stats line; starts a new second."""
        text = f"{self.second / seconds:6.1f} msg/s  age {_percentiles(self.ages_second)}  " \
               f"seq gaps {self.gaps}  rejected {self.counters.rejections.total}"
        self.second, self.ages_second = 0, []
        return text

    def summary(self, seconds: float) -> str:
        """The end-of-run summary line (rejections by reason, connection drops)."""
        return (f"summary: {self.total} messages in {seconds:.1f} s, streams "
                f"{sorted(self.last_seq) or '-'}, age {_percentiles(list(self.ages_all))}, "
                f"seq gaps {self.gaps}, rejected {self.counters.rejections}, "
                f"disconnects {self.counters.disconnects}")


def _percentiles(ages: list[float]) -> str:
    """'p50 X ms p95 Y ms' of ages in seconds, or '-'."""
    if not ages:
        return "p50 - p95 -"
    p50, p95 = np.percentile(np.asarray(ages) * 1000, [50, 95])
    return f"p50 {p50:.1f} ms p95 {p95:.1f} ms"


def _video_line(video: OverlayVideoWriter) -> str:
    """The end-of-run line of an overlay-video recording."""
    if not video.frames:
        return "video: no heatmap received, nothing written"
    skipped = f"; skipped streams {sorted(video.skipped_streams)}" if video.skipped_streams else ""
    return f"video: {video.frames} frames, {video.duration_s:.1f} s of {video.stream!r} in {video.path}{skipped}"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m realtime.subscribe",
        description="Watch a FlowGrad Live heatmap stream: one stats line per second "
                    "(messages/s, age = now - capture_time p50/p95 in ms, seq gaps, "
                    "rejected messages) and a summary at the end (rejections by reason, "
                    "connection drops). A message that does not decode is counted, its "
                    "first of each reason printed, and the stream goes on. Ctrl-C stops with "
                    "the summary. Exit status 2 for a bad address or argument.",
        epilog="Recording format: b'FGLREC1\\n', then per message a uint32 big-endian "
               "length and the raw wire message (docs/PROTOCOL.md); read it back with "
               "realtime.subscribe.read_recording(path). Ages assume the publisher's and "
               "this machine's clocks agree.")
    parser.add_argument("address", help="publisher endpoint, e.g. tcp://127.0.0.1:5556")
    parser.add_argument("--stream", action="append", metavar="NAME",
                        help="receive only this stream (repeatable; default: all)")
    parser.add_argument("--latest", action="store_true",
                        help="keep only the newest message of each stream and kind, as a display "
                             "should (subscribe() in Python does this by default): no backlog when "
                             "this subscriber is slow; seq gaps are then expected. Without it every "
                             "message is received in order (what --record needs, and seq gaps then "
                             "measure real loss)")
    parser.add_argument("--count", type=int, metavar="N", help="stop after N messages")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--record", type=Path, metavar="FILE",
                        help="write every received message to FILE (format below); a FILE ending in "
                             ".mp4 or .mkv gets the overlay video instead: each frame with its heatmap "
                             "blended in the JET colour map, timed by capture_time, one stream (the "
                             "first seen unless --stream), no audio (the stream carries none)")
    parser.add_argument("--max-message-mb", type=float, default=ReceiveLimits.max_message_bytes / MIB,
                        metavar="MB", help="refuse messages larger than this many MiB (default %(default)g): "
                                           "ZeroMQ drops the connection on one, this subscriber counts a "
                                           "disconnect and reconnects")
    parser.add_argument("--curve-secret", type=Path, metavar="FILE",
                        help="this client's .key_secret file, for a CURVE publisher (with --curve-server-key)")
    parser.add_argument("--curve-server-key", type=Path, metavar="FILE",
                        help="the publisher's public .key file (with --curve-secret)")
    args = parser.parse_args(argv)
    if (args.curve_secret is None) != (args.curve_server_key is None):
        parser.error("--curve-secret and --curve-server-key go together")
    if args.count is not None and args.count < 1 or args.duration is not None and args.duration <= 0:
        parser.error("--count and --duration must be positive")
    bad = [name for name in args.stream or () if not is_stream_name(name)]
    if bad:
        parser.error(f"--stream {bad[0]!r}: a stream name is {STREAM_NAME_RULE}")
    if not 0 < args.max_message_mb <= 4096:
        parser.error("--max-message-mb must be in (0, 4096]")
    return args


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = _parse_args(argv)
    stats = _Stats()
    max_bytes = max(1, round(args.max_message_mb * MIB))
    limits = ReceiveLimits(max_message_bytes=max_bytes,
                           latest_bytes=max(ReceiveLimits.latest_bytes, max_bytes))
    start = tick = time.monotonic()
    as_video = args.record is not None and args.record.suffix.lower() in VIDEO_SUFFIXES
    try:
        record = open(args.record, "wb") if args.record and not as_video else None
        video = OverlayVideoWriter(args.record, stream=(args.stream or [None])[0]) if as_video else None
    except OSError as e:
        print(f"error: {args.record}: cannot write the recording ({e.strerror})", file=sys.stderr)
        return 2
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    curve = CurveClient(args.curve_secret, args.curve_server_key) if args.curve_secret else None
    # Without --latest every message, in order: the recorder keeps all it receives.
    messages = subscribe_raw(args.address, streams=args.stream, latest_only=args.latest,
                             tick_s=0.2, curve=curve, limits=limits, counters=stats.counters)
    try:
        if record:
            record.write(RECORDING_MAGIC)
        for data in messages:
            if data is not None:
                if record:
                    record.write(_LENGTH.pack(len(data)) + data)
                try:
                    msg = decode(data)
                except ProtocolError as e:
                    if stats.counters.rejections.add(e):
                        print(f"subscribe: rejected a message ({e.reason}): {e}; further ones are "
                              "counted", file=sys.stderr, flush=True)
                else:
                    stats.add(msg, time.time())
                    if video and isinstance(msg, Heatmap):
                        video.add(msg)
            now = time.monotonic()
            if now - tick >= 1:
                print(stats.line(now - tick), flush=True)
                tick = now
            if args.count and stats.total + stats.counters.rejections.total >= args.count or \
                    args.duration and now - start >= args.duration:
                break
    except InputError as e:  # a bad address or key, a video that cannot be written: one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        messages.close()
        if record:
            record.close()
        if video:
            video.close()
    print(stats.summary(time.monotonic() - start), flush=True)
    if video:
        print(_video_line(video), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
