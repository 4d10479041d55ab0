"""Evaluation cases: one label per (clip, time) saying what kind of scene the pair shows.

``ROOT/annotations/cases.json`` (written by ``python -m training.synth``, read by
``python -m training.evaluate``; a set without it, such as real Urbansas, has no cases)::

    {"format": "flowgrad-cases", "version": 1,
     "precedence": ["shake", "night", "stopped-sounding", ...],
     "pairs": [{"clip": "synth7_0000", "time": 0.5, "case": "moving-sounding"}, ...]}

``time`` is a 2 fps annotation time in seconds (the ``time`` column of
video_annotations.csv). Readers accept a newer minor addition (unknown top-level
keys) but refuse another ``format``, a ``version`` other than 1, an unknown case or
a (clip, time) listed twice.

When several cases apply to a pair, the first in ``PRECEDENCE`` wins: the clip-level
conditions (camera shake, then night) before anything else, then the most specific
scene condition:

1. shake: the camera shakes (the whole clip).
2. night: night lighting (the whole clip).
3. stopped-sounding: a sounding vehicle idles (speed 0) in the picture.
4. silent-movers-present: a silent mover (cyclist, e-scooter, electric vehicle) is in the picture.
5. offscreen-only: no vehicle sounds in the picture, one sounds off screen.
6. parked-present: a parked (silent) vehicle is in the picture.
7. moving-sounding: a moving vehicle sounds in the picture.
8. quiet: no vehicle sounds, on or off screen (ambience only), and none of the above.

A positive pair (a vehicle sounds in the picture) is therefore stopped-sounding,
silent-movers-present, parked-present or moving-sounding (or shake / night); a pair
without an on-screen vehicle sound is silent-movers-present, offscreen-only,
parked-present or quiet (or shake / night).
"""
from __future__ import annotations

import json
from pathlib import Path

from flowgrad.errors import InputError

FORMAT = "flowgrad-cases"
VERSION = 1
PRECEDENCE = ("shake", "night", "stopped-sounding", "silent-movers-present", "offscreen-only", "parked-present",
              "moving-sounding", "quiet")
FILENAME = "cases.json"


class CasesError(InputError):
    """A cases file that cannot be used; the message names the file and the problem."""


def pick(applies: set[str]) -> str:
    """The case of a pair to which the cases in ``applies`` apply: the first of PRECEDENCE,
    ``quiet`` when none does."""
    unknown = applies - set(PRECEDENCE)
    if unknown:
        raise ValueError(f"unknown cases {sorted(unknown)}; known: {', '.join(PRECEDENCE)}")
    return next((c for c in PRECEDENCE if c in applies), "quiet")


def _key(clip: str, time: float) -> tuple[str, float]:
    return clip, round(float(time), 3)


def write(path: Path, pairs: list[tuple[str, float, str]]) -> None:
    """Write ``pairs`` of (clip, time in s, case) as a cases file (format above)."""
    for _, _, case in pairs:
        if case not in PRECEDENCE:
            raise ValueError(f"unknown case {case!r}")
    doc = {"format": FORMAT, "version": VERSION, "precedence": list(PRECEDENCE),
           "pairs": [{"clip": clip, "time": round(float(t), 3), "case": case} for clip, t, case in pairs]}
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


def read(path: Path) -> dict[tuple[str, float], str]:
    """The cases of a cases file as {(clip, time rounded to 1 ms): case}; CasesError when unusable."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CasesError(f"{path}: not a readable JSON cases file ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CasesError(f"{path}: not a cases file (\"format\" must be {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise CasesError(f"{path}: cases file version {doc.get('version')!r}; this reader knows version {VERSION}")
    pairs = doc.get("pairs")
    if not isinstance(pairs, list):
        raise CasesError(f"{path}: \"pairs\" must be a list")
    out: dict[tuple[str, float], str] = {}
    for i, p in enumerate(pairs):
        try:
            clip, time, case = p["clip"], float(p["time"]), p["case"]
        except (TypeError, KeyError, ValueError):
            raise CasesError(f"{path}: pair {i} needs \"clip\", a numeric \"time\" and \"case\"") from None
        if not isinstance(clip, str) or case not in PRECEDENCE:
            raise CasesError(f"{path}: pair {i}: unknown case {case!r} (known: {', '.join(PRECEDENCE)})")
        key = _key(clip, time)
        if key in out:
            raise CasesError(f"{path}: pair {i}: {clip} at {time} s is listed twice")
        out[key] = case
    return out


def load(root: Path) -> dict[tuple[str, float], str] | None:
    """The cases of a benchmark folder (ROOT/annotations/cases.json), or None when it has none."""
    path = Path(root) / "annotations" / FILENAME
    return read(path) if path.exists() else None


def case_of(cases: dict[tuple[str, float], str] | None, clip: str, time: float) -> str | None:
    """The case of (clip, time) in ``cases`` (from :func:`read`), None without one."""
    return None if cases is None else cases.get(_key(clip, time))
