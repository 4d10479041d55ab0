"""OpenCV's Farneback on one pair of frames: the flow every shipped model was defined on."""
from __future__ import annotations

import cv2
import numpy as np

from .farneback import FarnebackParams


def opencv_flow(first: np.ndarray, second: np.ndarray, params: FarnebackParams = FarnebackParams()) -> np.ndarray:
    """Dense flow from ``first`` to ``second`` by ``cv2.calcOpticalFlowFarneback``.

    first, second: (H, W, 3) uint8 BGR or (H, W) uint8 gray frames of one size.
    Returns (2, H, W) float32: (dx, dy) in pixels of these frames, per frame pair.
    """
    gray = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if f.ndim == 3 else f for f in (first, second)]
    out = cv2.calcOpticalFlowFarneback(gray[0], gray[1], None, **params.opencv_kwargs())
    return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)
