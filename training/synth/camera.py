"""The synthetic street's camera: where a scene's objects are in metres, and its field of view.

A scene (scene.py) places an object by its picture column ``x_px`` (unshaken frame) and
its depth; ``Layout.ppm(depth)`` pixels per metre falls as 1 / depth, so the picture is
a pinhole projection with focal length ``f = ppm(depth) * depth`` pixels (the same at
every depth) and principal point at the frame's centre. In camera coordinates
(flowgrad.spatial.geometry: x right, y down, z forward, metres) an object is at
``x = (x_px - W / 2) / ppm(depth)``, ``y = (row_px - H / 2) / ppm(depth)``, ``z = depth``;
a sounding vehicle's sound comes from the centre of its box, so the pinhole projection
of its position with :func:`hfov_deg` is its box centre. Camera shake (a picture
translation) is not a camera motion here: the sound does not shake.
"""
from __future__ import annotations

import math

import numpy as np

from . import scene as sc

__all__ = ["focal_px", "hfov_deg", "vehicle_positions_m"]


def focal_px(layout: sc.Layout) -> float:
    """The pinhole focal length in pixels of the layout's picture."""
    return layout.ppm(1.0)  # ppm(depth) * depth, the same at every depth


def hfov_deg(layout: sc.Layout) -> float:
    """The picture's horizontal field of view in degrees (118 for 16:9 frames)."""
    return math.degrees(2 * math.atan(layout.width / 2 / focal_px(layout)))


def vehicle_positions_m(layout: sc.Layout, vehicle: sc.Vehicle, times: np.ndarray) -> np.ndarray:
    """``(len(times), 3)`` metres: the centre of ``vehicle``'s box at ``times`` (s) in camera
    coordinates; before it appears and after it vanishes, where it appeared or vanished
    (a position must exist even when its sound is silent)."""
    present = ~np.isnan(vehicle.x)
    if not present.any():
        raise ValueError(f"vehicle {vehicle.track_id} never exists")
    x_px = np.interp(times, vehicle.times[present], vehicle.x[present])
    ppm = layout.ppm(vehicle.depth)
    row = layout.ground_y(vehicle.depth) - vehicle.height / 2
    return np.stack([(x_px - layout.width / 2) / ppm, np.full(x_px.shape, (row - layout.height / 2) / ppm),
                     np.full(x_px.shape, float(vehicle.depth))], axis=1)
