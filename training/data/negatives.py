"""Negative training pairs: a frame with audio in which nothing visible sounds.

Kinds (:data:`KINDS`):

* ``silence``: a training frame with digital silence (exact zeros, as a silent file
  gives them; both front-ends map zeros to a finite constant spectrogram) or, half
  the time, a quiet microphone's self-noise (Gaussian at ``noise_dbfs``; after
  RCGrad's per-clip standardisation it is white noise, SSL-SaN's "noise" negative).
* ``quiet``: a window whose audio holds no annotated event (ambience only).
* ``offscreen``: a window whose only annotated events are labelled offscreen.
* ``swapped``: a training frame with the audio window of another clip.

``quiet`` and ``offscreen`` need audio annotations (Urbansas layout:
ROOT/annotations/audio_annotations.csv); a clip the file does not mention has no
labels, and a set without the file has neither kind. Which kinds a set can give is
:attr:`NegativeWindows.kinds`; each draw picks one of them uniformly.
"""
from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch.utils.data import Dataset

from .urbansas import AUDIO_COLUMNS, AnnotationError, _number, clip_id, read_csv
from .media import MediaError, NonFiniteError
from .windows import SKIP_NON_FINITE, SKIP_READ_FAILED, Sample, WindowDataset

KINDS = ("silence", "quiet", "offscreen", "swapped")
SOUNDING, QUIET, OFFSCREEN, UNLABELLED = "sounding", "quiet", "offscreen", "unlabelled"
# Urbansas' vehicle classes; another label (an ambience event) does not make a window sounding.
VEHICLE_LABELS = frozenset({"car", "bus", "truck", "motorbike"})


@dataclass(frozen=True)
class Event:
    """One audio annotation: start, end in seconds; offscreen; vehicle (a vehicle class
    or a non-identifiable vehicle sound)."""

    start: float
    end: float
    offscreen: bool
    vehicle: bool


def read_events(root: Path) -> Optional[dict[str, list[Event]]]:
    """clip id -> its events from ROOT/annotations/audio_annotations.csv; None without the file.

    A clip listed only by an Urbansas "-1" row (start = end = -1) maps to []: annotated,
    with no event. Raises AnnotationError for a malformed file.
    """
    path = Path(root) / "annotations" / "audio_annotations.csv"
    if not path.is_file():
        return None
    events: dict[str, list[Event]] = defaultdict(list)
    for i, row in enumerate(read_csv(path, AUDIO_COLUMNS)):
        clip = clip_id(row["filename"])
        events.setdefault(clip, [])
        start, end = _number(row, "start", str(path), i), _number(row, "end", str(path), i)
        if end <= start:  # the "-1" rows of clips without events
            continue
        label = row["label"].strip()
        vague = _number(row, "non_identifiable_vehicle_sound", str(path), i) != 0
        events[clip].append(Event(start, end, label == "offscreen", label in VEHICLE_LABELS or vague))
    return dict(events)


def window_label(events: Optional[list[Event]], t: float, seconds: float) -> str:
    """What the audio window of ``seconds`` centred on ``t`` (s) holds.

    SOUNDING: an on-screen vehicle event overlaps it; OFFSCREEN: only offscreen events
    do; QUIET: no vehicle event does (ambience events may); UNLABELLED: events is None.
    """
    if events is None:
        return UNLABELLED
    lo, hi = t - seconds / 2, t + seconds / 2
    near = [e for e in events if e.start < hi and e.end > lo]
    if any(e.vehicle and not e.offscreen for e in near):
        return SOUNDING
    return OFFSCREEN if any(e.offscreen for e in near) else QUIET


def label_windows(data: WindowDataset, events: Optional[dict[str, list[Event]]]) -> list[str]:
    """The :func:`window_label` of every item of ``data`` (UNLABELLED for clips the annotations
    do not mention, or all of them when ``events`` is None)."""
    seconds = data.config.audio_seconds
    return [window_label(None if events is None else events.get(data.sources[item.source].clip), item.t, seconds)
            for item in data.items]


@dataclass(frozen=True)
class NegativeBatch:
    """Negative pairs stacked by :func:`collate_negatives`: frame (N, 3, H, W), flow (N, 2, H, W),
    wave (N, T), kind (N names from KINDS), skipped: reason -> count of inputs passed over."""

    frame: torch.Tensor
    flow: torch.Tensor
    wave: torch.Tensor
    kind: tuple[str, ...]
    skipped: dict[str, int] = field(default_factory=dict)


def collate_negatives(pairs: Sequence[tuple[str, Sample]]) -> NegativeBatch:
    """DataLoader ``collate_fn`` for :class:`NegativeWindows`: (kind, Sample) pairs -> NegativeBatch."""
    if not pairs:
        raise ValueError("collate_negatives: no samples")
    samples = [s for _, s in pairs]
    return NegativeBatch(frame=torch.stack([s.frame for s in samples]), flow=torch.stack([s.flow for s in samples]),
                         wave=torch.stack([s.wave for s in samples]), kind=tuple(k for k, _ in pairs),
                         skipped=dict(Counter(r for s in samples for r in s.skipped)))


class NegativeWindows(Dataset):
    """Negative pairs drawn from ``data``'s windows; item i is the same pair for the same seed.

    data: the windows to draw from (a training or validation subset; all kinds come from
    it, so validation negatives never use training clips). labels: one :func:`window_label`
    per item of ``data``. kinds: the kinds wanted (a subset of KINDS); those the data can
    give are ``.kinds`` (quiet/offscreen need windows so labelled, swapped two clips,
    silence a SOUNDING or UNLABELLED window's frame). length: items per epoch; any
    index >= 0 is valid (an epoch sampler offsets them). noise_dbfs: RMS level of the
    quiet-microphone half of ``silence``, dB re full scale.
    Items are (kind, Sample); batch them with :func:`collate_negatives`.
    """

    def __init__(self, data: WindowDataset, labels: Sequence[str], kinds: Sequence[str] = KINDS,
                 length: int = 0, seed: int = 0, noise_dbfs: float = -70.0) -> None:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown negative kinds {unknown}; choose from {', '.join(KINDS)}")
        if len(labels) != len(data):
            raise ValueError(f"labels: {len(labels)} for {len(data)} windows")
        self.data, self.length, self.seed, self.noise_dbfs = data, length, seed, noise_dbfs
        self.frames = [i for i, lab in enumerate(labels) if lab in (SOUNDING, UNLABELLED)]
        self.by_label = {lab: [i for i, x in enumerate(labels) if x == lab] for lab in (QUIET, OFFSCREEN)}
        self.clips = sorted({item.source for item in data.items})
        available = {"silence": bool(self.frames), "quiet": bool(self.by_label[QUIET]),
                     "offscreen": bool(self.by_label[OFFSCREEN]),
                     "swapped": bool(self.frames) and len(self.clips) >= 2}
        self.kinds = tuple(k for k in KINDS if k in kinds and available[k])

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[str, Sample]:
        if index < 0:
            raise IndexError(f"negative index {index}")
        if not self.kinds:
            raise IndexError("no negative kind available in this data")
        rng = random.Random(self.seed * 1_000_003 + index)
        kind = rng.choice(self.kinds)
        if kind in ("quiet", "offscreen"):
            return kind, self.data[rng.choice(self.by_label[kind])]
        sample = self.data[rng.choice(self.frames)]
        if kind == "silence":
            wave = torch.zeros_like(sample.wave)
            if rng.random() < 0.5:
                gen = torch.Generator().manual_seed(rng.randrange(2**31))
                wave = torch.randn(wave.shape, generator=gen) * 10 ** (self.noise_dbfs / 20)
            return kind, Sample(sample.frame, sample.flow, wave, sample.clip, sample.t, skipped=sample.skipped)
        skipped = list(sample.skipped)
        wave = other_clip_audio(self.data, sample.clip, rng, skipped)
        if wave is None:  # no other clip's audio could be read: silence stands in (counted)
            kind, wave = "silence", torch.zeros_like(sample.wave)
        return kind, Sample(sample.frame, sample.flow, wave, sample.clip, sample.t, skipped=tuple(skipped))


def other_clip_audio(data, clip: str, rng: random.Random, skipped: list[str],
                     tries: int = 3, among: Optional[Sequence[int]] = None) -> Optional[torch.Tensor]:
    """The audio window (T,) of a random item of ``data`` from another clip than ``clip``, or
    None when there is none or ``tries`` draws could not be read (unreadable, or NaN / infinity:
    each appended to ``skipped`` under the dataset's skip reasons). ``data``: any dataset with
    ``clip_of(i)`` and ``audio_of(i)`` (training windows, evaluation pairs, still-frame entries).
    among: draw only from these items (None: from every item)."""
    candidates = range(len(data)) if among is None else among
    others = [i for i in candidates if data.clip_of(i) != clip]
    for _ in range(tries if others else 0):
        try:
            wave = torch.from_numpy(data.audio_of(rng.choice(others)))
        except MediaError as e:
            skipped.append(SKIP_NON_FINITE if isinstance(e, NonFiniteError) else SKIP_READ_FAILED)
            continue
        if bool(torch.isfinite(wave).all()):
            return wave
        skipped.append(SKIP_NON_FINITE)
    return None


def negatives_per_batch(fraction: float, batch_size: int) -> int:
    """Negative pairs added to a batch of ``batch_size`` positives: round(fraction * batch_size),
    at least 1 when fraction > 0. Raises ValueError for a fraction outside [0, 4]."""
    if not (isinstance(fraction, (int, float)) and math.isfinite(fraction) and 0 <= fraction <= 4):
        raise ValueError(f"negatives fraction must be in [0, 4] (negatives per positive), got {fraction!r}")
    return 0 if fraction == 0 else max(1, round(fraction * batch_size))


class EpochSampler(torch.utils.data.Sampler):
    """Indices length*e .. length*(e+1) - 1 for epoch e (``set_epoch``), so each epoch draws
    new negatives from a :class:`NegativeWindows` and a rerun draws the same ones."""

    def __init__(self, length: int):
        self.length, self.epoch = length, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(range(self.length * self.epoch, self.length * (self.epoch + 1)))

    def __len__(self) -> int:
        return self.length


__all__ = ["KINDS", "AnnotationError", "Event", "NegativeBatch", "NegativeWindows", "EpochSampler",
           "collate_negatives", "label_windows", "other_clip_audio", "negatives_per_batch", "read_events", "window_label"]
