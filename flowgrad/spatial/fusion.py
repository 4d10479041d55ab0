"""Fusing a localisation map with a direction likelihood, and how sharp a likelihood is."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from scipy import ndimage

from flowgrad.maps import EPS

__all__ = ["fuse", "sharpness"]


def fuse(maps, likelihood, region_level: Optional[float] = None) -> np.ndarray:
    """A map weighted by where the sound comes from.

    maps: ``(B, H, W)`` float localisation maps (any non-negative scale; an array or tensor).
    likelihood: ``(B, W)`` or ``(W,)`` over image columns, or ``(B, H, W)`` / ``(H, W)``
        over pixels; non-negative (flowgrad.spatial.doa's are in [0, 1]).
    region_level: None: each pixel is weighted by the likelihood there. A fraction in (0, 1]:
        each connected region where a map reaches ``region_level`` of its maximum (its
        movers, as binarised at that level) is weighted as a whole by the highest likelihood
        over it, and the pixels outside every region by the likelihood there: the direction
        says WHICH region sounds, the map how far it extends, so a heard region keeps its
        shape where a vehicle is wider than the direction's peak.
    Returns ``(B, H, W)`` float32: the weighted maps min-max normalised to [0, 1] per map,
    as flowgrad.maps.minmax normalises the models' maps (a flat likelihood leaves a
    normalised map as it was). numpy, not torch: live, a torch op after the pool's threads
    have gone to sleep cost 29 ms on 2 cores against 0.35 ms awake (docs/SPATIAL.md).
    """
    maps = np.asarray(maps, np.float32)
    lik = np.asarray(likelihood, np.float32)
    if maps.ndim != 3:
        raise ValueError(f"fuse: maps must be (B, H, W), got {tuple(maps.shape)}")
    if region_level is not None and not 0 < region_level <= 1:
        raise ValueError(f"fuse: region_level must be in (0, 1] or None, got {region_level!r}")
    b, h, w = maps.shape
    if lik.shape in ((w,), (b, w)):
        lik = lik.reshape(-1, 1, w)
    elif lik.shape not in ((h, w), (b, h, w)):
        raise ValueError(f"fuse: likelihood must be (W,), (B, W), (H, W) or (B, H, W) for maps "
                         f"{tuple(maps.shape)}, got {tuple(lik.shape)}")
    weight = np.broadcast_to(lik, maps.shape)
    if region_level is not None:
        weight = np.array(weight)
        for k in range(b):
            peak = maps[k].max()
            if peak <= 0:
                continue
            regions, _ = ndimage.label(maps[k] >= region_level * peak)
            # each region within its bounding box (ndimage.maximum over labels took 1.6 ms a map)
            for label, box in enumerate(ndimage.find_objects(regions), start=1):
                inside = regions[box] == label
                weight[k][box][inside] = weight[k][box][inside].max()
    fused = maps * weight
    lo = fused.min(axis=(1, 2), keepdims=True)
    hi = fused.max(axis=(1, 2), keepdims=True)
    return (fused - lo) / (hi - lo + EPS)


def sharpness(likelihood) -> float:
    """How concentrated a likelihood is, in [0, 1]: 1 - its entropy / the entropy of a flat one.

    likelihood: any shape (``(W,)`` or ``(H, W)``), non-negative, not all zero.
    0 for a flat likelihood (no direction: the sounding score should not trust it), 1
    when all of it sits in one column (or pixel).
    """
    p = np.asarray(likelihood, np.float64).reshape(-1)
    total = p.sum()
    if p.size < 2 or not np.isfinite(total) or total <= 0 or (p < 0).any():
        raise ValueError(f"sharpness: expected a non-negative likelihood of 2 or more values with a positive "
                         f"sum, got {p.size} values summing to {total}")
    p = p / total
    nz = p[p > 0]
    return float(max(0.0, 1.0 + np.sum(nz * np.log(nz)) / math.log(p.size)))
