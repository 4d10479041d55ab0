"""A one-item mailbox between pipeline stages: the newest item wins.

Live video must never queue up: a stage that falls behind should work on the
newest frame, not on a backlog. ``LatestSlot.put`` therefore replaces an item
nobody has taken yet and counts it as a drop, so memory stays at one item per
stage whatever the speeds, and every drop is visible in the stats.
"""
from __future__ import annotations

import threading
from typing import Generic, Optional, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Holds at most one item; ``put`` overwrites (a counted drop), ``get`` waits.

    name: the stage's name, used in stats and reprs.
    Attributes: ``put_count``, ``dropped`` (items overwritten before anyone took
    them). Thread-safe for any number of producers and consumers.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.put_count = 0
        self.dropped = 0
        self._item: Optional[T] = None
        self._full = False
        self._closed = False
        self._takers = 0  # consumers waiting in get()
        self._cond = threading.Condition()

    def put(self, item: T) -> None:
        """Offer ``item``; an unread older item is discarded and counted in ``dropped``."""
        with self._cond:
            if self._closed:
                return
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self.put_count += 1
            self._cond.notify_all()

    def get(self, timeout: float) -> Optional[T]:
        """The newest item, waiting up to ``timeout`` seconds; None on timeout or once closed."""
        with self._cond:
            if not self._full and not self._closed:
                self._takers += 1
                self._cond.notify_all()  # a producer may be waiting for a taker
                try:
                    self._cond.wait(timeout)
                finally:
                    self._takers -= 1
            if not self._full or self._closed:
                return None
            item, self._item, self._full = self._item, None, False
            self._cond.notify_all()  # a producer may be waiting for the slot to empty
            return item

    def wait_empty(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no item is waiting; True when none is (a
        producer may then make the next one without it being overwritten unused)."""
        with self._cond:
            if self._full and not self._closed:
                self._cond.wait_for(lambda: not self._full or self._closed, timeout)
            return not self._full and not self._closed

    def close(self) -> None:
        """Wake every waiter; later puts are ignored and gets return None."""
        with self._cond:
            self._closed = True
            self._item, self._full = None, False
            self._cond.notify_all()

    def __repr__(self) -> str:
        return f"<LatestSlot {self.name!r} put={self.put_count} dropped={self.dropped}>"
