"""Rolling optical flow over a live camera stream of any frame rate.

The models were trained on Farneback flow between consecutive frames of 8 fps
video, i.e. frames 0.125 s apart, measured in pixels of the full camera frame
(REFERENCE.md section 4). A live camera runs at 5 to 60 fps with jitter and
dropped frames, so :class:`RollingFlow` keeps a short history of grayscale
frames and, for every new frame, pairs it with the kept frame whose age is
closest to the nominal interval. The flow is always reported in pixels of the
full camera frame, whatever working resolution it was computed at.

Units everywhere: times in seconds (the caller's monotonic clock), flow in
pixels of the full camera frame, sizes as (H, W) in pixels (flowgrad.sizes).
"""
from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional

import cv2
import numpy as np
import torch

from .farneback import Farneback, FarnebackParams
from .opencv import opencv_flow
from .memory import MotionMemory
from .stabilise import compensate

FlowFn = Callable[[np.ndarray, np.ndarray], Any]
"""flow_fn(prev_gray, next_gray) -> flow.

Both inputs are (h, w) uint8 numpy arrays at the working resolution. The result
is the flow from prev to next in pixels of that working grid: a float numpy
array (h, w, 2) as OpenCV returns it, or a torch tensor (2, h, w) or (1, 2, h, w).
"""

# The papers' flow pair: consecutive frames of 8 fps video (REFERENCE.md section 4), seconds.
FLOW_INTERVAL_S = 0.125

_BACKENDS = ("opencv", "torch")
_ANCHORS = ("older", "newest")
# Two timestamps this close are treated as equally good pairing candidates, so
# that float rounding of ages like 7/60 and 8/60 cannot decide a tie.
_TIE_S = 1e-9


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


@dataclass(frozen=True)
class RollingFlowConfig:
    """Settings of :class:`RollingFlow`.

    interval_s: nominal spacing, seconds, between the two frames of a flow pair
        (FLOW_INTERVAL_S, 0.125 s = the 8 fps spacing the models were trained on).
    working_hw: (H, W) in pixels of the grid flow is computed on; camera frames
        are resized to it with cv2.INTER_AREA. None = the camera's own size.
    farneback: Farneback parameters (OpenCV's meaning; the reference values).
    backend: "opencv" (cv2.calcOpticalFlowFarneback on CPU: the fastest choice
        without a GPU) or "torch" (:func:`flowgrad.flow.farneback` on ``device``,
        same answer to ~1e-4 px; the GPU path).
    device: torch device for backend "torch", e.g. "cuda" or "cpu".
    compile: backend "torch" only: fuse the Farneback steps with torch.compile
        (:class:`flowgrad.flow.Farneback`; worth it on a GPU). The first pair
        of each working grid compiles, which takes tens of seconds.
    history_s: how far back, seconds, frames are kept (must be >= interval_s).
    max_frames: hard cap on kept frames whatever the frame rate, so memory is
        bounded even for a camera faster than expected.
    anchor: which frame's grid the flow is sampled on. "older": Farneback from
        the older frame to the newest (the papers' pairing; the field belongs to
        the older frame). "newest": Farneback from the newest frame back to the
        older one, negated, so it still points forwards in time but is sampled
        on the newest frame: a live display then overlays it on the newest
        picture without lagging interval_s behind.
    stabilise: remove camera shake from each field with
        :func:`flowgrad.flow.stabilise.compensate` (the background's motion,
        fitted on the working grid, is subtracted); a pair whose background
        cannot be fitted keeps its flow and counts in stats.stabilise_fallbacks.
        On by default: the models' flow inputs and gates assume a still camera.
    motion_memory_s: when > 0, every result also carries the motion memory
        (:class:`flowgrad.flow.memory.MotionMemory` over that many seconds) of the
        per-interval flow and the frame it is sampled on, at the flow rate (one
        field every interval_s); 0 = off. A gap or a resolution change starts it afresh.
    """

    interval_s: float = FLOW_INTERVAL_S
    working_hw: Optional[tuple[int, int]] = None
    farneback: FarnebackParams = FarnebackParams()
    backend: str = "opencv"
    device: str = "cpu"
    compile: bool = False
    history_s: float = 1.0
    max_frames: int = 256
    anchor: str = "older"
    stabilise: bool = True
    motion_memory_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("interval_s", "history_s"):
            v = getattr(self, name)
            if not _is_real(v) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if self.history_s < self.interval_s:
            raise ValueError(
                f"history_s ({self.history_s}) must be >= interval_s ({self.interval_s}), "
                "otherwise the frame to pair with is never kept"
            )
        if not _is_int(self.max_frames) or self.max_frames < 2:
            raise ValueError(f"max_frames must be an int >= 2, got {self.max_frames!r}")
        if not isinstance(self.farneback, FarnebackParams):
            raise ValueError(f"farneback must be a FarnebackParams, got {type(self.farneback).__name__}")
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {self.backend!r}")
        if self.compile and self.backend != "torch":
            raise ValueError(f"compile applies to backend 'torch' only, not {self.backend!r}")
        if not isinstance(self.stabilise, bool):
            raise ValueError(f"stabilise must be a bool, got {self.stabilise!r}")
        if (not _is_real(self.motion_memory_s) or not math.isfinite(self.motion_memory_s)
                or self.motion_memory_s < 0):
            raise ValueError(f"motion_memory_s must be a finite number >= 0, got {self.motion_memory_s!r}")
        if self.anchor not in _ANCHORS:
            raise ValueError(f"anchor must be one of {_ANCHORS}, got {self.anchor!r}")
        if self.working_hw is not None:
            ws = self.working_hw
            if (not isinstance(ws, (tuple, list)) or len(ws) != 2
                    or not all(_is_int(v) and v > 0 for v in ws)):
                raise ValueError(
                    f"working_hw must be None or (height, width) positive ints, got {ws!r}"
                )
            # Lists are accepted for convenience but stored as a tuple to keep the
            # config hashable.
            object.__setattr__(self, "working_hw", (int(ws[0]), int(ws[1])))


@dataclass(frozen=True, eq=False)
class FlowResult:
    """One flow field from the rolling pairing.

    flow: (2, h, w) float32 numpy, (dx, dy) from the frame at t_prev to the frame
        at t, in PIXELS OF THE FULL CAMERA FRAME, sampled on the working grid
        (h, w) = work_hw of the older frame (or of the newest one with
        config anchor="newest"). dx is scaled by frame_width / work_width and dy by
        frame_height / work_height.
    dt: t - t_prev, seconds actually spanned (close to, not equal to, interval_s).
    t: capture time of the newest frame, seconds.
    t_prev: capture time of the earlier frame, seconds.
    frame_hw: (H, W) in pixels of the camera frame.
    work_hw: (H, W) in pixels of the grid the flow was computed on.
    interval_s: the configured nominal interval, seconds.
    memory: with config motion_memory_s > 0, the motion memory at t: (2, h, w)
        float32 in full-frame pixels per interval_s (the per_interval() scale),
        else None.
    camera: (dx, dy) the camera's displacement of the picture from t_prev to t, full-frame
        pixels (the stabiliser's fit, :attr:`StabiliseInfo.camera_px` scaled as the flow;
        (0.0, 0.0) for a still camera); None without stabilisation or where it fell back.
    """

    flow: np.ndarray
    dt: float
    t: float
    t_prev: float
    frame_hw: tuple[int, int]
    work_hw: tuple[int, int]
    interval_s: float
    memory: Optional[np.ndarray] = None
    camera: Optional[tuple[float, float]] = None

    def per_interval(self) -> np.ndarray:
        """Flow rescaled to the nominal interval: flow * interval_s / dt.

        (2, h, w) float32, full-frame pixels per interval_s. The models' flow
        encodings (magnitude thresholds, (m + 5) / 200, HTF's u/v) expect the
        magnitudes of frames exactly interval_s apart, so feed them this rather
        than the raw flow when the camera's spacing does not hit interval_s.
        Assumes the motion is roughly steady over dt.
        """
        return (self.flow * np.float32(self.interval_s / self.dt)).astype(np.float32)


@dataclass
class RollingFlowStats:
    """Lifetime counters of a :class:`RollingFlow` (not cleared by reset()).

    pushed: valid push() calls (including ignored out-of-order ones).
    computed: flow fields returned.
    out_of_order: frames ignored because t <= the newest kept timestamp.
    gaps: times history was cleared because t jumped more than history_s ahead.
    resets: times history was cleared because the camera resolution changed.
    stabilise_fallbacks: fields returned uncompensated under config.stabilise
        because their background could not be fitted.
    """

    pushed: int = 0
    computed: int = 0
    out_of_order: int = 0
    gaps: int = 0
    resets: int = 0
    stabilise_fallbacks: int = 0


class RollingFlow:
    """Flow between each new camera frame and the kept frame ~interval_s older.

    config: a :class:`RollingFlowConfig` (default one when None).
    flow_fn: optional ``flow_fn(prev_gray, next_gray)`` (see :data:`FlowFn`); when
        given it replaces OpenCV, which is how the torch/GPU Farneback is plugged
        in. Required for backend="torch".

    Feed frames with :meth:`push`; it returns a :class:`FlowResult` once a frame
    at least interval_s / 2 old is kept, else None. Not thread-safe.
    """

    def __init__(self, config: Optional[RollingFlowConfig] = None,
                 flow_fn: Optional[FlowFn] = None) -> None:
        self.config = config if config is not None else RollingFlowConfig()
        if not isinstance(self.config, RollingFlowConfig):
            raise ValueError(f"config must be a RollingFlowConfig, got {type(config).__name__}")
        if flow_fn is not None and not callable(flow_fn):
            raise ValueError("flow_fn must be callable")
        if flow_fn is None and self.config.backend == "torch":
            self._farneback = Farneback(self.config.farneback, compile=self.config.compile)
            flow_fn = self._torch_farneback
        self.flow_fn = flow_fn
        self.stats = RollingFlowStats()
        self._history: deque[tuple[float, np.ndarray]] = deque(maxlen=self.config.max_frames)
        self._frame_hw: Optional[tuple[int, int]] = None
        self._memory = MotionMemory(self.config.motion_memory_s) if self.config.motion_memory_s > 0 else None
        self._memory_field: Optional[np.ndarray] = None
        self._memory_camera: Optional[tuple[float, float]] = None  # the camera of the memory's last pair

    @property
    def frame_hw(self) -> Optional[tuple[int, int]]:
        """(H, W) in pixels of the current camera frames; None before the first."""
        return self._frame_hw

    @property
    def work_hw(self) -> Optional[tuple[int, int]]:
        """(H, W) in pixels of the flow grid; None before the first frame."""
        if self.config.working_hw is not None:
            return self.config.working_hw
        return self._frame_hw

    def __len__(self) -> int:
        """Number of kept frames (never more than config.max_frames)."""
        return len(self._history)

    def reset(self) -> None:
        """Forget all kept frames (e.g. on a camera switch); stats are kept.

        After a reset any timestamp is accepted again, and the next frame
        returns None. The motion memory starts afresh too.
        """
        self._history.clear()
        self._forget_memory()

    def _forget_memory(self) -> None:
        if self._memory is not None:
            self._memory.reset()
            self._memory_field = None
            self._memory_camera = None

    def push(self, frame: np.ndarray, t: float) -> Optional[FlowResult]:
        """Add a camera frame and return the flow ending at it, if one can be made.

        frame: (H, W, 3) uint8 BGR or (H, W) / (H, W, 1) uint8 grayscale, any size.
        t: capture time in seconds on a monotonic clock.
        Returns a :class:`FlowResult` from the kept frame whose age is closest to
        interval_s (among those at least interval_s / 2 old; ties go to the older
        one) to this frame, or None when there is no such frame yet or the frame
        was ignored for being out of order.
        Raises ValueError for a non-uint8 or badly shaped frame or a non-finite t.
        """
        gray_full = self._to_gray(frame)
        t = self._check_time(t)
        self.stats.pushed += 1

        if self._history and t <= self._history[-1][0]:
            # A stale or repeated frame cannot be paired forwards in time; dropping
            # it keeps the history strictly increasing.
            self.stats.out_of_order += 1
            return None

        h, w = gray_full.shape
        if self._frame_hw is not None and (h, w) != self._frame_hw:
            self._history.clear()
            self._forget_memory()
            self.stats.resets += 1
        self._frame_hw = (h, w)

        if self._history and t - self._history[-1][0] > self.config.history_s:
            self._history.clear()
            self._forget_memory()
            self.stats.gaps += 1

        gray = self._resize(gray_full)
        self._history.append((t, gray))
        while t - self._history[0][0] > self.config.history_s:
            self._history.popleft()

        prev = self._pick_prev(t)
        if prev is None:
            return None
        t_prev, prev_gray = prev
        if self.config.anchor == "older":
            flow = self._flow(prev_gray, gray)
        else:
            flow = self._flow(gray, prev_gray)
            np.negative(flow, out=flow)
        seen_on = prev_gray if self.config.anchor == "older" else gray  # the frame the field is sampled on
        work_h, work_w = gray.shape
        # Full-frame pixels per working pixel: each axis has its own scale, since the working size
        # need not keep the camera's aspect ratio.
        scale_x, scale_y = w / work_w, h / work_h
        camera = None
        if self.config.stabilise:
            flow, info = compensate(flow, frame=seen_on)
            self.stats.stabilise_fallbacks += not info.compensated
            if info.camera_px is not None:
                camera = (info.camera_px[0] * scale_x, info.camera_px[1] * scale_y)
        flow[0] *= np.float32(scale_x)
        flow[1] *= np.float32(scale_y)
        self.stats.computed += 1
        result = FlowResult(
            flow=flow,
            dt=t - t_prev,
            t=t,
            t_prev=t_prev,
            frame_hw=(h, w),
            work_hw=(work_h, work_w),
            interval_s=self.config.interval_s,
            camera=camera,
        )
        if self._memory is None:
            return result
        frame_s = t - self._history[-2][0]
        return dataclasses.replace(result, memory=self._remember(result, frame_s, seen_on))

    def _remember(self, result: FlowResult, frame_s: float, seen_on: np.ndarray) -> np.ndarray:
        """The memory at result.t, updated with result's flow once interval_s has passed since
        its last sample (the flow rate, whatever the camera's), else the held field.
        frame_s: the camera's current frame spacing, s. seen_on: (h, w) uint8 grey frame the
        flow is sampled on (the memory drops what moved where it no longer looks the same)."""
        last = self._memory.t
        # Within half a frame counts as on time: a 24 fps camera samples every 3rd frame.
        if last is None or result.t - last >= self.config.interval_s - 0.5 * frame_s:
            # The camera's motion between two samples' frames: sampled on the older frame, the previous
            # sample's pair ends about where this one's starts; sampled on the newest, it is this pair.
            camera = self._memory_camera if self.config.anchor == "older" else result.camera
            self._memory_field = self._memory.update(result.per_interval(), result.t, seen_on, result.frame_hw,
                                                     camera)
            self._memory_camera = result.camera
        return self._memory_field

    # -- internals ---------------------------------------------------------

    @staticmethod
    def _check_time(t: Any) -> float:
        if not _is_real(t):
            raise ValueError(f"t must be a real number of seconds, got {type(t).__name__}")
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"t must be finite, got {t}")
        return t

    @staticmethod
    def _to_gray(frame: Any) -> np.ndarray:
        if not isinstance(frame, np.ndarray):
            raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
        if frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 (camera pixels), got dtype {frame.dtype}")
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[:, :, 0]
        if frame.ndim == 2:
            gray = frame
        elif frame.ndim == 3 and frame.shape[2] == 3:
            gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2GRAY)
        else:
            raise ValueError(
                f"frame must be (H, W, 3) BGR or (H, W) gray, got shape {frame.shape}"
            )
        if gray.shape[0] < 2 or gray.shape[1] < 2:
            raise ValueError(f"frame is too small for optical flow: shape {frame.shape}")
        # Copy so that a caller reusing its capture buffer cannot alter kept history.
        return np.array(gray, dtype=np.uint8, copy=True, order="C")

    def _resize(self, gray: np.ndarray) -> np.ndarray:
        work_hw = self.config.working_hw
        if work_hw is None or gray.shape == work_hw:
            return gray
        # cv2.resize's dsize is (width, height).
        return cv2.resize(gray, work_hw[::-1], interpolation=cv2.INTER_AREA)

    def _pick_prev(self, t: float) -> Optional[tuple[float, np.ndarray]]:
        target = self.config.interval_s
        best = None
        best_err = math.inf
        # Oldest first, replacing only on a clearly smaller error, so ties keep the
        # older frame (the longer baseline measures motion more precisely).
        for i in range(len(self._history) - 1):
            t_k, g_k = self._history[i]
            age = t - t_k
            if age < target / 2:
                break
            err = abs(age - target)
            if err < best_err - _TIE_S:
                best, best_err = (t_k, g_k), err
        return best

    def _torch_farneback(self, prev: np.ndarray, nxt: np.ndarray):
        device = self.config.device
        return self._farneback(torch.from_numpy(prev).to(device), torch.from_numpy(nxt).to(device))

    def _flow(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        h, w = nxt.shape
        if self.flow_fn is None:
            return opencv_flow(prev, nxt, self.config.farneback)
        out = self.flow_fn(prev, nxt)
        if isinstance(out, np.ndarray):
            if out.shape != (h, w, 2):
                raise ValueError(
                    f"flow_fn returned numpy shape {out.shape}, expected (h, w, 2) = {(h, w, 2)}"
                )
            arr = out.transpose(2, 0, 1)
        elif hasattr(out, "detach") and hasattr(out, "cpu"):
            shape = tuple(out.shape)
            if shape == (1, 2, h, w):
                out = out[0]
            elif shape != (2, h, w):
                raise ValueError(
                    f"flow_fn returned tensor shape {shape}, expected (2, h, w) or "
                    f"(1, 2, h, w) with (h, w) = {(h, w)}"
                )
            arr = out.detach().float().cpu().numpy()
        else:
            raise ValueError(
                f"flow_fn must return a numpy array or torch tensor, got {type(out).__name__}"
            )
        # Always a fresh float32 array: scaling happens in place afterwards and must
        # not write into a buffer flow_fn may reuse.
        return np.array(arr, dtype=np.float32, copy=True, order="C")
