"""The newest message of every stream, shared between the intake threads and the web server.

The dashboard keeps one entry per (source, kind, stream): a new message replaces
the old one, so memory stays at one message per stream whatever the rates, and
each browser is sent only what changed since it last looked (newest-only).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Callable

from realtime.protocol import Heatmap, ProtocolError, Rejections, decode, encode

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Entry:
    """The newest message of one stream of one source.

    source: index of the publisher address in DashboardConfig.connect.
    kind: "heatmap" or "status"; stream: the stream's name.
    version: hub-wide counter, larger = newer (browsers ask for what is newer).
    received: time.monotonic() seconds when the dashboard received it.
    data: the wire message (docs/PROTOCOL.md); heatmaps re-encoded as uint8 so
        the page decodes a single map dtype.
    seq: the heatmap's seq, None for status.
    """

    source: int
    kind: str
    stream: str
    version: int
    received: float
    data: bytes
    seq: int | None


class Hub:
    """Thread-safe store of the newest Entry per (source, kind, stream).

    sources: number of publisher addresses (valid source indices 0..sources-1).
    max_streams: streams kept per source; messages of further streams are
        counted in ``ignored`` and dropped, so a misbehaving publisher cannot grow memory.
    on_change: called (from the offering thread, outside the lock) after each new entry.
    Counters: ``received`` (accepted messages), ``rejected`` (undecodable, all
    sources), ``rejections[source]`` (protocol.Rejections: counts by reason and the
    newest reason's text; rejection_counts() gives them JSON-ready), ``ignored``
    (over max_streams).
    """

    def __init__(self, sources: int, max_streams: int, on_change: Callable[[], None]):
        if sources < 1 or max_streams < 1:
            raise ValueError(f"need at least one source and one stream, got {sources} and {max_streams}")
        self.sources, self.max_streams = sources, max_streams
        self.received = self.ignored = 0
        self.rejections = [Rejections() for _ in range(sources)]
        self._on_change = on_change
        self._entries: dict[tuple[int, str, str], Entry] = {}
        self._streams: list[set[str]] = [set() for _ in range(sources)]
        self._version = 0
        self._lock = threading.Lock()

    def offer(self, source: int, data: bytes, now: float) -> bool:
        """Validate and keep one wire message from ``source`` received at monotonic ``now``.

        Returns False (and counts it) for a message that does not decode or
        belongs to a stream beyond max_streams. Raises nothing for any bytes.
        """
        heatmap = False
        try:
            msg = decode(data)
            heatmap = isinstance(msg, Heatmap)
            if heatmap:
                data = encode(msg, "uint8")
        except ProtocolError as e:
            self._reject(source, e)
            return False
        except ValueError as e:  # decode and encode check alike, so this would be a bug: keep serving
            self._reject(source, ProtocolError(f"decoded but cannot be re-encoded: {e}", "not re-encodable"))
            return False
        kind = "heatmap" if heatmap else "status"
        with self._lock:
            known = self._streams[source]
            if msg.stream not in known and len(known) >= self.max_streams:
                self.ignored += 1
                return False
            known.add(msg.stream)
            self._version += 1
            self.received += 1
            self._entries[(source, kind, msg.stream)] = Entry(
                source, kind, msg.stream, self._version, now, bytes(data), msg.seq if heatmap else None)
        self._on_change()
        return True

    @property
    def rejected(self) -> int:
        """Messages rejected so far, all sources together."""
        with self._lock:
            return sum(r.total for r in self.rejections)

    def rejection_counts(self) -> list[dict]:
        """Per source index: {"total", "by_reason": {reason: count}, "last": newest error text}."""
        with self._lock:
            return [r.as_dict() for r in self.rejections]

    def _reject(self, source: int, error: ProtocolError) -> None:
        """Count a rejected message of ``source``; log the first of each reason."""
        with self._lock:
            new = self.rejections[source].add(error)
        if new:
            log.warning("dashboard: source %d: rejected a message (%s): %s; further ones are counted",
                        source, error.reason, error)

    def since(self, version: int) -> tuple[int, list[Entry]]:
        """(newest version, entries newer than ``version`` ordered oldest first)."""
        with self._lock:
            newer = [e for e in self._entries.values() if e.version > version]
            return self._version, sorted(newer, key=lambda e: e.version)

    def snapshot(self, now: float) -> list[dict]:
        """JSON-ready summary per entry: source, kind, stream, seq, age_s (at monotonic ``now``), bytes."""
        with self._lock:
            entries = list(self._entries.values())
        return [{"source": e.source, "kind": e.kind, "stream": e.stream, "seq": e.seq,
                 "age_s": now - e.received, "bytes": len(e.data)}
                for e in sorted(entries, key=lambda e: (e.source, e.stream, e.kind))]
