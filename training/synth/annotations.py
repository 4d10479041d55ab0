"""Ground truth rows in the Urbansas CSV layout, and the README that explains them
(the convention is CONVENTION below)."""
from __future__ import annotations

import numpy as np

from flowgrad.spatial.geometry import ArrayGeometry
from training import cases

from . import camera
from . import scene as sc
from .config import ANNOTATION_FPS, SynthConfig
from .spatial import azimuth_elevation_deg

VIDEO_COLUMNS = ("frame_id", "track_id", "x", "y", "w", "h", "class_id", "visibility", "label", "filename",
                 "city", "location_id", "time", "night")
AUDIO_COLUMNS = ("filename", "class_id", "label", "non_identifiable_vehicle_sound", "start", "end")
CLASS_IDS = {"motorbike": 0, "car": 1, "bus": 2, "truck": 3, "offscreen": 4}
CITY = "synthville"

CONVENTION = """\
The localisation benchmark scores sounding vehicles only, so:

* ``video_annotations.csv`` boxes every vehicle whose engine is running and
  that is (at least partly) in the picture: moving vehicles and vehicles idling
  at a red light. Parked vehicles (silent), pedestrians and trees are never
  boxed. One row per box per 2 fps frame: ``frame_id`` is the frame index of
  the 2 fps video, ``time = frame_id / 2`` s; x, y, w, h are the top-left
  corner and size in pixels of the written frame (camera shake included),
  clipped to the frame; ``visibility`` is 1 when the box lies wholly inside
  the frame, 0 when it was clipped. Each clip also has one clip-level row
  with ``time = -1`` (all numeric fields -1, label "-1") carrying its city,
  location and night flag even when it has no boxes.
* ``audio_annotations.csv`` has one event per visible sounding vehicle from
  the first to the last moment it is in the picture (it is audible for all of
  that time), labelled with its class; one "offscreen" event (class 4) per
  vehicle on the hidden street behind the buildings while it is within twice
  its depth of the camera laterally; and, for a clip with no event at all, a
  single Urbansas-style "-1" row (class_id -1, label "-1",
  non_identifiable_vehicle_sound 1, start = end = -1; the evaluation drops
  it). Urbansas also writes such rows beside real events; we do not. Events
  run from 0 to the clip length at most; a vehicle on screen at t = 0 thus
  starts at 0 and the strict rule start < t leaves out the frame at t = 0.
* Class ids: motorbike 0, car 1, bus 2, truck 3, offscreen 4 (car, bus and
  offscreen as in Urbansas' published sample rows; motorbike and truck ours).
* Silent movers (cyclists, e-scooter riders, electric vehicles) move through
  the picture without an engine sound: like parked vehicles they are never
  boxed and have no event. During a quiet stretch no vehicle sounds within 25 m
  of the camera; only the ambience (wind, birds, voices; synthesised, see
  SOURCES) and possibly a hidden-street vehicle are heard.
* ``array.json`` is the microphone array (flowgrad.spatial.geometry's ``--mics``
  format: positions in metres in camera coordinates, x right, y down, z forward, and
  the camera's horizontal field of view); ``azimuths.json`` gives, per 2 fps time,
  every sounding vehicle that exists then (in the picture or not, near or far) with
  the true azimuth and elevation (degrees, positive right and up) of its box centre
  seen from the camera, whether it is in the picture, and its class. The sound heard
  at a time left the vehicle distance / 343 m/s earlier (about 2 degrees of travel at
  most for a nearby vehicle).
* ``cases.json`` gives every 2 fps time of every clip one evaluation case
  (training.cases: moving-sounding, stopped-sounding, silent-movers-present,
  parked-present, offscreen-only, quiet, shake, night, with their precedence).
"""


def frame_count(seconds: float, fps: int) -> int:
    """Frames in a video of ``seconds`` s at ``fps``: frame i shows time i / fps."""
    return max(1, int(round(seconds * fps)))


def _clip_box(box, width: int, height: int):
    x, y, w, h = box
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return (x0, y0, x1 - x0, y1 - y0), int((x0, y0, x1, y1) == (x, y, x + w, y + h))


def video_rows(scene: sc.Scene, clip_id: str) -> list[tuple]:
    """Rows of ``video_annotations.csv`` for one clip, in VIDEO_COLUMNS order
    (clip-level row first, then boxes by 2 fps frame and track id)."""
    night = int(scene.night)
    rows = [(-1, -1, -1, -1, -1, -1, -1, -1, "-1", clip_id, CITY, clip_id, -1, night)]
    layout = scene.layout
    for k in range(frame_count(scene.seconds, ANNOTATION_FPS)):
        t = k / ANNOTATION_FPS
        for v in sorted(scene.annotated(), key=lambda v: v.track_id):
            box = sc.vehicle_box(scene, v, t)
            clipped = box and _clip_box(box, layout.width, layout.height)
            if not clipped:
                continue
            (x, y, w, h), visibility = clipped
            rows.append((k, v.track_id, f"{x:.2f}", f"{y:.2f}", f"{w:.2f}", f"{h:.2f}", CLASS_IDS[v.kind],
                         visibility, v.kind, clip_id, CITY, clip_id, f"{t:.1f}", night))
    return rows


def _runs(times: np.ndarray, on: np.ndarray) -> list[tuple[float, float]]:
    """(first, last) time of each run of True in ``on``."""
    edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1
    return [(float(times[a]), float(times[b])) for a, b in zip(starts, ends)]


def _event_span(start: float, end: float, seconds: float, step: float) -> tuple[float, float]:
    """Stretch a run sampled every ``step`` s to the clip's edges it touches."""
    return (0.0 if start < step else start), (seconds if end > seconds - step else end)


def audio_rows(scene: sc.Scene, clip_id: str) -> list[tuple]:
    """Rows of ``audio_annotations.csv`` for one clip, in AUDIO_COLUMNS order."""
    layout = scene.layout
    rows = []
    for v in sorted((v for v in scene.vehicles if v.sounding), key=lambda v: v.track_id):
        inside = (v.times >= 0) & (v.times <= scene.seconds)
        times = v.times[inside]
        if v.visible:
            on = np.array([bool((b := sc.vehicle_box(scene, v, t)) and _clip_box(b, layout.width, layout.height))
                           for t in times])
            label = v.kind
        else:
            lateral = (v.x[inside] - layout.width / 2) / layout.ppm(v.depth)
            on = np.abs(np.nan_to_num(lateral, nan=np.inf)) <= 2 * v.depth
            label = "offscreen"
        for run in _runs(times, on):
            start, end = _event_span(*run, scene.seconds, 1.0 / sc.SIM_RATE)
            rows.append((clip_id, CLASS_IDS[label], label, 0, f"{start:.3f}", f"{end:.3f}"))
    return rows or [(clip_id, -1, "-1", 1, "-1.0", "-1.0")]


def _in_picture(scene: sc.Scene, v: sc.Vehicle, t: float) -> bool:
    box = sc.vehicle_box(scene, v, t)
    return bool(box and _clip_box(box, scene.layout.width, scene.layout.height))


def case_rows(scene: sc.Scene, clip_id: str) -> list[tuple[str, float, str]]:
    """(clip, time, case) for every 2 fps time of the clip (training.cases: the cases
    and their precedence). Sound on screen follows the video boxes (sounding vehicles
    in the picture), sound off screen the "offscreen" events of :func:`audio_rows`."""
    offscreen = [(float(r[4]), float(r[5])) for r in audio_rows(scene, clip_id) if r[2] == "offscreen"]
    clip_level = {"shake"} if scene.shake.amplitude > 0 else set()
    if scene.night:
        clip_level.add("night")
    rows = []
    for k in range(frame_count(scene.seconds, ANNOTATION_FPS)):
        t = k / ANNOTATION_FPS
        applies = set(clip_level)
        shown = [v for v in scene.vehicles if v.visible and _in_picture(scene, v, t)]
        loud = [v for v in shown if v.sounding]
        if any(v.speed_at(t) == 0.0 for v in loud):
            applies.add("stopped-sounding")
        if any(v.speed_at(t) > 0.0 for v in loud):
            applies.add("moving-sounding")
        if any(v.silent_mover for v in shown):
            applies.add("silent-movers-present")
        if any(v.parked for v in shown):
            applies.add("parked-present")
        if not loud and any(start <= t <= end for start, end in offscreen):
            applies.add("offscreen-only")
        rows.append((clip_id, t, cases.pick(applies)))
    return rows


AZIMUTHS_VERSION = 1


def azimuth_entries(scene: sc.Scene) -> list[dict]:
    """``azimuths.json``'s list for one clip: per 2 fps time ``{"time": s, "sources":
    [{"azimuth_deg", "elevation_deg", "onscreen", "class"}, ...]}``, one source per
    sounding vehicle that exists at that time, by track id; directions from
    :func:`camera.vehicle_positions_m` (degrees, 3 decimals)."""
    sounding = sorted((v for v in scene.vehicles if v.sounding), key=lambda v: v.track_id)
    entries = []
    for k in range(frame_count(scene.seconds, ANNOTATION_FPS)):
        t = k / ANNOTATION_FPS
        found = []
        for v in sounding:
            if v.centre_at(t) is None:
                continue
            az, el = azimuth_elevation_deg(camera.vehicle_positions_m(scene.layout, v, np.array([t]))[0])
            found.append({"azimuth_deg": round(float(az), 3), "elevation_deg": round(float(el), 3),
                          "onscreen": v.visible and _in_picture(scene, v, t), "class": v.kind})
        entries.append({"time": t, "sources": found})
    return entries


def array_geometry(config: SynthConfig) -> ArrayGeometry:
    """The set's ``array.json``: the configured microphones and the synth camera's field of view."""
    return ArrayGeometry(config.mic_positions_m, camera.hfov_deg(sc.Layout(config.width, config.height)))


def readme(config: SynthConfig) -> str:
    """Text of the output directory's README.md (layout and ground-truth convention)."""
    rates = ", ".join(f"video/video_{r}fps/<clip>.mp4" for r in config.video_rates)
    return f"""# Synthetic street scenes (Urbansas layout)

Made by `python -m training.synth` (see synth.json for the exact arguments and seed).
Every clip is {config.seconds:g} s, {config.width}x{config.height} px.

- {rates}: H.264 yuv420p; the {config.fps} fps file also carries the clip's audio as AAC stereo
  (microphones 0 and 1 of array.json).
- audio/<clip>.wav: 16-bit PCM at {config.audio_rate} Hz, one channel per microphone
  ({len(config.mic_positions_m)}), each hearing every vehicle with its own propagation delay (343 m/s)
  and 1 / distance level, plus a diffuse street background.
- annotations/array.json, annotations/azimuths.json: the microphones and every sounding vehicle's
  true direction per 2 fps time (below).
- annotations/video_annotations.csv, annotations/audio_annotations.csv: ground truth below.
- annotations/cases.json: the evaluation case of every 2 fps time (format in training/cases.py).
- SOURCES: where every sound comes from (all synthesised).

## Ground truth
{CONVENTION}

The FlowGrad/Urbansas evaluation selection (drop offscreen and non-identifiable events,
drop boxes with negative coordinates or visibility != 1, keep the boxes at time t when an
event has start < t < end) therefore picks frames in which a visible vehicle sounds.
Silent parked vehicles, silent movers, swaying trees and walking pedestrians are distractors:
a method that localises them scores false positives, as in Urbansas.
"""
