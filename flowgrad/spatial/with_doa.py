"""The ``+doa`` of a model spec: any localiser's maps weighted by the direction heard.

:class:`WithDoa` takes what an engine returned for a batch (maps and sounding scores)
and the microphone array's samples of each item, finds each item's direction of arrival
(flowgrad.spatial.doa) and multiplies the map by the direction's likelihood over the map's
columns (or pixels), widened by ``spread_deg`` either side, renormalised
(flowgrad.spatial.fusion.fuse). It is the one place that fuses, for training.evaluate,
export and the live pipeline alike.

Why widened: SRP-PHAT's peak at 48 kHz on a 20 cm pair is a few columns wide, narrower
than a vehicle (10 to 20 degrees at street distance), so the raw product kept a stripe of
the sounding vehicle and the binarised map lost most of its box. The direction is to say
which mover sounds and the map how far it extends: the likelihood is max-filtered over
+-spread_deg (default 8) before the product. On the two-mover stereo test set
(tests/test_doa_eval.py) flow_only+doa's mean cIoU was 0.17 with the raw likelihood and
0.28 without direction; widened it is above 0.5.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from scipy.ndimage import maximum_filter1d

from .doa import DEFAULT_WINDOW_S, DirectionFinder, DoaEstimate
from .fusion import fuse
from .geometry import ArrayGeometry, focal_px

__all__ = ["WithDoa", "doa_fields", "DEFAULT_SPREAD_DEG"]

# Half-width (degrees of azimuth, and of elevation for arrays with rows) over which the
# likelihood keeps its peak value: the direction's error (a few degrees, bench/doa.py) plus
# half a vehicle.
DEFAULT_SPREAD_DEG = 8.0
# How steeply the fused likelihood falls from the SRP peak (flowgrad.spatial.doa): gentler
# than the finder's default 20, so that a second sounding vehicle a little weaker than the
# first keeps its part of the map. On data/busy8 (docs/RESULTS.md, two vehicles sound at
# half the pairs) flow_only+doa scored 0.000 / 0.138 / 0.177 (success at cIoU 0.5, 0.3,
# AUC) at 20, 0.062 / 0.185 / 0.191 at 5 and 0.046 / 0.277 / 0.190 at 2 (flow_only alone:
# 0.031 / 0.262 / 0.177).
FUSION_CONCENTRATION = 2.0


class WithDoa:
    """Direction fusion for maps of one size from one array.

    geometry: the array and the camera's field of view.
    map_hw: (H, W) of the engine's maps; they cover the whole camera frame, so the
        pinhole model maps directions to their columns as to the frame's.
    sample_rate: Hz of the array samples given to :meth:`__call__`.
    window_s: seconds of audio each direction is found from (0.5; live: the newest,
        offline: centred on the evaluated frame).
    spread_deg: the likelihood is max-filtered over this many degrees either side of each
        column (and row) before fusing (module docstring); 0 fuses the raw likelihood.
    """

    def __init__(self, geometry: ArrayGeometry, map_hw: tuple[int, int], sample_rate: int,
                 window_s: float = DEFAULT_WINDOW_S, spread_deg: float = DEFAULT_SPREAD_DEG):
        if not 0 <= spread_deg < 45:
            raise ValueError(f"WithDoa: spread_deg must be in [0, 45) degrees, got {spread_deg!r}")
        self.geometry, self.sample_rate = geometry, int(sample_rate)
        self.finder = DirectionFinder(geometry, tuple(map_hw), self.sample_rate, window_s=window_s,
                                      concentration=FUSION_CONCENTRATION)
        # Pixels per spread at the image centre (the pinhole's scale there; a little more
        # at the edges, where a degree covers more columns).
        self._spread_px = round(focal_px(map_hw[1], geometry.hfov_deg) * math.tan(math.radians(spread_deg)))

    @property
    def window_samples(self) -> int:
        """Samples per channel of the window each direction is found from."""
        return max(1, round(self.finder.window_s * self.sample_rate))

    def __call__(self, maps: np.ndarray, scores: np.ndarray,
                 signals: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[DoaEstimate]]:
        """maps ``(B, H, W)`` in [0, 1], scores ``(B,)`` in [0, 1], signals ``(B, M, T)`` float
        (M = the geometry's microphones) -> (fused maps ``(B, H, W)`` float32 in [0, 1],
        scores ``(B,)`` float32, one :class:`DoaEstimate` per item).

        The scores are passed through unchanged: the direction says where, the model's
        score whether.
        """
        maps = np.asarray(maps, np.float32)
        signals = np.asarray(signals)
        if maps.ndim != 3 or signals.ndim != 3 or signals.shape[0] != maps.shape[0]:
            raise ValueError(f"WithDoa: expected maps (B, H, W) and signals (B, M, T), got {maps.shape} and "
                             f"{signals.shape}")
        estimates = [self.finder(s) for s in signals]
        likelihood = np.stack([e.likelihood for e in estimates])
        if self._spread_px > 0:
            for axis in range(1, likelihood.ndim):  # columns, and rows for a (B, H, W) likelihood
                likelihood = maximum_filter1d(likelihood, 2 * self._spread_px + 1, axis=axis, mode="nearest")
        fused = fuse(maps, likelihood)
        return fused, np.asarray(scores, np.float32), estimates


def doa_fields(estimate: Optional[DoaEstimate]) -> Optional[dict]:
    """The ``doa`` field of a heatmap message (docs/PROTOCOL.md): azimuth_deg (positive to
    the right), elevation_deg (positive up; None for an array without vertical extent) and
    confidence (the SRP-PHAT coherence of the peak, clipped to [0, 1]); None without one."""
    if estimate is None:
        return None
    elevation = estimate.elevation_deg
    return {"azimuth_deg": round(estimate.azimuth_deg, 2),
            "elevation_deg": None if elevation is None else round(elevation, 2),
            "confidence": round(min(1.0, max(0.0, estimate.coherence)), 3)}
