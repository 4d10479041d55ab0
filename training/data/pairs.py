"""Urbansas evaluation pairs with negatives, for ``training.evaluate --negatives``.

The positive pairs are :class:`~training.data.urbansas.UrbansasEval`'s. Negative pairs
(after SLAVC, Mo & Morgado 2022, and Juanola et al. 2025), each kind in ``KINDS``:

* ``no-event``: every 2 fps time k / 2 s of every usable clip (up to its last frame) at
  which no on-screen vehicle sound is active, i.e. no audio event other than
  "offscreen" has start <= t <= end (non-identifiable vehicle sounds count as sound);
  the clip's own frame, flow and audio; gt empty.
* ``silence``: every positive frame with digital silence (a window of zeros).
* ``swapped``: every positive frame with the audio window of a donor (clip, time)
  where no vehicle sounds: no event of any kind (offscreen included) overlaps the
  whole window, which lies inside its clip. The donors are the 2 fps times that
  qualify, taken in turn (the k-th positive gets donor k mod their number, the next
  one from another clip when there is one). A set without such a time has no
  swapped pairs.

Silence and swapped pairs keep the positive frame's boxes as gt, so the cIoU of a map
made with the wrong audio can still be measured.

:func:`array_window` gives the same audio with every channel kept, at the clip's own
rate, for direction finding (``+doa`` in training.evaluate).
"""
from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch

from .urbansas import AUDIO_COLUMNS, VIDEO_COLUMNS, UrbansasEval, _number, clip_id, probe_clip, read_csv
from .media import read_audio
from .windows import ClipSource, DataConfig, Item, Sample, WindowDataset, audio_window

KINDS = ("positive", "no-event", "silence", "swapped")
SILENCE = "silence"
_GRID_HZ = 2  # Urbansas' annotation rate


@dataclass(frozen=True)
class PairItem(Item):
    """An evaluation item with its kind and where its audio comes from: None (its own
    clip at t), SILENCE, or (source index, t) of a donor window."""

    kind: str = "positive"
    audio: Union[None, str, tuple[int, float]] = None


def _events(rows: list[dict], name: str) -> tuple[dict, dict]:
    """({clip: [(start, end)] of on-screen vehicle sound}, {clip: [(start, end)] of any vehicle sound})."""
    on_screen, anything = defaultdict(list), defaultdict(list)
    for i, row in enumerate(rows):
        start, end = _number(row, "start", name, i), _number(row, "end", name, i)
        if start < 0 and end < 0:  # the Urbansas "-1" row: a clip without events
            continue
        clip = clip_id(row["filename"])
        anything[clip].append((start, end))
        if row["label"].strip() != "offscreen":
            on_screen[clip].append((start, end))
    return on_screen, anything


def _grid(source: ClipSource) -> list[float]:
    """The 2 fps times of a clip, from 0 up to its last frame, seconds."""
    return [k / _GRID_HZ for k in range(int(math.floor(source.video.last_frame_s * _GRID_HZ + 1e-9)) + 1)]


class EvalPairs(WindowDataset):
    """The positive Urbansas pairs, then (``negatives``) the negative pairs of the module
    docstring, as Samples with gt; ``.items[i]`` is a :class:`PairItem` (its ``kind``),
    ``.skipped`` counts the pairs of unusable clips. Raises AnnotationError for unusable
    CSVs (as UrbansasEval)."""

    def __init__(self, root: Path, config: DataConfig = DataConfig(), cache=None, negatives: bool = True) -> None:
        positives = UrbansasEval(root, config, cache=cache)
        sources: list[ClipSource] = list(positives.sources)
        items: list[PairItem] = [PairItem(i.source, i.t, i.boxes) for i in positives.items]
        skipped = positives._skipped
        if negatives:
            root = Path(root)
            audio_csv = root / "annotations" / "audio_annotations.csv"
            video_csv = root / "annotations" / "video_annotations.csv"
            on_screen, anything = _events(read_csv(audio_csv, AUDIO_COLUMNS), str(audio_csv))
            index = {s.clip: k for k, s in enumerate(sources)}
            clips = sorted({clip_id(r["filename"]) for r in read_csv(video_csv, VIDEO_COLUMNS)} | set(anything))
            for clip in clips:
                if clip not in index:
                    source, reason, detail = probe_clip(root, clip, config)
                    if source is None:
                        skipped.skip(reason, detail)
                        continue
                    index[clip] = len(sources)
                    sources.append(source)
            negative: list[PairItem] = []
            donors: list[tuple[int, float]] = []
            half = config.audio_seconds / 2
            for clip in clips:
                if clip not in index:
                    continue
                k = index[clip]
                for t in _grid(sources[k]):
                    if not any(s <= t <= e for s, e in on_screen.get(clip, ())):
                        negative.append(PairItem(k, t, (), "no-event"))
                    a, b = t - half, t + half
                    if a >= 0 and b <= sources[k].audio.seconds and not any(s < b and e > a
                                                                              for s, e in anything.get(clip, ())):
                        donors.append((k, t))
            positive = list(items)
            negative += [dataclasses.replace(p, kind="silence", audio=SILENCE) for p in positive]
            for n, p in enumerate(positive):
                if donors:
                    turn = [donors[(n + j) % len(donors)] for j in range(len(donors))]
                    donor = next((d for d in turn if d[0] != p.source), turn[0])
                    negative.append(dataclasses.replace(p, kind="swapped", audio=donor))
            items += negative
        super().__init__(sources, items, config, cache=cache, skipped=skipped, substitute=False)

    def _make(self, item: PairItem) -> Sample:
        sample = super()._make(item)
        if item.audio is None:
            return sample
        if item.audio == SILENCE:
            wave = np.zeros(self.config.window_samples, np.float32)
        else:
            source, t = item.audio
            wave = audio_window(self.sources[source].audio, t, self.config)
        return dataclasses.replace(sample, wave=torch.from_numpy(wave))

    def kind_counts(self) -> dict[str, int]:
        """Pairs per kind (every kind of KINDS, 0 when there is none)."""
        counts = dict.fromkeys(KINDS, 0)
        for item in self.items:
            counts[item.kind] += 1
        return counts


def array_window(data: WindowDataset, index: int, window_s: float) -> tuple[np.ndarray, int]:
    """The multichannel audio pair ``index`` of ``data`` is heard with, for direction finding:
    ``((C, T) float32, rate)``, C the channels of the wav and T = round(window_s * rate) samples
    at the wav's own rate (no resampling, no downmix), centred on the pair's time (sample
    T // 2 at round(t * rate)). Silence pairs get zeros shaped as their own clip's window;
    swapped pairs the donor clip's channels at the donor's time (items without an ``audio``
    field: their own clip). Parts outside the clip read as zeros (no tiling: a repeated
    piece would be heard from its own direction twice)."""
    item = data.items[index]
    audio = getattr(item, "audio", None)
    source, t = (item.source, item.t) if audio is None or audio == SILENCE else audio
    info = data.sources[source].audio
    n = max(1, round(window_s * info.rate))
    if audio == SILENCE:
        return np.zeros((info.channels, n), np.float32), info.rate
    return read_audio(info, round(t * info.rate) - n // 2, n), info.rate
