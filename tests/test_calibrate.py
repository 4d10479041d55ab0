"""`python -m training.calibrate` on a small synthetic street set: the fitted calibration is the
Platt fit of the model's own evidence (positives against the evaluator's negatives by default, or
against silence and another clip's audio), it is written into the checkpoint with what the file
had, and bad input is one line and exit status 2."""
import numpy as np
import pytest
import torch

from flowgrad import checkpoint, models
from flowgrad.calibration import balanced_weights, fit_platt
from training.calibrate import collect_pairs, main
from training.data import DataConfig, UrbansasEval
from training.data.pairs import EvalPairs
from training.synth import SynthConfig, generate


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "set"
    generate(out, clips=2, seed=23, config=SynthConfig(width=320, height=180, seconds=6.0))
    return out


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "rc.ckpt"
    checkpoint.save(path, models.create("rcgrad", width=0.125, audio_seconds=1.0), epoch=3)
    return path


def _evidence(model, data) -> tuple[list, list]:
    """The model's raw evidence of every item of data, one at a time, and its kind."""
    values = []
    with torch.inference_mode():
        for i in range(len(data)):
            s = data[i]
            values.append(float(model.sounding_evidence(s.frame[None], s.flow[None], model.embed_audio(s.wave[None]))))
    return values, [item.kind for item in data.items]


def test_calibrates_on_the_evaluators_negatives_by_default(eval_set, small_ckpt, tmp_path, capsys):
    out = tmp_path / "cal.ckpt"
    assert main([str(small_ckpt), "--data", str(eval_set), "--out", str(out), "--batch-size", "4"]) == 0
    assert "negatives: evaluation" in capsys.readouterr().out
    # the reference: every pair training.evaluate --negatives scores, fitted here from scratch
    data = EvalPairs(eval_set, DataConfig(audio_rate=16000, audio_seconds=1.0), negatives=True)
    x, kinds = _evidence(checkpoint.load(small_ckpt).eval(), data)
    counts = {k: n for k, n in data.kind_counts().items() if n}
    assert counts["positive"] and counts["silence"] and counts["no-event"]
    y = np.array([k == "positive" for k in kinds])
    scale, bias = fit_platt(np.array(x, np.float64), y, balanced_weights(y))
    model = checkpoint.load(out)
    assert float(model.score_scale) == pytest.approx(scale, rel=1e-3)
    assert float(model.score_bias) == pytest.approx(bias, rel=1e-3, abs=1e-3)
    stored = checkpoint.read_meta(out)["meta"]["score_calibration"]
    assert stored["counts"] == counts and stored["negatives"] == "evaluation"


def test_calibrates_on_positives_silence_and_other_clips_audio(eval_set, small_ckpt, tmp_path, capsys):
    out = tmp_path / "cal.ckpt"
    before = small_ckpt.read_bytes()
    assert main([str(small_ckpt), "--data", str(eval_set), "--out", str(out), "--batch-size", "3",
                 "--negatives", "other-clip"]) == 0
    assert small_ckpt.read_bytes() == before  # --out leaves the input alone
    table = capsys.readouterr().out
    for row in ("| positive |", "| silence |", "| swapped |", "fitted: scale", "Brier score"):
        assert row in table, table

    model = checkpoint.load(out)
    assert model.score_is_calibrated
    # the same fit, made here from the model's own evidence
    source = checkpoint.load(small_ckpt)
    data = UrbansasEval(eval_set, DataConfig(audio_rate=16000, audio_seconds=1.0))
    pairs = collect_pairs(source, data, batch_size=5)
    n = len(data)
    assert pairs.counts() == {"positive": n, "silence": n, "swapped": n}
    x, y = pairs.evidence.double().numpy(), pairs.labels.numpy() > 0.5
    assert [k == "positive" for k in pairs.kind] == y.tolist()
    scale, bias = fit_platt(x, y, balanced_weights(y))
    assert float(model.score_scale) == pytest.approx(scale, rel=1e-4)
    assert float(model.score_bias) == pytest.approx(bias, rel=1e-4, abs=1e-4)
    meta = checkpoint.read_meta(out)["meta"]
    assert meta["epoch"] == 3 and meta["score_calibration"]["counts"] == {"positive": n, "silence": n, "swapped": n}
    assert meta["score_calibration"]["negatives"] == "other-clip"


def test_in_place_by_default(eval_set, small_ckpt, tmp_path):
    copy = tmp_path / "copy.ckpt"
    copy.write_bytes(small_ckpt.read_bytes())
    assert main([str(copy), "--data", str(eval_set)]) == 0
    assert checkpoint.load(copy).score_is_calibrated


def test_bad_input_is_one_line_and_exit_status_2(eval_set, small_ckpt, tmp_path, capsys):
    flow_only = tmp_path / "fo.ckpt"
    checkpoint.save(flow_only, models.create("flow_only"))
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [([str(small_ckpt), "--data", str(tmp_path / "nope")], "no such folder"),
             ([str(flow_only), "--data", str(eval_set)], "has no audio"),
             ([str(junk), "--data", str(eval_set)], "junk.ckpt"),
             ([str(small_ckpt), "--data", str(empty)], "calibrate: error:"),
             ([str(small_ckpt), "--data", str(eval_set), "--benchmark", "flickr", "--negatives", "evaluation"],
              "needs clips with sound events"),
             ([str(small_ckpt), "--data", str(eval_set), "--out", str(tmp_path / "no" / "dir" / "x.ckpt")],
              "x.ckpt")]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and err.startswith("calibrate: error:"), (argv, err)
