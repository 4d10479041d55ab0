"""Scene description: what is where, and when, in one synthetic street clip.

A scene is pure geometry and timing drawn from a seeded generator; pictures
(render.py) and sound (sound.py) are both computed from it, so boxes, pixels
and audio always agree.

World model: a straight street seen side-on from a camera at the kerb. Every
object lives at a depth (metres from the camera); a depth fixes its ground line
in the picture (``Layout.ground_y``) and its scale (``Layout.ppm``, pixels per
metre). Horizontal positions are in pixels of the unshaken frame, so the
lateral distance to the camera is ``(x - width / 2) / ppm(depth)`` metres.
Shake is a whole-picture translation added at render time (``Shake.offset``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import SynthConfig

VEHICLE_CLASSES = ("car", "bus", "truck", "motorbike")
# Movers without an engine sound (listening.py); electric vehicles use the classes above.
SILENT_CLASSES = ("bicycle", "e-scooter")
# (length, height) in metres (riders included) and cruise-speed range in m/s.
_DIMENSIONS = {"car": (4.4, 1.5), "bus": (11.0, 3.2), "truck": (8.0, 3.2), "motorbike": (2.1, 1.6),
               "bicycle": (1.8, 1.75), "e-scooter": (1.1, 1.8)}
_SPEEDS = {"car": (6.0, 13.0), "bus": (5.0, 9.0), "truck": (5.0, 10.0), "motorbike": (7.0, 14.0),
           "bicycle": (3.5, 7.0), "e-scooter": (4.0, 6.5)}
_CLASS_WEIGHTS = (0.5, 0.15, 0.15, 0.2)

# Depths in metres from the camera.
LANE_DEPTHS = (11.0, 8.0)
PARKING_DEPTH = 14.0
FAR_KERB_DEPTH = 15.0
FAR_PAVEMENT_DEPTH = 16.5
BUILDING_DEPTH = 18.0
NEAR_KERB_DEPTH = 7.0
BIKE_LANE_DEPTH = 7.5  # between the near lane and the kerb: cyclists and e-scooters
NEAR_PAVEMENT_DEPTH = 6.6
# A parallel street hidden behind the buildings: its vehicles are heard, never seen.
HIDDEN_STREET_DEPTH = 26.0

SIM_RATE = 100.0  # Hz of the trajectory grid; render and sound interpolate it
_LEAD_IN = 20.0  # s simulated before t = 0 so vehicles arrive from far away
_FAR = 55.0  # m from the frame edge where a vehicle appears / disappears
_ACCEL = 1.5  # m/s^2 pulling away
_MIN_GAP = 2.0  # m between vehicles in one lane


@dataclass(frozen=True)
class Layout:
    """Perspective of the street for a frame of ``width`` x ``height`` pixels."""

    width: int
    height: int

    @property
    def horizon(self) -> float:
        """Picture row (px) that infinitely far ground would reach."""
        return 0.30 * self.height

    def ground_y(self, depth: float) -> float:
        """Picture row (px) of the ground at ``depth`` metres."""
        return self.horizon + 4.32 * self.height / depth

    def ppm(self, depth: float) -> float:
        """Pixels per metre at ``depth`` metres (a 4.4 m car at 8 m is 0.3 H long)."""
        return 0.0667 * self.height * 8.0 / depth


@dataclass(frozen=True)
class Shake:
    """Camera shake: a smooth random translation of the whole picture.

    ``amplitude`` in pixels (0 = tripod-steady); ``freqs`` Hz and ``phases``
    radians of two sinusoids per axis.
    """

    amplitude: float = 0.0
    freqs: tuple[float, float] = (0.0, 0.0)
    phases: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def offset(self, t: float) -> tuple[float, float]:
        """(dx, dy) in pixels of the written frame at time ``t`` seconds."""
        if self.amplitude == 0.0:
            return 0.0, 0.0
        f1, f2 = self.freqs
        p = self.phases
        dx = np.sin(2 * np.pi * f1 * t + p[0]) + 0.5 * np.sin(2 * np.pi * f2 * t + p[1])
        dy = np.sin(2 * np.pi * f2 * t + p[2]) + 0.5 * np.sin(2 * np.pi * f1 * t + p[3])
        return float(self.amplitude * dx / 1.5), float(self.amplitude * dy / 1.5)


@dataclass(frozen=True, eq=False)
class Vehicle:
    """One vehicle and its trajectory.

    ``times`` (s) is the shared simulation grid; ``x`` the centre in pixels of
    the unshaken frame and ``speed`` in m/s at those times, NaN while the vehicle
    does not exist. ``length``/``height`` in pixels. ``sounding``: its engine is
    running (moving or idling); ``visible``: drawn in the picture (False for the
    hidden street); ``parked``: never moves, silent. A visible, silent vehicle that
    is not parked is a silent mover (bicycle, e-scooter or an electric vehicle).
    """

    track_id: int
    kind: str
    depth: float
    direction: int
    length: float
    height: float
    colour: tuple[int, int, int]
    times: np.ndarray
    x: np.ndarray
    speed: np.ndarray
    sounding: bool
    visible: bool
    parked: bool = False

    def centre_at(self, t: float) -> float | None:
        """Centre x (px, unshaken frame) at ``t`` s, or None when absent."""
        i = int(round((t - self.times[0]) * SIM_RATE))
        if not 0 <= i < len(self.times) or np.isnan(self.x[i]):
            return None
        value = float(np.interp(t, self.times, self.x))
        return float(self.x[i]) if np.isnan(value) else value  # next to an appearance/disappearance

    @property
    def silent_mover(self) -> bool:
        """True for a vehicle in the picture that moves without an engine sound."""
        return self.visible and not self.sounding and not self.parked

    def speed_at(self, t: float) -> float:
        """Speed in m/s at ``t`` s (the nearest simulation step), NaN when absent."""
        i = int(round((t - self.times[0]) * SIM_RATE))
        return float(self.speed[i]) if 0 <= i < len(self.times) else float("nan")

    def stopped_on_screen(self, width: int) -> bool:
        """True when the vehicle stands still with its engine on inside the frame."""
        still = (self.speed == 0.0) & (np.abs(self.x - width / 2) < width / 2)
        return bool(self.sounding and self.visible and np.any(still))


@dataclass(frozen=True)
class Pedestrian:
    """A silent walker: centre x (px) at t = 0, velocity in px/s, step rate in Hz."""

    depth: float
    x0: float
    velocity: float
    step_hz: float
    height: float
    colour: tuple[int, int, int]

    def centre_at(self, t: float) -> float:
        """Centre x in pixels of the unshaken frame at ``t`` seconds."""
        return self.x0 + self.velocity * t


@dataclass(frozen=True)
class Tree:
    """A silent tree whose leaf blobs sway.

    ``x`` trunk centre (px); ``blobs`` rows of (dx, dy, radius) in pixels
    around the crown centre; sway ``amplitude`` px at ``sway_hz``; ``phases``
    (radians) and ``shades`` (brightness factors) one per blob.
    """

    depth: float
    x: float
    trunk_height: float
    blobs: np.ndarray
    amplitude: float
    sway_hz: float
    phases: np.ndarray
    shades: np.ndarray


@dataclass(frozen=True)
class TrafficLight:
    """Red between ``red_start`` and ``red_end`` seconds, green otherwise.

    ``stop_x`` maps a direction (+1 rightwards, -1 leftwards) to the picture
    column (px) where a vehicle's front stops.
    """

    red_start: float
    red_end: float
    stop_x: dict = field(default_factory=dict)
    pole_x: float = 0.0

    def red(self, t: float) -> bool:
        """Whether the light shows red at ``t`` seconds."""
        return self.red_start <= t < self.red_end


@dataclass(frozen=True)
class Scene:
    """Everything in one clip. ``vehicles`` holds moving, stopped, parked and
    hidden-street vehicles alike (see the Vehicle flags). ``lane_directions``: the
    travel direction (+1 rightwards) of each of LANE_DEPTHS; ``quiet``: (start, end) s
    of a stretch without vehicle sound near the camera, or None."""

    layout: Layout
    seconds: float
    night: bool
    shake: Shake
    vehicles: tuple[Vehicle, ...]
    pedestrians: tuple[Pedestrian, ...]
    trees: tuple[Tree, ...]
    light: TrafficLight | None
    background_seed: int
    lane_directions: tuple[int, int] = (1, -1)
    quiet: tuple[float, float] | None = None

    def annotated(self) -> tuple[Vehicle, ...]:
        """The vehicles the ground truth boxes: visible and sounding."""
        return tuple(v for v in self.vehicles if v.visible and v.sounding)

    def summary(self) -> dict:
        """Counts of each object type plus the night and shake flags (JSON-ready)."""
        moving = {k: 0 for k in VEHICLE_CLASSES}
        for v in self.annotated():
            moving[v.kind] += 1
        return {
            "sounding_vehicles": moving,
            "stopped_sounding": sum(v.stopped_on_screen(self.layout.width) for v in self.vehicles),
            "parked_silent": sum(v.parked for v in self.vehicles),
            "offscreen_sounds": sum(v.sounding and not v.visible for v in self.vehicles),
            "silent_movers": {k: sum(v.silent_mover and v.kind == k for v in self.vehicles)
                              for k in VEHICLE_CLASSES + SILENT_CLASSES},
            "quiet_stretch": list(self.quiet) if self.quiet else None,
            "pedestrians": len(self.pedestrians),
            "trees": len(self.trees),
            "traffic_light": self.light is not None,
            "night": self.night,
            "shake": self.shake.amplitude > 0,
        }


def vehicle_box(scene: Scene, vehicle: Vehicle, t: float) -> tuple[float, float, float, float] | None:
    """Unclipped box (x, y, w, h) of ``vehicle`` at ``t`` s, top-left, in pixels
    of the written (shaken) frame; None when the vehicle does not exist then."""
    cx = vehicle.centre_at(t)
    if cx is None:
        return None
    dx, dy = scene.shake.offset(t)
    bottom = scene.layout.ground_y(vehicle.depth)
    return cx - vehicle.length / 2 + dx, bottom - vehicle.height + dy, vehicle.length, vehicle.height


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    palette = ((40, 40, 200), (200, 200, 200), (30, 30, 30), (160, 90, 30), (40, 150, 220),
               (90, 90, 90), (30, 120, 40), (220, 220, 230), (60, 40, 120), (20, 180, 200))
    base = np.array(palette[rng.integers(len(palette))], float)
    return tuple(int(c) for c in np.clip(base + rng.normal(0, 12, 3), 0, 255))


def _simulate(times: np.ndarray, t_start: float, x_start: float, direction: int, ppm: float,
              cruise: float, half_length: float, light: TrafficLight | None,
              x_end: float) -> tuple[np.ndarray, np.ndarray]:
    """Integrate one vehicle's motion on ``times``: cruise, brake for a red light
    in front of it, idle, pull away; NaN before ``t_start`` and after ``x_end``."""
    x = np.full(times.shape, np.nan)
    speed = np.full(times.shape, np.nan)
    dt = 1.0 / SIM_RATE
    pos, v = x_start, cruise
    stop = light.stop_x[direction] if light else None
    for i in np.nonzero(times >= t_start)[0]:
        if (pos - x_end) * direction > 0:
            break
        x[i], speed[i] = pos, v
        target = cruise
        if stop is not None and light.red(times[i]):
            dist = (stop - (pos + direction * half_length)) * direction / ppm
            need = v * v / (2 * max(dist, 1e-3))
            if dist > 0 and need > 1.2 and need < 5.0:
                target = max(v - need * dt, 0.0)
            elif 0 <= dist <= 0.5 and v < 0.5:
                target = 0.0
        v = target if target < v else min(target, v + _ACCEL * dt)
        if v < 0.05 and target == 0.0:
            v = 0.0
        pos += direction * v * ppm * dt
    return x, speed


def _overlaps(a: Vehicle, b: Vehicle, gap: float) -> bool:
    both = ~np.isnan(a.x) & ~np.isnan(b.x)
    return bool(np.any(np.abs(a.x[both] - b.x[both]) < (a.length + b.length) / 2 + gap))


def _moving_vehicle(rng, layout: Layout, times, track_id: int, lane: int, direction: int,
                    light: TrafficLight | None, arrive_at: float | None, seconds: float,
                    kind: str | None = None, depth: float | None = None, visible: bool = True) -> Vehicle:
    kind = kind or VEHICLE_CLASSES[rng.choice(len(VEHICLE_CLASSES), p=_CLASS_WEIGHTS)]
    depth = depth if depth is not None else LANE_DEPTHS[lane]
    ppm = layout.ppm(depth)
    length_m, height_m = _DIMENSIONS[kind]
    cruise = rng.uniform(*_SPEEDS[kind])
    length, height = length_m * ppm, height_m * ppm
    edge = layout.width / 2 - direction * (layout.width / 2 + length / 2)  # centre when just off-screen
    far = _FAR * ppm
    if arrive_at is None:
        t_edge = rng.uniform(-0.25 * seconds, 0.8 * seconds)
    else:  # time the front crosses the entry edge so it reaches the stop line at arrive_at
        front_edge = edge + direction * length / 2
        t_edge = arrive_at - (light.stop_x[direction] - front_edge) * direction / ppm / cruise
    t_start = t_edge - _FAR / cruise
    x_start = edge - direction * far
    if t_start < times[0]:
        x_start += direction * (times[0] - t_start) * cruise * ppm
        t_start = times[0]
    x_end = layout.width / 2 + direction * (layout.width / 2 + length / 2 + far)
    x, speed = _simulate(times, t_start, x_start, direction, ppm, cruise, length / 2,
                         light if visible else None, x_end)
    return Vehicle(track_id, kind, depth, direction, length, height, _colour(rng), times, x, speed,
                   sounding=True, visible=visible)


def on_screen_during(v: Vehicle, layout: Layout, seconds: float) -> bool:
    """Whether ``v`` is (at least partly) in the picture at some time in [0, seconds)."""
    inside = (v.times >= 0) & (v.times < seconds)
    return bool(np.any(np.abs(v.x[inside] - layout.width / 2) < layout.width / 2 + v.length / 2))


def _parked(rng, layout: Layout, times, count: int) -> list[Vehicle]:
    ppm = layout.ppm(PARKING_DEPTH)
    placed: list[Vehicle] = []
    for _ in range(count * 4):
        if len(placed) == count:
            break
        kind = "car" if rng.random() < 0.8 else "truck"
        length_m, height_m = _DIMENSIONS[kind]
        length = length_m * ppm
        cx = rng.uniform(length / 2, layout.width - length / 2)
        if any(abs(cx - p.x[0]) < (length + p.length) / 2 + 0.5 * ppm for p in placed):
            continue
        placed.append(Vehicle(0, kind, PARKING_DEPTH, int(rng.choice((-1, 1))), length, height_m * ppm,
                              _colour(rng), times, np.full(times.shape, cx), np.zeros(times.shape),
                              sounding=False, visible=True, parked=True))
    return placed


def _pedestrian(rng, layout: Layout) -> Pedestrian:
    depth = FAR_PAVEMENT_DEPTH if rng.random() < 0.5 else NEAR_PAVEMENT_DEPTH
    ppm = layout.ppm(depth)
    speed = rng.uniform(1.0, 1.6)
    return Pedestrian(depth, rng.uniform(0, layout.width), float(rng.choice((-1, 1))) * speed * ppm,
                      speed / 0.75, 1.7 * ppm, _colour(rng))


def _tree(rng, layout: Layout) -> Tree:
    ppm = layout.ppm(FAR_PAVEMENT_DEPTH)
    n = int(rng.integers(6, 10))
    radius = rng.uniform(0.7, 1.3, n) * ppm
    offsets = rng.normal(0, 1.0, (n, 2)) * ppm
    return Tree(FAR_PAVEMENT_DEPTH, rng.uniform(0.05, 0.95) * layout.width, rng.uniform(4.0, 5.5) * ppm,
                np.column_stack([offsets, radius]), rng.uniform(0.25, 0.5) * ppm, rng.uniform(0.4, 0.9),
                rng.uniform(0, 2 * np.pi, n), rng.uniform(0.7, 1.2, n))


def make_scene(config: SynthConfig, rng: np.random.Generator, night: bool, shake: bool) -> Scene:
    """Draw one random scene from ``rng`` for a clip of ``config.seconds`` s.

    ``night``/``shake`` are decided by the caller so that they do not change
    the rest of the scene. Aims for 2-5 passing vehicles (fewer where lanes are full), 1-3 parked ones,
    0-3 pedestrians, 1-3 trees; a traffic light (with a vehicle arriving while
    it is red) with probability ``config.light_fraction`` and a hidden-street
    vehicle with probability ``config.offscreen_fraction``.
    """
    layout = Layout(config.width, config.height)
    seconds = config.seconds
    times = np.arange(-_LEAD_IN, seconds + 1.0, 1.0 / SIM_RATE)
    directions = (-1, 1) if rng.random() < 0.5 else (1, -1)
    light = None
    if rng.random() < config.light_fraction:
        red_start = rng.uniform(0.05, 0.3) * seconds
        light = TrafficLight(red_start, red_start + rng.uniform(0.4, 0.6) * seconds,
                             {1: 0.6 * layout.width, -1: 0.4 * layout.width}, rng.uniform(0.45, 0.55) * layout.width)
    vehicles: list[Vehicle] = []
    wanted = int(rng.integers(2, 6))
    for _ in range(wanted * 4):
        if len(vehicles) == wanted:
            break
        lane = int(rng.integers(len(LANE_DEPTHS)))
        stopper = light is not None and not vehicles
        arrive = light.red_start + rng.uniform(0.2, 0.5) * (light.red_end - light.red_start) if stopper else None
        v = _moving_vehicle(rng, layout, times, len(vehicles) + 1, lane, directions[lane], light, arrive, seconds,
                            kind="car" if stopper else None)
        if not on_screen_during(v, layout, seconds):
            continue
        if any(o.depth == v.depth and _overlaps(o, v, _MIN_GAP * layout.ppm(v.depth)) for o in vehicles):
            continue
        vehicles.append(v)
    if rng.random() < config.offscreen_fraction:
        kind = VEHICLE_CLASSES[int(rng.integers(len(VEHICLE_CLASSES)))]
        hidden = _moving_vehicle(rng, layout, times, len(vehicles) + 1, 0, int(rng.choice((-1, 1))), None, None,
                                 seconds, kind=kind, depth=HIDDEN_STREET_DEPTH, visible=False)
        vehicles.append(hidden)
    parked = _parked(rng, layout, times, int(rng.integers(1, 4)))
    pedestrians = tuple(_pedestrian(rng, layout) for _ in range(int(rng.integers(0, 4))))
    trees = tuple(_tree(rng, layout) for _ in range(int(rng.integers(1, 4))))
    background_seed = int(rng.integers(2**31))
    # Drawn even for steady clips so that the shake flag changes nothing else.
    amplitude = rng.uniform(config.shake_amplitude / 200, config.shake_amplitude / 100) * layout.width
    shake_params = Shake(amplitude if shake else 0.0, tuple(rng.uniform(2.0, 6.0, 2)),
                         tuple(rng.uniform(0, 2 * np.pi, 4)))
    return Scene(layout, seconds, night, shake_params, tuple(vehicles) + tuple(parked), pedestrians, trees,
                 light, background_seed, directions)
