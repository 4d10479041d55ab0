"""The (evidence, label) pairs a sounding score is calibrated on, from held-out data.

The one place that builds them, for the end of training (training.train, on the
validation windows) and for ``python -m training.calibrate`` (on a benchmark's
evaluation pairs).

Positives (label 1): windows with a sounding on-screen vehicle (SOUNDING; in a set
without audio annotations every window is presumed sounding, as training presumes).
Negatives (label 0): the same frames with digital silence, the same frames with the
audio of a window of another clip, and the windows whose audio holds no vehicle
(QUIET) or only off-screen vehicles (OFFSCREEN), with their own audio
(:func:`calibration_pairs`); or, for a benchmark's evaluation pairs with negatives, the
evaluator's own kinds (:func:`kind_pairs`).

The evidence comes from a callable, so this module knows nothing of a model's
score: ``evidence_fn(frame (B, 3, H, W), flow (B, 2, H, W), wave (B, T)) -> (B,)``,
the raw evidence taken before the map's normalisation; ``calibrate_fn(evidence (M,),
labels (M,)) -> (scale, bias)`` fits the calibration (Platt scaling, for instance).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from tqdm import tqdm

from flowgrad.calibration import fit_platt_balanced

from .data.negatives import OFFSCREEN, QUIET, SOUNDING, UNLABELLED, other_clip_audio
from .data.windows import DataError

EvidenceFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CalibrationPairs:
    """evidence (M,) float32, labels (M,) float32 in {0, 1}, kind: M names (positive,
    silence, swapped, quiet, offscreen)."""

    evidence: torch.Tensor
    labels: torch.Tensor
    kind: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        """kind -> number of pairs."""
        return {k: self.kind.count(k) for k in dict.fromkeys(self.kind)}


class _Batches:
    """Collects (frame, flow, wave, label, kind) pairs and runs evidence_fn on them batch by batch."""

    def __init__(self, evidence_fn: EvidenceFn, batch_size: int, device) -> None:
        self.evidence_fn, self.batch_size, self.device = evidence_fn, batch_size, device
        self.pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, str]] = []
        self.evidence: list[torch.Tensor] = []
        self.truth: list[float] = []
        self.kinds: list[str] = []

    def add(self, frame, flow, wave, label: float, kind: str) -> None:
        self.pending.append((frame, flow, wave, label, kind))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        frame, flow, wave = (torch.stack([p[i] for p in self.pending]).to(self.device) for i in range(3))
        out = self.evidence_fn(frame, flow, wave).detach().float().cpu().reshape(-1)
        if out.shape != (len(self.pending),):
            raise ValueError(f"evidence_fn returned {out.numel()} values for {len(self.pending)} pairs")
        self.evidence.append(out)
        self.truth.extend(p[3] for p in self.pending)
        self.kinds.extend(p[4] for p in self.pending)
        self.pending.clear()

    def result(self) -> CalibrationPairs:
        self.flush()
        return CalibrationPairs(torch.cat(self.evidence) if self.evidence else torch.zeros(0),
                                torch.tensor(self.truth, dtype=torch.float32), tuple(self.kinds))


def _read(data, i: int, on_unreadable):
    """data[i], or None when it cannot be read and on_unreadable passes it over."""
    try:
        return data[i]
    except DataError as e:
        if on_unreadable is None:
            raise
        on_unreadable(e)
        return None


@torch.no_grad()
def calibration_pairs(data, labels: Optional[Sequence[str]], evidence_fn: EvidenceFn, batch_size: int = 16,
                      seed: int = 0, device: str | torch.device = "cpu",
                      on_unreadable: Optional[Callable[[DataError], None]] = None,
                      show: bool = False) -> CalibrationPairs:
    """Evidence of every positive and negative pair built from ``data`` (a held-out split).

    data: a dataset of samples (frame, flow, wave, clip) with ``clip_of(i)`` and
        ``audio_of(i)`` (training windows, a benchmark's evaluation pairs, still entries).
    labels: one :func:`training.data.negatives.window_label` per item of ``data``;
        None: every item is a positive (a benchmark's evaluation pairs).
    Each positive window gives 3 pairs (own audio: 1; silence: 0; another clip's audio:
    0, when ``data`` holds two clips or more and one of them can be read); each QUIET /
    OFFSCREEN window 1 pair (0). The swapped audio is drawn with ``seed``, from another
    clip's QUIET windows when the windows are labelled (a vehicle heard elsewhere is still a
    vehicle heard: training.evaluate's swapped negatives hold no vehicle either), from any of
    its windows when they are not. Reads every
    window once; a DataError reading one goes to ``on_unreadable`` (which passes the item
    over, or raises), else up. show: a progress bar.
    """
    if labels is None:
        labels = [UNLABELLED] * len(data)
    if len(labels) != len(data):
        raise ValueError(f"labels: {len(labels)} for {len(data)} windows")
    rng = random.Random(seed)
    donors = None if all(label == UNLABELLED for label in labels) else [
        i for i, label in enumerate(labels) if label == QUIET]
    batches = _Batches(evidence_fn, batch_size, device)
    for i, label in enumerate(tqdm(labels, desc="calibration pairs", unit="window", disable=not show, leave=False)):
        if label not in (SOUNDING, UNLABELLED, QUIET, OFFSCREEN):
            raise ValueError(f"unknown window label {label!r}")
        s = _read(data, i, on_unreadable)
        if s is None:
            continue
        if label in (QUIET, OFFSCREEN):
            batches.add(s.frame, s.flow, s.wave, 0.0, label)
        else:
            batches.add(s.frame, s.flow, s.wave, 1.0, "positive")
            batches.add(s.frame, s.flow, torch.zeros_like(s.wave), 0.0, "silence")
            wave = other_clip_audio(data, s.clip, rng, [], among=donors)  # None: no donor, or none readable
            if wave is not None:
                batches.add(s.frame, s.flow, wave, 0.0, "swapped")
    return batches.result()


@torch.no_grad()
def kind_pairs(data, evidence_fn: EvidenceFn, batch_size: int = 16, device: str | torch.device = "cpu",
               on_unreadable: Optional[Callable[[DataError], None]] = None,
               show: bool = False) -> CalibrationPairs:
    """Evidence of every item of ``data`` as it stands (its own frame, flow and audio), labelled
    by the item's ``kind``: 1 for "positive", 0 for any other. For
    :class:`training.data.pairs.EvalPairs` with negatives, so a score is calibrated on exactly
    the negatives ``training.evaluate --negatives`` counts (no-event, silence, swapped audio
    where no vehicle sounds). Unreadable items as in :func:`calibration_pairs`."""
    batches = _Batches(evidence_fn, batch_size, device)
    for i in tqdm(range(len(data)), desc="calibration pairs", unit="pair", disable=not show, leave=False):
        s = _read(data, i, on_unreadable)
        if s is not None:
            kind = data.items[i].kind
            batches.add(s.frame, s.flow, s.wave, float(kind == "positive"), kind)
    return batches.result()


def fit(pairs: CalibrationPairs, calibrate_fn: Callable[[torch.Tensor, torch.Tensor], tuple[float, float]]):
    """``calibrate_fn(evidence, labels)`` -> (scale, bias) as floats; ValueError unless both
    classes are present (a calibration from one class says nothing)."""
    positives = int(pairs.labels.sum().item())
    if positives == 0 or positives == len(pairs.labels):
        raise ValueError(f"calibration needs positive and negative pairs, got {positives} positive of "
                         f"{len(pairs.labels)}")
    scale, bias = calibrate_fn(pairs.evidence, pairs.labels)
    return float(scale), float(bias)


def model_hooks(model):
    """(evidence_fn, calibrate_fn, store_fn) for a registry model: its raw ``sounding_evidence``
    of a wave, Platt scaling with both classes weighted equally (the score is then the
    probability of "sounding" under an even prior) and its setter."""
    def evidence(frame, flow, wave):
        return model.sounding_evidence(frame, flow, model.embed_audio(wave))

    def platt(values, labels):
        return fit_platt_balanced(values.numpy(), labels.numpy() > 0.5)
    return evidence, platt, model.set_score_calibration
