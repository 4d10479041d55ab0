"""Motion memory: a per-pixel fading memory of the (compensated) flow of the last few seconds.

A flow pair sees 0.125 s of motion, so a vehicle that stops at a light vanishes
from every flow-gated map although it still sounds (the FlowGrad paper's own
failure analysis). :class:`MotionMemory` keeps, for every pixel, the strongest
motion it saw recently and lets it fade linearly to zero over ``seconds``:

    memory(t) = peak * w(t - t_peak),   w(a) = max(0, 1 - a / seconds)

where (peak, t_peak) is the pixel's held flow vector and the time it was seen.
A new flow sample replaces the held one wherever its magnitude reaches the
held one's decayed magnitude, so the memory never falls below the current
motion and a moving pixel's memory is its current flow. The result is a flow
field of the input's shape and units, so it can replace the flow input of any
model (flow_only, FlowGrad-H's gate, a learned model trained on it) without
changing the model or its ONNX graph.

Trails: without more, a moving vehicle would leave a memory along its whole
path (``speed * seconds`` pixels behind it), which widens every binarised map
far beyond the vehicle (docs/RESULTS.md). So each held peak also keeps the
picture's appearance at that pixel when it was seen (the grey level of the
pair's older frame on the flow grid, blurred, divided by the frame's median
so that a change of exposure does not count), and a held peak is dropped as
soon as the appearance has changed by more than ``change`` (a fraction of
the median grey): a stopped vehicle still looks the same and keeps its
memory; where a vehicle drove on, the road shows again and the memory is gone
(the pixel then holds the current motion). What was seen at a pixel moved on
by the held vector itself before it stopped (the peak's pair ends one step
later), so the held appearance is compared with the current one there, and
with the darkest and brightest within ``SHIFT_FRACTION`` of the grid's size
of that point, so that a few pixels of residual camera shake do not count as
a change either.

Holding one peak per pixel (not every sample of the window) costs O(1) per
pixel; it can under-read a pixel whose weaker but newer sample would have
outlasted the held one's fade (it then reads the held one's smaller value).

Units: flow in pixels (whatever grid and scale the caller feeds, usually
full-frame pixels per flow interval), times in seconds.
"""
from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np

# The FlowGrad paper's proposal: aggregate motion over a 5-second window.
MEMORY_SECONDS = 5.0
# A held peak is dropped where the appearance changed by more than this fraction of the frame's median grey.
APPEARANCE_CHANGE = 0.1
# Blur (Gaussian sigma) and shake tolerance (search radius) of the appearance, as fractions of the grid's
# height and width: the same on any flow grid, so that live (working grid) and offline (model grid) agree.
BLUR_FRACTION = 0.01
SHIFT_FRACTION = 0.01


def appearance(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The picture's appearance on a flow grid: (H, W) float32, the frame's grey level resized to
    ``hw`` = (H, W) (INTER_AREA), blurred by BLUR_FRACTION of the grid and divided by its median
    (so 1.0 = the frame's median grey, whatever the exposure).

    frame: (h, w) uint8 grey or (h, w, 3) uint8 BGR, any size.
    """
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or not (
            frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
        raise ValueError("frame must be an (h, w) or (h, w, 3) uint8 array, got "
                         f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}")
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    h, w = hw
    small = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(BLUR_FRACTION * w, 0.5), sigmaY=max(BLUR_FRACTION * h, 0.5))
    # A quarter of the pixels give the median to well under a grey level, at a sixteenth of the cost.
    small *= np.float32(1.0 / max(float(np.median(small[::4, ::4])), 1.0))
    return small


def default_for(model_name: str) -> bool:
    """Whether registry model ``model_name`` is fed the motion memory by default: its class's
    ``motion_memory`` attribute (set where the memory measurably helps, docs/RESULTS.md);
    False for a name outside the registry."""
    from flowgrad import models  # the models do not need the flow package: import on use only

    return model_name in models.names() and bool(getattr(models.model_class(model_name), "motion_memory", False))


class MotionMemory:
    """The fading per-pixel memory of a sequence of flow fields (see the module docstring).

    seconds: how long a sample lasts, seconds (> 0; MEMORY_SECONDS by default).
    change: how much the appearance may change, as a fraction of the frame's median
        grey, before a held peak is dropped (> 0; APPEARANCE_CHANGE by default).
    Feed flows and the frames they were seen on in time order with :meth:`update`;
    :meth:`field` is the memory at the newest update. A flow of another shape starts
    the memory afresh. Not thread-safe.
    """

    def __init__(self, seconds: float = MEMORY_SECONDS, change: float = APPEARANCE_CHANGE) -> None:
        for name, v in (("seconds", seconds), ("change", change)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        self.seconds = float(seconds)
        self.change = float(change)
        self.reset()

    @property
    def t(self) -> Optional[float]:
        """Time of the newest update, seconds; None before the first."""
        return self._t

    def reset(self) -> None:
        """Forget everything (e.g. on a camera switch or a gap in the stream)."""
        self._peak: Optional[np.ndarray] = None  # (2, H, W) float32 held vectors
        self._peak_mag: Optional[np.ndarray] = None  # (H, W) float32 their magnitudes
        # (H, W) float32 when they were seen, seconds after _t0 (float32 keeps 1 ms for days).
        self._peak_t: Optional[np.ndarray] = None
        self._weights: Optional[np.ndarray] = None  # (H, W) float32 decay weights at _t
        self._look: Optional[np.ndarray] = None  # (H, W) float32 appearance where each peak was seen
        self._t: Optional[float] = None
        self._t0 = 0.0

    def update(self, flow: np.ndarray, t: float, frame: np.ndarray,
               frame_hw: Optional[tuple[int, int]] = None) -> np.ndarray:
        """Add the flow field seen at time ``t`` on ``frame`` and return the memory then.

        flow: (2, H, W) float (dx, dy) in pixels; a pixel with a non-finite value counts as no motion.
        frame: the picture the flow is sampled on (the pair's older frame; see :func:`appearance`):
            (h, w) uint8 grey or (h, w, 3) uint8 BGR of any size.
        frame_hw: (H, W) of the frame whose pixels the flow is measured in; None: ``frame``'s own.
        t: seconds, later than the previous update (an earlier or equal t is a
            ValueError; call reset() after a clock jump).
        Returns :meth:`field` (a new (2, H, W) float32 array).
        """
        if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[0] != 2:
            raise ValueError(f"flow must be a (2, H, W) array, got {getattr(flow, 'shape', type(flow).__name__)}")
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"t must be finite, got {t}")
        if self._t is not None and t <= self._t:
            raise ValueError(f"t must increase: {t} after {self._t}")
        flow = flow.astype(np.float32, copy=False)
        look = appearance(frame, flow.shape[1:])
        if self._peak is None or self._peak.shape != flow.shape:
            self._peak = np.zeros(flow.shape, np.float32)
            self._peak_mag = np.zeros(flow.shape[1:], np.float32)
            self._peak_t = np.zeros(flow.shape[1:], np.float32)
            self._weights = np.zeros(flow.shape[1:], np.float32)
            self._look = look.copy()
            self._t0 = t
        now = np.float32(t - self._t0)
        w = self._weights
        # w = max(0, 1 - (now - t_peak) / seconds), in place: this runs once per flow field.
        np.subtract(self._peak_t, now, out=w)
        w *= np.float32(1.0 / self.seconds)
        w += np.float32(1.0)
        np.maximum(w, 0.0, out=w)
        fh, fw = frame.shape[:2] if frame_hw is None else frame_hw
        grid_per_px = (flow.shape[1] / fh, flow.shape[2] / fw)
        np.copyto(w, 0.0, where=self._changed(look, grid_per_px))  # the picture changed: what moved there has gone
        mag = np.hypot(flow[0], flow[1])
        take = mag >= self._peak_mag * w  # False where mag is NaN: no motion seen there
        np.copyto(self._look, look, where=take)
        np.copyto(self._peak, flow, where=take[None])
        np.copyto(self._peak_mag, mag, where=take)
        np.copyto(self._peak_t, now, where=take)
        np.copyto(w, 1.0, where=take)
        self._t = t
        return self.field()

    def _changed(self, look: np.ndarray, grid_per_px: tuple[float, float]) -> np.ndarray:
        """(H, W) bool: where the held appearance is darker than the darkest or brighter than the
        brightest current one within SHIFT_FRACTION of the grid around the point its held vector
        leads to, by more than ``change``. grid_per_px: (y, x) grid pixels per flow pixel."""
        h, w = look.shape
        kernel = np.ones((2 * round(SHIFT_FRACTION * h) + 1, 2 * round(SHIFT_FRACTION * w) + 1), np.uint8)
        ys, xs = np.indices((h, w), np.float32)
        map_x = xs + self._peak[0] * np.float32(grid_per_px[1])
        map_y = ys + self._peak[1] * np.float32(grid_per_px[0])
        brightest = cv2.remap(cv2.dilate(look, kernel), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        darkest = cv2.remap(cv2.erode(look, kernel), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return (self._look > brightest + np.float32(self.change)) | (self._look < darkest - np.float32(self.change))

    def field(self) -> np.ndarray:
        """The memory at the newest update: (2, H, W) float32, each held vector scaled by
        its decay weight (magnitude = the decayed peak magnitude). ValueError before any update."""
        if self._peak is None:
            raise ValueError("no flow seen yet")
        return self._peak * self._weights[None]
