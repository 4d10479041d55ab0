"""training.data.negatives and training.calibration_pairs on a tiny synthetic set whose audio
annotations are rewritten by hand, so every kind of window is known."""
import csv

import numpy as np
import pytest
import torch

from training.calibration_pairs import calibration_pairs, fit
from training.data import DataConfig, UrbansasWindows
from training.data.negatives import (OFFSCREEN, QUIET, SOUNDING, UNLABELLED, Event, NegativeWindows,
                                     collate_negatives, label_windows, negatives_per_batch, read_events,
                                     window_label)
from training.data.windows import audio_window
from training.synth import SynthConfig, generate

CONFIG = DataConfig(audio_seconds=1.0, stride_s=1.0)  # windows centred at 0.5, 1.5, ... 4.5 s
# clip 0: a car 0-2 s, then quiet; clip 1: off-screen 1-5 s only; clip 2: a car throughout
EVENTS = {0: [("car", 0, 0.0, 2.0)], 1: [("offscreen", 0, 1.0, 5.0)], 2: [("truck", 0, 0.0, 6.0)]}


@pytest.fixture(scope="module")
def labelled_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("neg") / "set"
    infos = generate(root, clips=3, seed=5, config=SynthConfig(width=160, height=96, seconds=6.0))
    names = sorted(i.clip_id for i in infos)
    with open(root / "annotations" / "audio_annotations.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "class_id", "label", "non_identifiable_vehicle_sound", "start", "end"])
        for k, events in EVENTS.items():
            for label, vague, start, end in events:
                w.writerow([names[k], 1, label, vague, start, end])
    return root, names


def test_window_label_rules():
    car, off = Event(2.0, 3.0, False, True), Event(0.0, 10.0, True, True)
    wind = Event(0.0, 10.0, False, False)  # an ambience event: not a vehicle
    assert window_label([car, off], 2.5, 1.0) == SOUNDING
    assert window_label([car, off], 4.0, 1.0) == OFFSCREEN
    assert window_label([car, wind], 4.0, 1.0) == QUIET
    assert window_label([car], 1.5, 1.0) == QUIET  # the window ends where the event starts: no overlap
    assert window_label([], 1.0, 1.0) == QUIET
    assert window_label(None, 1.0, 1.0) == UNLABELLED


def test_read_events(tmp_path, labelled_set):
    assert read_events(tmp_path) is None
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "audio_annotations.csv").write_text(
        "filename,class_id,label,non_identifiable_vehicle_sound,start,end\n"
        "a.wav,-1,-1,1,-1,-1\n"
        "b,1,-1,1,0.5,2.0\n")
    events = read_events(tmp_path)
    assert events == {"a": [], "b": [Event(0.5, 2.0, False, True)]}  # a vague vehicle sound counts as one


def test_windows_are_labelled_from_the_annotations(labelled_set):
    root, names = labelled_set
    data = UrbansasWindows(root, CONFIG)
    labels = dict(zip(((data.sources[i.source].clip, i.t) for i in data.items), label_windows(data, read_events(root))))
    assert labels[(names[0], 0.5)] == SOUNDING and labels[(names[0], 3.5)] == QUIET
    assert labels[(names[1], 0.5)] == QUIET and labels[(names[1], 2.5)] == OFFSCREEN
    assert {labels[(names[2], t)] for t in (0.5, 2.5, 4.5)} == {SOUNDING}
    assert set(label_windows(data, None)) == {UNLABELLED}


def test_negative_windows_give_every_kind_reproducibly(labelled_set):
    root, names = labelled_set
    data = UrbansasWindows(root, CONFIG)
    labels = label_windows(data, read_events(root))
    neg = NegativeWindows(data, labels, length=40, seed=3)
    assert neg.kinds == ("silence", "quiet", "offscreen", "swapped")
    drawn = [neg[i] for i in range(40)]
    assert {k for k, _ in drawn} == set(neg.kinds)
    again = neg[7]
    assert again[0] == drawn[7][0] and torch.equal(again[1].wave, drawn[7][1].wave)
    by_key = {(data.sources[i.source].clip, i.t): lab for i, lab in zip(data.items, labels)}
    for kind, s in drawn:
        own = torch.from_numpy(audio_window(data.sources[[x.clip for x in data.sources].index(s.clip)].audio,
                                            s.t, CONFIG))
        if kind == "silence":
            assert s.wave.abs().max() < 1e-2  # zeros, or self-noise at -70 dBFS
        elif kind == "swapped":
            assert not torch.equal(s.wave, own) and s.wave.abs().max() > 1e-3
        else:
            assert by_key[(s.clip, s.t)] == {"quiet": QUIET, "offscreen": OFFSCREEN}[kind]
            assert torch.equal(s.wave, own)
    assert any(s.wave.abs().max() == 0 for k, s in drawn if k == "silence")  # digital silence is among them
    batch = collate_negatives(drawn[:5])
    assert batch.wave.shape[0] == 5 and batch.kind == tuple(k for k, _ in drawn[:5])


def test_negative_windows_without_annotations_or_unknown_kinds(labelled_set):
    root, _ = labelled_set
    data = UrbansasWindows(root, CONFIG)
    neg = NegativeWindows(data, label_windows(data, None), length=4)
    assert neg.kinds == ("silence", "swapped")
    assert NegativeWindows(data, label_windows(data, None), kinds=("quiet",)).kinds == ()
    with pytest.raises(ValueError, match="unknown negative kinds"):
        NegativeWindows(data, label_windows(data, None), kinds=("noise",))


def test_negatives_per_batch():
    assert negatives_per_batch(0, 64) == 0
    assert negatives_per_batch(0.25, 64) == 16
    assert negatives_per_batch(0.01, 8) == 1
    for bad in (-0.1, float("nan"), 5, "x"):
        with pytest.raises(ValueError, match="negatives fraction"):
            negatives_per_batch(bad, 8)


def test_calibration_pairs_and_fit(labelled_set):
    root, names = labelled_set
    data = UrbansasWindows(root, CONFIG)
    labels = label_windows(data, read_events(root))
    seen = []

    def rms(frame, flow, wave):
        seen.append(len(wave))
        return wave.square().mean(1).sqrt()

    pairs = calibration_pairs(data, labels, rms, batch_size=4, seed=1)
    n_pos = labels.count(SOUNDING)
    counts = pairs.counts()
    assert counts == {k: v for k, v in {"positive": n_pos, "silence": n_pos, "swapped": n_pos,
                                        "quiet": labels.count(QUIET), "offscreen": labels.count(OFFSCREEN)}.items()}
    assert pairs.labels.sum().item() == n_pos and len(pairs.evidence) == sum(counts.values())
    assert max(seen) <= 4 + 2  # batched (a window adds up to 3 pairs past the flush point)
    silence = pairs.evidence[[k == "silence" for k in pairs.kind]]
    assert torch.equal(silence, torch.zeros_like(silence))
    # swapped audio holds no vehicle, as training.evaluate's: it is a QUIET window's (of another clip)
    quiet_rms = {round(float(torch.from_numpy(data.audio_of(i)).square().mean().sqrt()), 5)
                 for i, label in enumerate(labels) if label == QUIET}
    swapped = pairs.evidence[[k == "swapped" for k in pairs.kind]]
    assert {round(float(v), 5) for v in swapped} <= quiet_rms
    assert fit(pairs, lambda e, y: (2.0, -1.0)) == (2.0, -1.0)
    only_positive = type(pairs)(pairs.evidence[:1], pairs.labels[:1] * 0 + 1, pairs.kind[:1])
    with pytest.raises(ValueError, match="positive and negative"):
        fit(only_positive, lambda e, y: (1.0, 0.0))


class _Clips:
    """A dataset stand-in: item i belongs to clips[i], its audio a constant window of value i."""

    def __init__(self, clips):
        self.clips = clips

    def __len__(self):
        return len(self.clips)

    def clip_of(self, i):
        return self.clips[i]

    def audio_of(self, i):
        return np.full(4, float(i), np.float32)


def test_swapped_audio_always_comes_from_another_clip():
    import random

    from training.data.negatives import other_clip_audio
    data = _Clips(["a", "a", "a", "b", "c", "c"])
    rng = random.Random(0)
    drawn = {int(other_clip_audio(data, "a", rng, [])[0]) for _ in range(60)}
    assert drawn == {3, 4, 5}  # every item of b and c, none of a
    assert other_clip_audio(_Clips(["a", "a"]), "a", rng, []) is None
    assert {int(other_clip_audio(data, "a", rng, [], among=[0, 4])[0]) for _ in range(20)} == {4}
    assert other_clip_audio(data, "a", rng, [], among=[0, 1]) is None
