"""Scenes that only listening can solve, laid over a drawn street scene.

``add_listening(scene, config, rng)`` takes the scene of :func:`scene.make_scene`
and, from its own generator (so the street itself stays what that seed always drew):

* silent movers (probability ``config.silent_fraction``): 1-2 cyclists, e-scooter
  riders or electric cars that move through the picture without an engine sound;
* busy traffic (``config.busy_fraction``): at most ``config.busy_loud`` (1 or 2)
  vehicles in the picture keep their engine sound, every other one becomes electric
  (silent) and two more electric cars join, so several vehicles move and only one
  (or two) are loud;
* a quiet stretch (``config.quiet_fraction``): every sounding vehicle within
  ``QUIET_RADIUS`` m of the camera during a stretch of 30-50 % of the clip is removed,
  so that only ambience (and a hidden-street vehicle, when the clip has one: then
  the stretch is off-screen-only) is heard there;
* parked vehicles are shown with probability ``config.parked_fraction``.

Silent movers and silenced vehicles are never boxed and have no sound event (the
Urbansas convention: only sounding vehicles are ground truth).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import scene as sc
from .config import SynthConfig

QUIET_RADIUS = 25.0  # m: a vehicle farther than this is 10 dB or more below one at 8 m
_SILENT_KINDS = ("bicycle", "e-scooter", "car")
_SILENT_WEIGHTS = (0.35, 0.25, 0.4)
_BUSY_EXTRA = 2  # electric cars added to a busy clip


def _near_during(v: sc.Vehicle, layout: sc.Layout, start: float, end: float) -> bool:
    """Whether ``v`` comes within QUIET_RADIUS m of the camera between start and end s."""
    window = (v.times >= start) & (v.times <= end) & ~np.isnan(v.x)
    lateral = (v.x[window] - layout.width / 2) / layout.ppm(v.depth)
    return bool(np.any(np.hypot(lateral, v.depth) < QUIET_RADIUS))


def _silent_mover(rng: np.random.Generator, scene: sc.Scene, placed: list[sc.Vehicle], track_id: int,
                  kind: str) -> sc.Vehicle | None:
    """One silent mover of ``kind`` that is in the picture during the clip and keeps its
    distance from everything in its lane, or None when this draw does not fit."""
    layout = scene.layout
    times = scene.vehicles[0].times if scene.vehicles else np.arange(-sc._LEAD_IN, scene.seconds + 1.0,
                                                                     1.0 / sc.SIM_RATE)
    if kind == "car":
        lane = int(rng.integers(len(sc.LANE_DEPTHS)))
        depth, direction = sc.LANE_DEPTHS[lane], scene.lane_directions[lane]
    else:
        lane, depth, direction = 0, sc.BIKE_LANE_DEPTH, int(rng.choice((-1, 1)))
    v = sc._moving_vehicle(rng, layout, times, track_id, lane, direction, scene.light, None, scene.seconds,
                           kind=kind, depth=depth)
    if not sc.on_screen_during(v, layout, scene.seconds):
        return None
    if any(o.depth == v.depth and sc._overlaps(o, v, sc._MIN_GAP * layout.ppm(depth)) for o in placed):
        return None
    return dataclasses.replace(v, sounding=False)


def add_listening(scene: sc.Scene, config: SynthConfig, rng: np.random.Generator) -> sc.Scene:
    """``scene`` with silent movers, busy traffic, a quiet stretch and parked vehicles as
    ``config`` asks (module docstring), drawn from ``rng``. With every fraction 0 and
    parked_fraction 1 the scene is returned unchanged."""
    # Every decision is drawn, used or not, so that one fraction never changes another's draws.
    u_silent, u_busy, u_quiet, u_parked = rng.random(4)
    n_silent = int(rng.integers(1, 3))
    quiet_length = rng.uniform(0.3, 0.5) * scene.seconds
    quiet_start = rng.uniform(0.0, 1.0) * (scene.seconds - quiet_length)
    layout = scene.layout
    vehicles = list(scene.vehicles)
    quiet = None
    if u_quiet < config.quiet_fraction:
        quiet = (round(float(quiet_start), 3), round(float(quiet_start + quiet_length), 3))
        # The voice fades in and out over 1 s (sound._FADE): keep a margin.
        vehicles = [v for v in vehicles if not (v.sounding and v.visible
                                                and _near_during(v, layout, quiet[0] - 1.0, quiet[1] + 1.0))]
    if u_parked >= config.parked_fraction:
        vehicles = [v for v in vehicles if not v.parked]
    wanted = []
    if u_busy < config.busy_fraction:
        loud = [v for v in vehicles if v.sounding and v.visible]
        silenced = {id(v) for v in loud[config.busy_loud:]}
        vehicles = [dataclasses.replace(v, sounding=False) if id(v) in silenced else v for v in vehicles]
        wanted += ["car"] * _BUSY_EXTRA
    if u_silent < config.silent_fraction:
        wanted += [_SILENT_KINDS[int(rng.choice(len(_SILENT_KINDS), p=_SILENT_WEIGHTS))] for _ in range(n_silent)]
    next_id = max((v.track_id for v in scene.vehicles), default=0) + 1
    for kind in wanted:
        for _ in range(6):  # a few tries to find a free slot in the lane
            mover = _silent_mover(rng, scene, vehicles, next_id, kind)
            if mover is not None:
                vehicles.append(mover)
                next_id += 1
                break
    if quiet is None and len(vehicles) == len(scene.vehicles) and all(a is b for a, b in zip(vehicles, scene.vehicles)):
        return scene
    return dataclasses.replace(scene, vehicles=tuple(vehicles), quiet=quiet)
