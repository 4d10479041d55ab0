"""Urbansas, as distributed: unlabelled training windows and the evaluation pairs.

Layout under ROOT::

    audio/<clip>.wav
    video/video_2fps|video_8fps|video_24fps/<clip>.mp4
    annotations/video_annotations.csv   (boxes at 2 fps; time -1 = clip-level rows)
    annotations/audio_annotations.csv   (sound events with start/end in seconds)

Frames and flow come from video_8fps (0.125 s between frames, the papers'
flow) when it holds the clip, else from the highest-rate video that does.
Audio comes from audio/<clip>.wav. The evaluation pairs follow REFERENCE
section 6 exactly (see :func:`select_eval_pairs`).
"""
from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from flowgrad.errors import InputError

from .media import VIDEO_SUFFIXES, MediaError, probe_audio, probe_video
from .windows import ClipSource, DataConfig, Item, SkipCounter, WindowDataset, window_centres

VIDEO_COLUMNS = ("frame_id", "track_id", "x", "y", "w", "h", "class_id", "visibility", "label", "filename",
                 "city", "location_id", "time", "night")
AUDIO_COLUMNS = ("filename", "class_id", "label", "non_identifiable_vehicle_sound", "start", "end")

SKIP_NO_AUDIO = "missing audio file"
SKIP_NO_VIDEO = "missing video file"
SKIP_BAD_AUDIO = "unreadable audio"
SKIP_BAD_VIDEO = "unreadable video"
SKIP_SHORT_AUDIO = "audio shorter than the window"
SKIP_NO_WINDOW = "clip too short for any window"

_RATE_DIR = re.compile(r"^video_(\d+)fps$")
_PREFERRED_FPS = 8  # the papers' flow: consecutive frames of the 8 fps video


class AnnotationError(InputError):
    """An annotation CSV is unusable; the message names the file and what is wrong."""


def read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CSV with a header as dicts (column -> text).

    Raises AnnotationError naming the file when it is missing or lacks any of
    ``columns`` (extra columns are fine).
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found; expected ROOT/annotations/{path.name}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in columns if c not in header]
        if missing:
            raise AnnotationError(f"{path}: missing columns {', '.join(missing)} (has: {', '.join(header) or 'none'})")
        reader.fieldnames = header
        return [dict(row) for row in reader]


def _number(row: dict, column: str, path: str, index: int) -> float:
    try:
        return float(row[column])
    except (TypeError, ValueError):
        raise AnnotationError(f"{path}: data row {index + 1}: {column} = {row[column]!r} is not a number") from None


def clip_id(filename: str) -> str:
    """Clip id from an annotation's filename field (a media suffix, if any, removed)."""
    name = filename.strip()
    for suffix in (".wav",) + VIDEO_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class EvalPair:
    """One evaluation pair: clip id, time t in seconds (a 2 fps annotation frame),
    and the kept boxes (x, y, w, h): top-left corner and size in pixels of the video frame."""

    clip: str
    t: float
    boxes: tuple[tuple[float, float, float, float], ...]


def select_eval_pairs(video_rows: list[dict], audio_rows: list[dict],
                      video_name: str = "video_annotations.csv",
                      audio_name: str = "audio_annotations.csv") -> list[EvalPair]:
    """The Urbansas evaluation pairs, exactly as REFERENCE section 6.

    1. Audio events labelled "offscreen" or with non_identifiable_vehicle_sound
       != 0 are dropped.
    2. Clip-level rows (time -1), boxes with any negative x, y, w or h, and boxes
       with visibility != 1 are dropped.
    3. A time t of a clip's remaining boxes is kept, with all of its remaining
       boxes, when a remaining event of that clip has start < t < end (strict:
       t == start or t == end does not count).
    Rows as :func:`read_csv` gives them; the names only label errors. Returns
    pairs sorted by clip then t.
    """
    events: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for i, row in enumerate(audio_rows):
        if row["label"].strip() == "offscreen":
            continue
        if _number(row, "non_identifiable_vehicle_sound", audio_name, i) != 0:
            continue
        events[clip_id(row["filename"])].append((_number(row, "start", audio_name, i),
                                                 _number(row, "end", audio_name, i)))
    boxes: dict[tuple[str, float], list[tuple[float, float, float, float]]] = defaultdict(list)
    for i, row in enumerate(video_rows):
        t = _number(row, "time", video_name, i)
        if t == -1:
            continue
        box = tuple(_number(row, c, video_name, i) for c in ("x", "y", "w", "h"))
        if min(box) < 0 or _number(row, "visibility", video_name, i) != 1:
            continue
        boxes[(clip_id(row["filename"]), round(t, 6))].append(box)
    pairs = [EvalPair(clip, t, tuple(kept)) for (clip, t), kept in boxes.items()
             if any(start < t < end for start, end in events.get(clip, ()))]
    return sorted(pairs, key=lambda p: (p.clip, p.t))


def flow_video_path(root: Path, clip: str) -> Optional[Path]:
    """ROOT/video/video_8fps/<clip>.<ext> when present, else the clip's video of the
    highest frame rate among ROOT/video/video_<N>fps; None when there is none."""
    found = []
    video_dir = Path(root) / "video"
    for d in video_dir.iterdir() if video_dir.is_dir() else ():
        m = _RATE_DIR.match(d.name)
        if not m or not d.is_dir():
            continue
        for suffix in VIDEO_SUFFIXES:
            if (d / f"{clip}{suffix}").is_file():
                found.append((int(m.group(1)) == _PREFERRED_FPS, int(m.group(1)), d / f"{clip}{suffix}"))
                break
    return max(found)[2] if found else None


def _video_clips(root: Path) -> set[str]:
    video_dir = root / "video"
    return {p.stem for d in (video_dir.iterdir() if video_dir.is_dir() else ()) if _RATE_DIR.match(d.name)
            for p in d.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES}


def probe_clip(root: Path, clip: str, config: DataConfig) -> tuple[Optional[ClipSource], str, str]:
    """(source, "", "") for a usable clip, else (None, skip reason, detail)."""
    wav = root / "audio" / f"{clip}.wav"
    video_path = flow_video_path(root, clip)
    if not wav.is_file():
        return None, SKIP_NO_AUDIO, f"{wav} does not exist"
    if video_path is None:
        return None, SKIP_NO_VIDEO, f"no {root}/video/video_<N>fps/{clip}.mp4"
    try:
        video = probe_video(video_path)
    except MediaError as e:
        return None, SKIP_BAD_VIDEO, str(e)
    try:
        audio = probe_audio(wav)
    except MediaError as e:
        return None, SKIP_BAD_AUDIO, str(e)
    if audio.seconds < config.audio_seconds:
        return None, SKIP_SHORT_AUDIO, f"{wav}: {audio.seconds:.3f} s < {config.audio_seconds} s"
    return ClipSource(clip=clip, video=video, audio=audio), "", ""


def _check_root(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Urbansas root {root} is not a directory")
    return root


def _read_eval_pairs(root: Path, config: DataConfig, who: str) -> list[EvalPair]:
    """:func:`select_eval_pairs` of ROOT/annotations' CSVs (AnnotationError when missing or
    malformed); ValueError naming ``who`` for a non-square config.input_size (the gt grid)."""
    if config.input_size[0] != config.input_size[1]:
        raise ValueError(f"{who} needs a square input_size for the gt grid, got {config.input_size}")
    video_csv = root / "annotations" / "video_annotations.csv"
    audio_csv = root / "annotations" / "audio_annotations.csv"
    return select_eval_pairs(read_csv(video_csv, VIDEO_COLUMNS), read_csv(audio_csv, AUDIO_COLUMNS),
                             str(video_csv), str(audio_csv))


class UrbansasWindows(WindowDataset):
    """Unlabelled training windows of every usable Urbansas clip.

    For each clip (any id with a wav in audio/ or a video under video/), one
    :class:`~training.data.windows.Sample` per centre of
    :func:`~training.data.windows.window_centres`. Clips without a wav or
    video, unreadable, or with audio shorter than the window are skipped and
    counted in ``.skipped``. cache: optional FlowCache.
    boxes: also give each window the boxes of its time when that time is an evaluation
    pair's (:func:`select_eval_pairs`: the sounding vehicles on screen), as
    ``Sample.gt``; windows at other times get an all-zero gt ("no boxes known"), so
    every sample has one and they batch together. Needs a square input_size and the
    annotation CSVs (AnnotationError otherwise).
    """

    def __init__(self, root: Path, config: DataConfig = DataConfig(), cache=None, boxes: bool = False) -> None:
        root = _check_root(root)
        known = ({(p.clip, round(p.t, 6)): p.boxes for p in _read_eval_pairs(root, config, "boxes")}
                 if boxes else None)
        skipped = SkipCounter()
        audio_dir = root / "audio"
        clips = {p.stem for p in audio_dir.glob("*.wav")} | _video_clips(root)
        sources, items = [], []
        for clip in sorted(clips):
            source, reason, detail = probe_clip(root, clip, config)
            if source is None:
                skipped.skip(reason, detail)
                continue
            centres = window_centres(source.video, source.audio, config)
            if not centres:
                skipped.skip(SKIP_NO_WINDOW, f"{clip}: {source.video.last_frame_s:.3f} s of video")
                continue
            items.extend(Item(len(sources), t, None if known is None else known.get((clip, round(t, 6)), ()))
                         for t in centres)
            sources.append(source)
        super().__init__(sources, items, config, cache=cache, skipped=skipped, substitute=True)


class UrbansasEval(WindowDataset):
    """The Urbansas evaluation pairs (:func:`select_eval_pairs`) as Samples with gt.

    gt: union of the kept boxes scaled from the video's own frame size (read
    from the file; 1280x720 for Urbansas) to the square input grid with int()
    (training.metrics.boxes_to_mask). ``len`` = the number of usable pairs;
    pairs whose clip is unusable are counted per pair in ``.skipped``.
    A read failing in __getitem__ raises DataError rather than scoring another pair.
    Raises AnnotationError for a missing or malformed CSV, ValueError for a
    non-square config.input_size.
    """

    def __init__(self, root: Path, config: DataConfig = DataConfig(), cache=None) -> None:
        root = _check_root(root)
        pairs = _read_eval_pairs(root, config, "UrbansasEval")
        self.pairs: list[EvalPair] = []
        skipped = SkipCounter()
        sources: list[ClipSource] = []
        probed: dict[str, tuple[Optional[int], str, str]] = {}
        items = []
        for pair in pairs:
            if pair.clip not in probed:
                source, reason, detail = probe_clip(root, pair.clip, config)
                probed[pair.clip] = (len(sources) if source else None, reason, detail)
                if source:
                    sources.append(source)
            index, reason, detail = probed[pair.clip]
            if index is None:
                skipped.skip(reason, detail)
                continue
            self.pairs.append(pair)
            items.append(Item(index, pair.t, pair.boxes))
        super().__init__(sources, items, config, cache=cache, skipped=skipped, substitute=False)
