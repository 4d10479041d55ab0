"""The ``+doa`` of a model spec: any localiser's maps weighted by the direction heard.

:class:`WithDoa` takes what an engine returned for a batch (maps and sounding scores)
and the microphone array's samples of each item, finds each item's direction of arrival
(flowgrad.spatial.doa) and weights the map by the direction's likelihood over the map's
columns (or pixels), widened by ``spread_deg`` either side: each region of the map at or
above half its maximum (the movers the benchmarks' binarisation keeps) as a whole, by the
highest likelihood over it; renormalised (flowgrad.spatial.fusion.fuse). It is the one
place that fuses, for training.evaluate, export and the live pipeline alike.

The likelihood is SRP-PHAT's range-normalised ("range", flowgrad.spatial.doa:
(SRP - median) / (peak - median), clipped to [0, 1]): how steep it is does not depend on
how coherent the window is, directions at or below the typical level drop out, and a
second loud source (or the hidden-street vehicle that outsounds the one in the picture)
keeps a bump of its own height, so the map decides between them. Chosen on a validation
set where exactly one vehicle in the picture sounds among silent movers (data/loud_val:
``python -m training.synth --busy-fraction 1 --busy-loud 1 --seed 9400``, 8 clips, 71
pairs; docs/RESULTS.md): flow_only+doa's success at cIoU 0.5 / 0.3 / AUC was 0.155 /
0.451 / 0.248 with it, against 0.141 / 0.380 / 0.216 with the former exp(2 * (SRP -
peak)), 0.099 / 0.324 / 0.207 with exp(20 * ...) and 0.113 / 0.324 / 0.179 without
direction; range-normalised powers 2 and 4 and several-peak variants were no better.
Held out (data/loud1_test, one sounding vehicle, 113 pairs) flow_only went from 0.062 to
0.177 at cIoU 0.5 with it; the shipped flowgrad_en's broad maps are cropped by the spread
plateau and lost pairs on data/loud_test (0.098 to 0.018).

Why by region (2026-12-03): weighted pixel by pixel, the direction cropped every vehicle
wider than its peak and a second sounding vehicle; on default scenes, where several
vehicles sound, flowgrad_en+doa fell below flowgrad_en without direction. Chosen on two
validation sets (success at cIoU 0.5 / 0.3 / AUC; ``data/coh_val``: ``python -m
training.synth --clips 8 --seed 9110``, 128 positives, default scenes; ``data/loud_val``,
71, one loud vehicle among silent movers): flowgrad_en without direction 0.445 / 0.734 /
0.420 and 0.324 / 0.479 / 0.294, pixel by pixel 0.219 / 0.570 / 0.342 and 0.423 / 0.606 /
0.364, by region 0.438 / 0.742 / 0.420 and 0.394 / 0.577 / 0.359; flow_only on loud_val
0.070 / 0.437 / 0.255 without, 0.282 / 0.563 / 0.358 pixel by pixel, 0.324 / 0.592 / 0.371
by region, and on coh_val 0.258 / 0.531 / 0.322, 0.133 / 0.469 / 0.278 and 0.281 / 0.555 /
0.339. (Tried before with the earlier flowgrad_en, whose broad map was one region, it
changed nothing of that model: docs/RESULTS.md.) A floor under the likelihood (map x (f +
(1 - f) x likelihood)) traded one set against the other (f = 0.5: 0.344 / 0.656 / 0.386 and
0.366 / 0.521 / 0.324); regions at 0.3 of the maximum, or weighted by the likelihood's mean
over them, were no better.

Why widened: SRP-PHAT's peak at 48 kHz on a 20 cm pair is a few columns wide, narrower
than a vehicle (10 to 20 degrees at street distance), so the raw product kept a stripe of
the sounding vehicle and the binarised map lost most of its box. The direction is to say
which mover sounds and the map how far it extends: the likelihood is max-filtered over
+-spread_deg (default 8) before the product. On the two-mover stereo test set
(tests/test_doa_eval.py) flow_only+doa's mean cIoU was 0.17 with the raw likelihood and
0.28 without direction; widened it is above 0.5.

The score: under ``+doa`` the sounding score is min(the model's score, P(a source in the
picture is heard | coherence)) (:func:`heard_factor`, a Platt fit of the SRP-PHAT coherence on
data/coh_val's positive, no-event and silence pairs). flow_only's score (1, "no ears") gets
the array's; a learned model's score is capped where nothing directional is heard. Chosen on
data/coh_val (128 positives, 18 no-event, 128 silence pairs; docs/RESULTS.md; scores
ranked with each model's own maps) over the product score x P: flow_only+doa's AP / max-F1
0.088 / 0.161 -> 0.168 / 0.282 with either (silence all quiet, FPR@0.5 1.00 -> 0.12);
flowgrad_en+doa's AP 0.063 -> 0.066 with the minimum, but 0.062 and 35% of positives quiet
(0% before) with the product. The coherence does not tell
an off-screen vehicle from one in the picture (no-event pairs' median 0.30 against the
positives' 0.23): the factor quiets silence and diffuse noise, not off-screen sound.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from scipy.ndimage import maximum_filter1d

from ..calibration import platt_probability
from .doa import DEFAULT_WINDOW_S, DirectionFinder, DoaEstimate
from .fusion import fuse
from .geometry import ArrayGeometry, focal_px

__all__ = ["WithDoa", "doa_fields", "heard_factor", "DEFAULT_SPREAD_DEG", "COHERENCE_SCALE", "COHERENCE_BIAS"]

# Half-width (degrees of azimuth, and of elevation for arrays with rows) over which the
# likelihood keeps its peak value: the direction's error (a few degrees, bench/doa.py) plus
# half a vehicle. On data/loud_val 12 was no better (flow_only+doa 0.169 / 0.451 / 0.247;
# flowgrad_en+doa's AUC lower) and 4 worse.
DEFAULT_SPREAD_DEG = 8.0
# The likelihood's shape (flowgrad.spatial.doa.LIKELIHOODS; module docstring for the figures).
FUSION_LIKELIHOOD = "range"
# Regions weighted as a whole: where a map reaches this fraction of its maximum (the
# benchmarks' binarisation level; module docstring, "Why by region").
FUSION_REGION_LEVEL = 0.5
# P(a source in the picture is heard | coherence) = sigmoid(SCALE * coherence + BIAS): Platt
# fit (flowgrad.calibration.fit_platt_balanced) of the SRP-PHAT coherence of the 128 positive
# pairs against the 18 no-event and 128 silence pairs of data/coh_val (synth 1.2,
# ``python -m training.synth --out data/coh_val --clips 8 --seed 9110``), by
# ``bench/doa_coherence_fit.py --data data/coh_val``. Digital silence (coherence 0) gets 0.11;
# the factor is 0.5 at coherence 0.136.
COHERENCE_SCALE = 15.23
COHERENCE_BIAS = -2.07


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
    frame_hw: (H, W) pixels of the camera frame the maps stretch over (a 224x224 map of a
        16:9 frame: its rows span the frame's vertical field of view, not its horizontal
        one); None: the maps' own shape (square pixels). Only arrays with vertical extent
        (rows) depend on it.
    """

    def __init__(self, geometry: ArrayGeometry, map_hw: tuple[int, int], sample_rate: int,
                 window_s: float = DEFAULT_WINDOW_S, spread_deg: float = DEFAULT_SPREAD_DEG,
                 frame_hw: Optional[tuple[int, int]] = None):
        if not 0 <= spread_deg < 45:
            raise ValueError(f"WithDoa: spread_deg must be in [0, 45) degrees, got {spread_deg!r}")
        self.geometry, self.sample_rate = geometry, int(sample_rate)
        self.finder = DirectionFinder(geometry, tuple(map_hw), self.sample_rate, window_s=window_s,
                                      likelihood=FUSION_LIKELIHOOD, frame_hw=frame_hw)
        # Map pixels per spread at the image centre (the pinhole's scale there; a little more
        # at the edges, where a degree covers more columns), along rows and along columns.
        h, w = map_hw
        fh, fw = map_hw if frame_hw is None else frame_hw
        frame_px = focal_px(fw, geometry.hfov_deg) * math.tan(math.radians(spread_deg))
        self._spread_px = {"rows": round(frame_px * h / fh), "cols": round(frame_px * w / fw)}

    @property
    def window_samples(self) -> int:
        """Samples per channel of the window each direction is found from."""
        return max(1, round(self.finder.window_s * self.sample_rate))

    def __call__(self, maps: np.ndarray, scores: np.ndarray,
                 signals: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[DoaEstimate]]:
        """maps ``(B, H, W)`` in [0, 1], scores ``(B,)`` in [0, 1], signals ``(B, M, T)`` float
        (M = the geometry's microphones) -> (fused maps ``(B, H, W)`` float32 in [0, 1],
        scores ``(B,)`` float32, one :class:`DoaEstimate` per item).

        Each score becomes the lower of itself and :func:`heard_factor` of its window's
        coherence (module docstring, "The score"): a model without a score of its own (1)
        gets the array's, and a model's score drops below 0.5 (quiet) where nothing
        directional is heard (digital silence: 0.11).
        """
        maps = np.asarray(maps, np.float32)
        signals = np.asarray(signals)
        if maps.ndim != 3 or signals.ndim != 3 or signals.shape[0] != maps.shape[0]:
            raise ValueError(f"WithDoa: expected maps (B, H, W) and signals (B, M, T), got {maps.shape} and "
                             f"{signals.shape}")
        likelihood, estimates = self.likelihoods(signals)
        fused = fuse(maps, likelihood, FUSION_REGION_LEVEL)
        heard = np.array([heard_factor(e.coherence) for e in estimates], np.float32)
        return fused, np.minimum(np.clip(np.asarray(scores, np.float32), 0, 1), heard), estimates

    def likelihoods(self, signals: np.ndarray) -> tuple[np.ndarray, list[DoaEstimate]]:
        """signals ``(B, M, T)`` -> (each item's direction likelihood over the maps' columns
        ``(B, W)``, or pixels ``(B, H, W)`` for arrays with rows, in [0, 1] and widened by
        ``spread_deg``; one :class:`DoaEstimate` per item)."""
        estimates = [self.finder(s) for s in signals]
        likelihood = np.stack([e.likelihood for e in estimates])
        axes = {"cols": likelihood.ndim - 1, "rows": 1} if likelihood.ndim == 3 else {"cols": 1}
        for name, axis in axes.items():  # columns, and rows for a (B, H, W) likelihood
            if self._spread_px[name] > 0:
                likelihood = maximum_filter1d(likelihood, 2 * self._spread_px[name] + 1, axis=axis, mode="nearest")
        return likelihood, estimates


def heard_factor(coherence: float) -> float:
    """SRP-PHAT coherence of a window (DoaEstimate.coherence, in [-1, 1]) -> the probability
    in (0, 1) that a source in the picture is heard, sigmoid(COHERENCE_SCALE * coherence +
    COHERENCE_BIAS) (the constants' comment says where they were fitted)."""
    return float(platt_probability(float(coherence), COHERENCE_SCALE, COHERENCE_BIAS))


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
