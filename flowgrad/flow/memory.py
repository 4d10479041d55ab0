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

Trails: a moving vehicle leaves a fading memory along its path (over
``speed * seconds`` pixels behind it); the linear fade keeps only the newest
part of a trail above half the peak, which is what a map binarised at half
its maximum keeps. Holding one peak per pixel (not every sample of the
window) costs O(1) per pixel; it can under-read a pixel whose weaker but newer
sample would have outlasted the held one's fade (it then reads the held
one's smaller value).

Units: flow in pixels (whatever grid and scale the caller feeds, usually
full-frame pixels per flow interval), times in seconds.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

# The FlowGrad paper's proposal: aggregate motion over a 5-second window.
MEMORY_SECONDS = 5.0


def default_for(model_name: str) -> bool:
    """Whether registry model ``model_name`` is fed the motion memory by default: its class's
    ``motion_memory`` attribute (set where the memory measurably helps, docs/RESULTS.md);
    False for a name outside the registry."""
    from flowgrad import models  # the models do not need the flow package: import on use only

    return model_name in models.names() and bool(getattr(models.model_class(model_name), "motion_memory", False))


class MotionMemory:
    """The fading per-pixel memory of a sequence of flow fields (see the module docstring).

    seconds: how long a sample lasts, seconds (> 0; MEMORY_SECONDS by default).
    Feed flows in time order with :meth:`update`; :meth:`field` is the memory at
    the newest update. A flow of another shape starts the memory afresh. Not
    thread-safe.
    """

    def __init__(self, seconds: float = MEMORY_SECONDS) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
                or seconds <= 0:
            raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")
        self.seconds = float(seconds)
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
        self._t: Optional[float] = None
        self._t0 = 0.0

    def update(self, flow: np.ndarray, t: float) -> np.ndarray:
        """Add the flow field seen at time ``t`` and return the memory then.

        flow: (2, H, W) float (dx, dy) in pixels; a pixel with a non-finite value counts as no motion.
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
        if self._peak is None or self._peak.shape != flow.shape:
            self._peak = np.zeros(flow.shape, np.float32)
            self._peak_mag = np.zeros(flow.shape[1:], np.float32)
            self._peak_t = np.zeros(flow.shape[1:], np.float32)
            self._weights = np.zeros(flow.shape[1:], np.float32)
            self._t0 = t
        now = np.float32(t - self._t0)
        w = self._weights
        # w = max(0, 1 - (now - t_peak) / seconds), in place: this runs once per flow field.
        np.subtract(self._peak_t, now, out=w)
        w *= np.float32(1.0 / self.seconds)
        w += np.float32(1.0)
        np.maximum(w, 0.0, out=w)
        mag = np.hypot(flow[0], flow[1])
        take = mag >= self._peak_mag * w  # False where mag is NaN: no motion seen there
        np.copyto(self._peak, flow, where=take[None])
        np.copyto(self._peak_mag, mag, where=take)
        np.copyto(self._peak_t, now, where=take)
        np.copyto(w, 1.0, where=take)
        self._t = t
        return self.field()

    def field(self) -> np.ndarray:
        """The memory at the newest update: (2, H, W) float32, each held vector scaled by
        its decay weight (magnitude = the decayed peak magnitude). ValueError before any update."""
        if self._peak is None:
            raise ValueError("no flow seen yet")
        return self._peak * self._weights[None]
