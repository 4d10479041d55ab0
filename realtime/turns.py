"""Turns for several cameras' map computations: at most N at once, first come first served.

With several cameras on a CPU, each stream's flow and inference run as one job
(Pipeline's ``turns``). Letting every camera's job run at once shares the cores
among all of them, so every map takes as long as all of them together; taking
turns, N at a time (N = the engine's workers, :class:`~realtime.live.config.ThreadBudget`),
gives each job whole cores: the same maps per second, each sooner, and its frame
is picked when its turn comes, so it is the newest (issue 20).
"""
from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager
from typing import Iterator

_POLL_S = 0.1  # how often a waiting caller looks at its stop flag


class Turns:
    """At most ``at_once`` holders at a time; waiting callers are served in arrival order.

    ``turn(stop)`` is a context manager yielding True while the caller holds a turn,
    or False (holding none) when ``stop`` (a threading.Event) was set while it waited.
    """

    def __init__(self, at_once: int) -> None:
        if isinstance(at_once, bool) or not isinstance(at_once, int) or at_once < 1:
            raise ValueError(f"at_once must be a whole number >= 1, got {at_once!r}")
        self.at_once = at_once
        self._holders = 0
        self._queue: deque = deque()  # waiting callers' tickets, oldest first
        self._cond = threading.Condition()

    @property
    def holders(self) -> int:
        """Turns held now."""
        return self._holders

    @contextmanager
    def turn(self, stop: threading.Event) -> Iterator[bool]:
        """Wait for a turn (in arrival order) and hold it for the ``with`` block; yields False at
        once, holding nothing, when ``stop`` is set before the turn comes."""
        if not self._wait_for_turn(stop):
            yield False
            return
        try:
            yield True
        finally:
            with self._cond:
                self._holders -= 1
                self._cond.notify_all()

    def _wait_for_turn(self, stop: threading.Event) -> bool:
        """Queue, wait until first in line with a turn free, take it: True; False (out of the
        queue) when ``stop`` is set first."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            while not (self._queue[0] is ticket and self._holders < self.at_once):
                if stop.is_set():
                    self._queue.remove(ticket)
                    self._cond.notify_all()  # the next in line may now be first
                    return False
                self._cond.wait(_POLL_S)
            self._queue.popleft()
            self._holders += 1
            self._cond.notify_all()  # the next in line may take a turn still free
            return True
