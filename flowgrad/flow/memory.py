"""Motion memory: for every pixel, whether something there moved in the last few seconds and still looks the same.

A flow pair sees 0.125 s of motion, so a vehicle that stops at a light vanishes
from every flow-gated map although it still sounds (the FlowGrad paper's own
failure analysis). :class:`MotionMemory` remembers, for every pixel, the last
time it moved (flow of at least ``moved_px``) and the direction it moved in,
and shows there a motion of a FIXED magnitude that fades linearly to zero over
``seconds``:

    memory(t) = level * w(t - t_moved) * direction,   w(a) = max(0, 1 - a / seconds)

where ``level`` is a typical moving speed of the current picture (the
``level_quantile`` quantile of the flow magnitudes of at least ``moved_px``,
kept from the last flow that had any). So a vehicle that has just stopped counts
like a moving one, whatever its speed when it stopped, and fades; the returned
field is max(|live flow|, memory) per pixel (the live vector where it is the
larger), so it can replace the flow input of any model (flow_only, FlowGrad-H's
gate, a learned model trained on it) without changing the model.

Two tests keep the memory on the vehicle and off the road (docs/RESULTS.md, issue 18):
- appearance unchanged: each held motion keeps the picture's appearance at the
  pixel when it moved (:func:`appearance`: grey on the flow grid, blurred,
  divided by the frame's median) and is dropped as soon as the appearance there
  has changed by more than ``change`` (a fraction of the median grey), compared
  where the held vector leads (what moved there, one step on) and with the
  darkest and brightest within ``SHIFT_FRACTION`` of the grid (residual camera
  shake): where a vehicle drove on, the road shows again and the memory is gone.
- not background: the memory shows only where the picture differs from a slowly
  learnt background (the appearance averaged at ``background_rate`` per sample,
  learnt only where nothing moves or is held), again by more than ``change``
  beyond the darkest and brightest within the shake tolerance. Farneback's flow
  spreads a few pixels onto the road around a moving vehicle; those road pixels
  "moved" and still look like road, but they are background, so they show nothing.
  The background starts as the first picture, known only where nothing moved
  then (a vehicle driving at the start leaves no ghost); a vehicle that stood
  still at the start is background until it moves away.

A shaking camera moves the whole picture between samples, by more than the
tolerance above under a strong shake (12 grid pixels of 224 under a 2 % shake):
compensated flow no longer shows it, but the held appearance and the background
would sit off the scene by the shake, every held vehicle would look changed and
be dropped. So :meth:`MotionMemory.update` takes the camera's displacement since
the previous update (the stabiliser's fit, :func:`flowgrad.flow.stabilise.compensate`)
and first moves the memory's state with it, by whole grid pixels (the remainder
is carried to the next update, so no interpolation blurs the background); what
enters at an edge is unknown and holds nothing. Measuring that displacement on
the pictures themselves (phase correlation) was tried and left: it follows a
large textured vehicle on a still street (docs/RESULTS.md, issue 18), which the
stabiliser's guards refuse.

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
# A pixel moved when its flow is at least this (pixels per sample, the caller's units: full-frame pixels per
# flow interval from RollingFlow and the evaluator). Chosen on a validation set (docs/RESULTS.md, issue 18).
MOVED_PX = 2.0
# The memory's magnitude: this quantile of the current picture's moving flow magnitudes.
LEVEL_QUANTILE = 0.9
# A held motion is dropped, and a pixel is background, within this fraction of the frame's median grey.
APPEARANCE_CHANGE = 0.1
# The background follows the picture at this rate per sample (8 per second: a time constant of 1.25 s).
BACKGROUND_RATE = 0.1
# Blur (Gaussian sigma) and shake tolerance (search radius) of the appearance, as fractions of the grid's
# height and width: the same on any flow grid, so that live (working grid) and offline (model grid) agree.
BLUR_FRACTION = 0.01
SHIFT_FRACTION = 0.01
# A camera displacement under this many grid pixels between two samples is taken for a still camera: a vehicle
# moving in part of a still view bends the stabiliser's fit by a few hundredths of a pixel per pair, always the
# same way, which would add up over the memory's samples; a shake the tolerance above does not absorb is larger.
CAMERA_STEP_MIN = 0.5


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
    """The fading per-pixel "has moved" memory of a sequence of flow fields (see the module docstring).

    seconds: how long a motion is remembered, seconds (> 0; MEMORY_SECONDS by default).
    change: how much the appearance may change before a held motion is dropped, and how much
        it must differ from the background to show, as a fraction of the frame's median grey
        (> 0; APPEARANCE_CHANGE by default).
    moved_px: the flow magnitude from which a pixel counts as moving (> 0; MOVED_PX).
    level_quantile: the memory's magnitude is this quantile of the moving magnitudes (in (0, 1]).
    background_rate: how fast the background follows the picture, per sample (in (0, 1]).
    Feed flows and the frames they were seen on in time order with :meth:`update`;
    :meth:`field` is the memory at the newest update. A flow of another shape starts
    the memory afresh. Not thread-safe.
    """

    def __init__(self, seconds: float = MEMORY_SECONDS, change: float = APPEARANCE_CHANGE,
                 moved_px: float = MOVED_PX, level_quantile: float = LEVEL_QUANTILE,
                 background_rate: float = BACKGROUND_RATE) -> None:
        for name, v, top in (("seconds", seconds, math.inf), ("change", change, math.inf),
                             ("moved_px", moved_px, math.inf), ("level_quantile", level_quantile, 1.0),
                             ("background_rate", background_rate, 1.0)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v <= top:
                bound = "" if top == math.inf else " and <= 1"
                raise ValueError(f"{name} must be a finite number > 0{bound}, got {v!r}")
        self.seconds = float(seconds)
        self.change = float(change)
        self.moved_px = float(moved_px)
        self.level_quantile = float(level_quantile)
        self.background_rate = float(background_rate)
        self.reset()

    @property
    def t(self) -> Optional[float]:
        """Time of the newest update, seconds; None before the first."""
        return self._t

    def reset(self) -> None:
        """Forget everything (e.g. on a camera switch or a gap in the stream)."""
        self._vec: Optional[np.ndarray] = None  # (2, H, W) float32 the last moving vector of each pixel
        self._vec_mag: Optional[np.ndarray] = None  # (H, W) float32 its magnitude
        # (H, W) float32 when it moved, seconds after _t0 (float32 keeps 1 ms for days).
        self._moved_t: Optional[np.ndarray] = None
        self._weights: Optional[np.ndarray] = None  # (H, W) float32 decay weights at _t (0: nothing held)
        self._look: Optional[np.ndarray] = None  # (H, W) float32 appearance where each pixel last moved
        self._background: Optional[np.ndarray] = None  # (H, W) float32 the learnt still picture
        self._known: Optional[np.ndarray] = None  # (H, W) bool where the background has been learnt
        self._foreground: Optional[np.ndarray] = None  # (H, W) bool where the picture differs from it at _t
        self._live: Optional[np.ndarray] = None  # (2, H, W) float32 the newest flow, non-finite as 0
        self._level = self.moved_px
        self._t: Optional[float] = None
        self._t0 = 0.0
        self._drift = np.zeros(2)  # (rows, columns) of camera displacement not yet applied, grid px

    def update(self, flow: np.ndarray, t: float, frame: np.ndarray,
               frame_hw: Optional[tuple[int, int]] = None,
               camera: Optional[tuple[float, float]] = None) -> np.ndarray:
        """Add the flow field seen at time ``t`` on ``frame`` and return the memory then.

        flow: (2, H, W) float (dx, dy) in pixels; a pixel with a non-finite value counts as no motion.
        frame: the picture the flow is sampled on (the pair's older frame; see :func:`appearance`):
            (h, w) uint8 grey or (h, w, 3) uint8 BGR of any size.
        frame_hw: (H, W) of the frame whose pixels the flow is measured in; None: ``frame``'s own.
        t: seconds, later than the previous update (an earlier or equal t is a
            ValueError; call reset() after a clock jump).
        camera: (dx, dy) the camera's displacement of the picture from the previous update's frame
            to this one, in the flow's pixels (StabiliseInfo.camera_px scaled as the flow is);
            None: unknown (no stabiliser, or a pair it could not fit): the state stays where it is.
            A non-finite value is a ValueError.
        Returns :meth:`field` (a new (2, H, W) float32 array).
        """
        if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[0] != 2:
            raise ValueError(f"flow must be a (2, H, W) array, got {getattr(flow, 'shape', type(flow).__name__)}")
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"t must be finite, got {t}")
        if self._t is not None and t <= self._t:
            raise ValueError(f"t must increase: {t} after {self._t}")
        if camera is not None and not (len(camera) == 2 and all(math.isfinite(float(v)) for v in camera)):
            raise ValueError(f"camera must be a finite (dx, dy) in pixels or None, got {camera!r}")
        flow = flow.astype(np.float32, copy=False)
        look = appearance(frame, flow.shape[1:])
        fh, fw = frame.shape[:2] if frame_hw is None else frame_hw
        grid_per_px = (flow.shape[1] / fh, flow.shape[2] / fw)
        if self._vec is not None and self._vec.shape == flow.shape and camera is not None:
            self._follow_camera(camera[1] * grid_per_px[0], camera[0] * grid_per_px[1], look)
        if self._vec is None or self._vec.shape != flow.shape:
            self._vec = np.zeros(flow.shape, np.float32)
            self._vec_mag = np.zeros(flow.shape[1:], np.float32)
            self._moved_t = np.full(flow.shape[1:], -np.inf, np.float32)  # never: nothing held
            self._weights = np.zeros(flow.shape[1:], np.float32)
            self._look = look.copy()
            self._background = look.copy()
            self._known = np.zeros(flow.shape[1:], bool)
            self._t0 = t
            self._drift = np.zeros(2)
        now = np.float32(t - self._t0)
        w = self._weights
        # w = max(0, 1 - (now - t_moved) / seconds), in place: this runs once per flow field.
        np.subtract(self._moved_t, now, out=w)
        w *= np.float32(1.0 / self.seconds)
        w += np.float32(1.0)
        np.maximum(w, 0.0, out=w)
        kernel = _shake_kernel(look.shape)
        np.copyto(w, 0.0, where=self._changed(look, kernel, grid_per_px))
        mag = np.hypot(flow[0], flow[1])
        moving = mag >= np.float32(self.moved_px)  # False where mag is NaN: no motion seen there
        if moving.any():
            self._level = float(np.quantile(mag[moving], self.level_quantile))
        np.copyto(self._look, look, where=moving)
        np.copyto(self._vec, flow, where=moving[None])
        np.copyto(self._vec_mag, mag, where=moving)
        np.copyto(self._moved_t, now, where=moving)
        np.copyto(w, 1.0, where=moving)
        # The background learns only where nothing moves or is held: a stopped vehicle is not absorbed while
        # remembered. Until a pixel has been learnt once (what moved at the first update has not), it is unknown.
        learn = (w == 0) & ~moving
        self._known |= learn
        self._background += np.float32(self.background_rate) * learn * (look - self._background)
        c, bg = np.float32(self.change), self._background
        self._foreground = self._known & ((look > cv2.dilate(bg, kernel) + c) | (look < cv2.erode(bg, kernel) - c))
        self._live = np.where(np.isfinite(flow), flow, np.float32(0.0))
        self._t = t
        return self.field()

    def _follow_camera(self, dy: float, dx: float, look: np.ndarray) -> None:
        """Move the state with the picture by (dy, dx) grid px: the whole pixels of it and of the
        remainder carried from earlier updates; what enters at an edge takes ``look`` and holds nothing.
        A displacement under CAMERA_STEP_MIN is none."""
        if math.hypot(dy, dx) < CAMERA_STEP_MIN:
            return
        self._drift += (dy, dx)
        sy, sx = (int(v) for v in np.round(self._drift))
        if not (sy or sx):
            return
        self._drift -= (sy, sx)
        h, w = look.shape
        self._vec = _translated(self._vec, sy, sx, 0.0)
        self._vec_mag = _translated(self._vec_mag, sy, sx, 0.0)
        self._moved_t = _translated(self._moved_t, sy, sx, -np.inf)
        self._known = _translated(self._known, sy, sx, False)
        entered = ~_translated(np.ones((h, w), bool), sy, sx, False)
        self._look = np.where(entered, look, _translated(self._look, sy, sx, 0.0))
        self._background = np.where(entered, look, _translated(self._background, sy, sx, 0.0))

    def _changed(self, look: np.ndarray, kernel: np.ndarray, grid_per_px: tuple[float, float]) -> np.ndarray:
        """(H, W) bool: where the held appearance is darker than the darkest or brighter than the
        brightest current one within ``kernel`` around the point its held vector leads to, by more
        than ``change``. grid_per_px: (y, x) grid pixels per flow pixel."""
        h, w = look.shape
        ys, xs = np.indices((h, w), np.float32)
        map_x = xs + self._vec[0] * np.float32(grid_per_px[1])
        map_y = ys + self._vec[1] * np.float32(grid_per_px[0])
        brightest = cv2.remap(cv2.dilate(look, kernel), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        darkest = cv2.remap(cv2.erode(look, kernel), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return (self._look > brightest + np.float32(self.change)) | (self._look < darkest - np.float32(self.change))

    def field(self) -> np.ndarray:
        """The memory at the newest update: (2, H, W) float32, per pixel the live flow or, where it
        is larger, the held motion's direction times level times its decay weight, where the
        picture differs from the background (else zero). ValueError before any update."""
        if self._vec is None:
            raise ValueError("no flow seen yet")
        scale = np.float32(self._level) * self._weights * self._foreground / np.maximum(self._vec_mag, np.float32(1e-6))
        held = self._vec * scale[None]
        larger = np.hypot(self._live[0], self._live[1]) >= np.float32(self._level) * self._weights * self._foreground
        return np.where(larger[None], self._live, held)


def _shake_kernel(hw: tuple[int, int]) -> np.ndarray:
    """The (2r+1, 2r'+1) uint8 window of the shake tolerance on an (H, W) grid (SHIFT_FRACTION of each side)."""
    h, w = hw
    return np.ones((2 * round(SHIFT_FRACTION * h) + 1, 2 * round(SHIFT_FRACTION * w) + 1), np.uint8)


def _translated(a: np.ndarray, sy: int, sx: int, fill) -> np.ndarray:
    """A copy of ``a`` (..., H, W) with its content moved sy rows down and sx columns right; what enters is ``fill``."""
    out = np.full_like(a, fill)
    h, w = a.shape[-2:]
    if abs(sy) >= h or abs(sx) >= w:
        return out
    out[..., max(sy, 0):h + min(sy, 0), max(sx, 0):w + min(sx, 0)] = \
        a[..., max(-sy, 0):h + min(-sy, 0), max(-sx, 0):w + min(-sx, 0)]
    return out
