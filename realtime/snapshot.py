"""The run's snapshot: the most telling map of the last seconds, as a captioned PNG.

The last map of a run is a poor picture: the vehicle may be leaving the frame.
:class:`SnapshotSink` passes every message on to the publisher and keeps, of the
maps whose capture time lies in the last ``window_s`` seconds, the one whose peak
stands out most from the rest of the map (:func:`contrast`).
"""
from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from .picture import blend, map_opacity, message_caption, with_caption
from .protocol import Heatmap


def contrast(heatmap: np.ndarray) -> float:
    """How much the map's peak stands out: max - mean of the (H, W) map in [0, 1].

    0 for a blank or uniform map; near 1 for a single bright spot on a dark map.
    """
    return float(np.max(heatmap) - np.mean(heatmap))


def direction_caption(doa: Optional[dict]) -> list[str]:
    """The caption line of a message's ``doa`` field (docs/PROTOCOL.md), e.g. "direction heard:
    azimuth +12.3 deg, confidence 0.81"; [] without one."""
    if doa is None:
        return []
    elevation = doa.get("elevation_deg")
    up = "" if elevation is None else f", elevation {elevation:+.1f} deg"
    return [f"direction heard: azimuth {doa['azimuth_deg']:+.1f} deg{up}, confidence {doa['confidence']:.2f}"]


class SnapshotSink:
    """Calls ``publish(msg)`` for every message and keeps the best recent map with a frame.

    window_s: the snapshot is chosen among the maps captured in the last
        ``window_s`` seconds before the newest one (default 5 s).
    Memory stays bounded: the kept maps have strictly falling contrast (a
    monotonic queue), so at most the maps of one window are held, usually a few.
    """

    def __init__(self, publish: Callable[[object], None], window_s: float = 5.0):
        self.publish, self.window_s = publish, window_s
        self._best: deque[tuple[float, Heatmap]] = deque()

    def __call__(self, msg) -> None:
        self.publish(msg)
        if isinstance(msg, Heatmap) and msg.frame_jpeg is not None:
            self.offer(msg)

    def offer(self, msg: Heatmap) -> None:
        """Consider one map for the snapshot."""
        score = contrast(msg.heatmap)
        while self._best and self._best[-1][0] <= score:
            self._best.pop()
        self._best.append((score, msg))
        while self._best[0][1].capture_time < msg.capture_time - self.window_s:
            self._best.popleft()

    @property
    def chosen(self) -> Optional[Heatmap]:
        """The map the snapshot shows, None before any map with a frame."""
        return self._best[0][1] if self._best else None

    def write(self, path: Path) -> Optional[Path]:
        """Write the chosen map over its frame (fainter when quiet), captioned (stream, model,
        capture time, the direction heard when the message has one, colour scale), to the PNG
        ``path``; None when no map with a frame was published."""
        msg = self.chosen
        if msg is None:
            return None
        frame = cv2.imdecode(np.frombuffer(msg.frame_jpeg, np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            return None
        picture = with_caption(blend(frame, msg.heatmap, map_opacity(msg.quiet)),
                               message_caption(msg) + direction_caption(msg.doa))
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), picture):
            raise OSError(f"{path}: cannot write the snapshot PNG")
        return path
