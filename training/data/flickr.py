"""The Flickr-SoundNet sound-localisation test set, as its authors distribute it.

Layout under ROOT (frames, flow partner and audio as training.data.stills)::

    Annotations/<id>.xml     annotator boxes on a 256 x 256 grid (below)
    flickr_test.csv          optional: the clip ids to evaluate, first column,
                             no header (LVS's 250-clip list); default: every XML

An XML holds one element per annotator, each holding ``bbox`` elements whose
first child is skipped (an index) and whose next four are xmin, ymin, xmax,
ymax in pixels of the 256 x 256 grid (children named xmin/ymin/xmax/ymax are
read by name)::

    <annotation>
      <object><bbox><idx>0</idx><xmin>10</xmin><ymin>20</ymin><xmax>120</xmax><ymax>200</ymax></bbox></object>
      ...
    </annotation>

Ground truth (the LVS / Hear The Flow evaluation code): each box scaled to
224 x 224 with int(224 * v / 256) and filled as rows ymin..ymax-1, columns
xmin..xmax-1; the boxes are SUMMED, halved and capped at 1, a soft consensus
map (two annotators agreeing give 1, one gives 0.5).
"""
from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

import numpy as np

from flowgrad.errors import InputError

from .stills import StillEntry, StillEval, resolve_entry
from .windows import DataConfig, SkipCounter

GRID = 256
SKIP_BAD_XML = "malformed annotation XML"
SKIP_NO_XML = "listed clip without an annotation XML"
_CORNERS = ("xmin", "ymin", "xmax", "ymax")


class FlickrError(InputError):
    """Flickr-SoundNet data that cannot be used: the set at all (no Annotations folder, unreadable
    list), or one annotation XML (:func:`parse_boxes`; the reader counts and skips those)."""


def parse_boxes(path: Path) -> list[tuple[int, int, int, int]]:
    """The (xmin, ymin, xmax, ymax) boxes of one annotation XML, 256-grid pixels.

    Raises FlickrError naming the file for unparsable XML, a bbox without four
    integer corners, corners outside [0, 256] or inverted.
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise FlickrError(f"{path}: not readable XML ({e})") from None
    boxes = []
    for bbox in root.iter("bbox"):
        children = list(bbox)
        named = {c.tag: c.text for c in children}
        texts = [named[k] for k in _CORNERS] if all(k in named for k in _CORNERS) else \
            [c.text for c in children[1:5]]
        try:
            values = tuple(int(str(t).strip()) for t in texts)
        except ValueError:
            values = ()
        if len(values) != 4:
            raise FlickrError(f"{path}: a bbox needs four integer corners after its first child, got {texts}")
        x1, y1, x2, y2 = values
        if not (0 <= x1 <= x2 <= GRID and 0 <= y1 <= y2 <= GRID):
            raise FlickrError(f"{path}: bbox {values} is not 0 <= min <= max <= {GRID}")
        boxes.append(values)
    if not boxes:
        raise FlickrError(f"{path}: no bbox elements")
    return boxes


def consensus_gt(boxes: Sequence[tuple[int, int, int, int]], out: int = 224) -> np.ndarray:
    """Flickr-SoundNet ground truth: (out, out) float32 in [0, 1] from 256-grid boxes.

    Sum of the boxes (each int(out * v / 256), rows ymin..ymax-1, columns
    xmin..xmax-1), halved, capped at 1.
    """
    gt = np.zeros((out, out), dtype=np.float32)
    for box in boxes:
        x1, y1, x2, y2 = (int(out * v / GRID) for v in box)
        gt[y1:y2, x1:x2] += 1.0
    return np.minimum(gt / 2.0, 1.0)


def read_list(path: Path) -> list[str]:
    """Clip ids from the first column of a list CSV (no header; blank rows ignored)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [row[0].strip() for row in csv.reader(f) if row and row[0].strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise FlickrError(f"{path}: cannot read the clip list ({e})") from None


class FlickrSoundNetEval(StillEval):
    """The Flickr-SoundNet test clips under ``root`` as Samples with the consensus gt.

    ids: the clips to evaluate (default: ROOT/flickr_test.csv when present,
    else every Annotations/*.xml). Clips with a missing or malformed XML, or
    missing frame, flow partner or audio, are counted in ``.skipped``.
    Raises FlickrError when ROOT has no Annotations folder.
    """

    def __init__(self, root: Path, config: DataConfig = DataConfig(), cache=None,
                 ids: Sequence[str] | None = None) -> None:
        root = Path(root)
        annotations = root / "Annotations"
        if not annotations.is_dir():
            raise FlickrError(f"{root}: no Annotations/ folder; expected the Flickr-SoundNet test layout "
                              "(Annotations/<id>.xml, frames/, audio/; see training/data/flickr.py)")
        if ids is None:
            listed = root / "flickr_test.csv"
            ids = read_list(listed) if listed.is_file() else sorted(p.stem for p in annotations.glob("*.xml"))
        skipped = SkipCounter()
        entries: list[StillEntry] = []
        size = config.input_size[0]
        for clip in ids:
            xml = annotations / f"{clip}.xml"
            if not xml.is_file():
                skipped.skip(SKIP_NO_XML, str(xml))
                continue
            try:
                gt = consensus_gt(parse_boxes(xml), size)
            except FlickrError as e:
                skipped.skip(SKIP_BAD_XML, str(e))
                continue
            entry = resolve_entry(root, clip, gt, skipped)
            if entry is not None:
                entries.append(entry)
        super().__init__(entries, config, skipped, cache=cache)
