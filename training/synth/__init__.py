"""Procedural street scenes with sound, written in the Urbansas layout.

    python -m training.synth --out DIR --clips N --seed S [--size 640x360] [--seconds 10] ...

or from Python ``generate(out_dir, clips, seed, SynthConfig(...)) -> list[ClipInfo]``.

Each clip (seeded, deterministic) shows a street with moving vehicles (car,
bus, truck, motorbike) that sound, vehicles idling at a red light that still
sound, parked vehicles that are silent, swaying trees and walking pedestrians
(silent, moving distractors), optionally night lighting and camera shake, and
may carry the sound of a vehicle on a hidden street (annotated "offscreen").
Scenes that only listening can solve (listening.py): silent movers (cyclists,
e-scooters, electric cars), busy traffic with one (--busy-loud 1) or two loud vehicles, quiet
stretches with only ambience (ambience.py: wind, birds, voices), and clips
without parked vehicles; annotations/cases.json labels each 2 fps time with its
evaluation case (training.cases).

Ground truth convention: video_annotations.csv boxes ONLY the sounding
vehicles in the picture (moving or idling), because that is what the
localisation benchmark scores; parked vehicles, trees and pedestrians are
never boxed. audio_annotations.csv events span the time each sounding vehicle
is on screen, so the REFERENCE section-6 selection rule picks frames where a
visible vehicle sounds. Details: ``annotations.CONVENTION`` and DIR/README.md.

Sound is spatial (version 1.2): every source is rendered to each microphone of the
configured array (``--array``, default a 20 cm pair) with its propagation delay and
distance; the set carries annotations/array.json and azimuths.json (each sounding
vehicle's true direction per 2 fps time).

Modules: config (SynthConfig), scene (geometry and timing), listening (silent
movers, busy traffic, quiet stretches), sprites and render (pictures), camera
(positions in metres, field of view), spatial, sound and ambience (audio),
annotations (CSV rows, cases, azimuths, README), writer (files), generate (the whole run).
"""
from .config import SynthConfig, SynthError
from .generate import ClipInfo, generate

__all__ = ["SynthConfig", "SynthError", "ClipInfo", "generate"]
