"""The VGG-Sound Source (VGG-SS) test set, as its authors distribute it.

Layout under ROOT (frames, flow partner and audio as training.data.stills)::

    vggss.json      a JSON list of {"file": <id>, "class": <label>,
                    "bbox": [[x1, y1, x2, y2], ...]} with corners normalised
                    to [0, 1] of the frame (another file: ``annotations=``)

Ground truth (the LVS / Hear The Flow evaluation code): each corner becomes
int(224 * max(v, 0)), each box fills rows y1..y2-1 and columns x1..x2-1, and
the union is binary. Like that code, values above 1 are cut at the grid's
edge and an inverted box fills nothing.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from flowgrad.errors import InputError

from .stills import StillEntry, StillEval, resolve_entry
from .windows import DataConfig, SkipCounter

SKIP_BAD_ENTRY = "malformed JSON entry"
SKIP_DUPLICATE = "clip listed twice in the JSON"


class VGGSSError(InputError):
    """VGG-SS annotations that cannot be used: the file at all (missing, not JSON, not a list), or
    one entry (:func:`parse_entry`; the reader counts and skips those)."""


def union_gt(boxes: Sequence[Sequence[float]], out: int = 224) -> np.ndarray:
    """VGG-SS ground truth: (out, out) float32 in {0, 1} from normalised (x1, y1, x2, y2) boxes."""
    gt = np.zeros((out, out), dtype=np.float32)
    for box in boxes:
        x1, y1, x2, y2 = (int(out * max(v, 0)) for v in box)
        gt[y1:y2, x1:x2] = 1.0
    return gt


def parse_entry(entry, index: int) -> tuple[str, list[tuple[float, ...]]]:
    """(clip id, boxes) of one JSON list entry; VGGSSError saying what is wrong."""
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not entry["file"].strip():
        raise VGGSSError(f"entry {index}: needs a non-empty string 'file'")
    clip, boxes = entry["file"].strip(), entry.get("bbox")
    if not isinstance(boxes, list) or not boxes:
        raise VGGSSError(f"entry {index} ({clip}): 'bbox' must be a non-empty list of [x1, y1, x2, y2]")
    parsed = []
    for box in boxes:
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)):
            raise VGGSSError(f"entry {index} ({clip}): bbox {box!r} is not four finite numbers")
        parsed.append(tuple(float(v) for v in box))
    return clip, parsed


def read_annotations(path: Path, skipped: SkipCounter) -> list[tuple[str, list[tuple[float, ...]]]]:
    """Usable (clip, boxes) entries of a VGG-SS JSON file in file order; bad entries counted.

    Raises VGGSSError when the file is missing, not JSON or not a list.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VGGSSError(f"{path}: cannot read the VGG-SS annotations ({e})") from None
    if not isinstance(data, list):
        raise VGGSSError(f"{path}: expected a JSON list of {{file, class, bbox}}, got {type(data).__name__}")
    out, seen = [], set()
    for i, entry in enumerate(data):
        try:
            clip, boxes = parse_entry(entry, i)
        except VGGSSError as e:
            skipped.skip(SKIP_BAD_ENTRY, f"{path}: {e}")
            continue
        if clip in seen:
            skipped.skip(SKIP_DUPLICATE, f"{path}: {clip}")
            continue
        seen.add(clip)
        out.append((clip, boxes))
    return out


class VGGSSEval(StillEval):
    """The VGG-SS test clips under ``root`` as Samples with the binary union gt.

    annotations: the JSON file (default ROOT/vggss.json). Malformed entries and
    clips missing a frame, flow partner or audio are counted in ``.skipped``.
    """

    def __init__(self, root: Path, config: DataConfig = DataConfig(), cache=None,
                 annotations: Optional[Path] = None) -> None:
        root = Path(root)
        skipped = SkipCounter()
        entries: list[StillEntry] = []
        for clip, boxes in read_annotations(annotations or root / "vggss.json", skipped):
            entry = resolve_entry(root, clip, union_gt(boxes, config.input_size[0]), skipped)
            if entry is not None:
                entries.append(entry)
        super().__init__(entries, config, skipped, cache=cache)
