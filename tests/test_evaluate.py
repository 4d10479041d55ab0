"""`python -m training.evaluate` on a small synthetic street set: the plumbing is checked
with localisers whose answer is known (the ground truth itself, nothing at all), then the
CLI end to end."""
import json

import numpy as np
import pytest
import torch

from flowgrad import checkpoint, models
from helpers import fixed_detector
from training import metrics
from training.data import DataConfig, UrbansasEval
from training.data.flowcache import FlowCache
from training.evaluate import Localiser, evaluate_one, main
from training.synth import SynthConfig, generate


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "set"
    generate(out, clips=2, seed=21, config=SynthConfig(width=320, height=180, seconds=6.0))
    return out


def _fixed(label, fn):
    return Localiser(label, 16000, 1.0, lambda batch, data, idx: fn(batch))


def test_a_perfect_localiser_scores_one_and_an_empty_one_zero(eval_set, tmp_path):
    cache = FlowCache(tmp_path / "cache")
    n = len(UrbansasEval(eval_set, DataConfig(audio_seconds=1.0)))
    assert n > 0
    perfect, cious, _ = evaluate_one(_fixed("gt", lambda b: b.gt.numpy()), eval_set, cache, 4, 0.5, False)
    assert perfect["n"] == n and cious == [1.0] * n
    assert perfect["success@0.5"] == perfect["success@0.3"] == 1.0 and perfect["auc"] == pytest.approx(1.0)
    empty, cious, _ = evaluate_one(_fixed("none", lambda b: np.zeros_like(b.gt.numpy())), eval_set, cache, 4, 0.5,
                                   False)
    # Success is 1 at cIoU threshold 0 and 0 from 0.05 on: one trapezoid, 0.05 * 1 / 2.
    assert cious == [0.0] * n and empty["auc"] == pytest.approx(0.025)
    # Everything lit: cIoU = |gt| / (|gt| + |background|) = gt area fraction, per the formula.
    full, cious, _ = evaluate_one(_fixed("all", lambda b: np.ones_like(b.gt.numpy())), eval_set, cache, 4, 0.5,
                                  False)
    data = UrbansasEval(eval_set, DataConfig(audio_seconds=1.0))
    areas = [data[i].gt.numpy().mean() for i in range(n)]
    np.testing.assert_allclose(cious, areas, rtol=1e-6)


def test_cli_table_json_and_plots(eval_set, tmp_path, capsys):
    rc = tmp_path / "rc.ckpt"
    checkpoint.save(rc, models.create("rcgrad", width=0.125).eval())
    code = main(["--data", str(eval_set), "--model", "flow_only", "--model", f"flowgrad_h:{rc}",
                 "--json", str(tmp_path / "r.json"), "--plots", str(tmp_path / "plots")])
    assert code == 0
    out = capsys.readouterr().out
    assert "| flow_only |" in out and "| flowgrad_h (" in out
    result = json.loads((tmp_path / "r.json").read_text())
    for r in result["models"].values():
        assert r["n"] == len(r["cious"]) > 0
        assert r["auc"] == pytest.approx(metrics.auc(r["cious"]))
        assert r["success@0.5"] == pytest.approx(np.mean(np.array(r["cious"]) >= 0.5))
    assert (tmp_path / "plots" / "success_curve.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "examples.png").stat().st_size > 1000


def test_detector_baseline_drops_boxes_that_do_not_move(eval_set, tmp_path, capsys):
    """A 'detector' reporting the same car in every frame: the temporal filter drops it."""
    det = fixed_detector(tmp_path / "det.onnx", [[10, 10, 40, 40, 0.9, 2]])
    assert main(["--data", str(eval_set), "--model", f"detector:{det}", "--json", str(tmp_path / "d.json")]) == 0
    r = next(iter(json.loads((tmp_path / "d.json").read_text())["models"].values()))
    assert r["n"] > 0 and set(r["cious"]) == {0.0}


@pytest.mark.parametrize("spec, message", [
    ("missing.ckpt", "missing.ckpt"),
    ("detector:nothing.onnx", "nothing.onnx"),
])
def test_bad_models_are_one_line_exit_2(eval_set, spec, message, capsys):
    assert main(["--data", str(eval_set), "--model", spec]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_reference_mode_cleans_below_the_median(eval_set, tmp_path, capsys):
    """--reference runs the published post-processing: every map is zero below its median,
    so at least half of its pixels are 0; models without a reference mode are refused."""
    from training.evaluate import as_reference

    torch.manual_seed(0)
    model = models.create("flowgrad_en", width=0.125).eval()
    twin = as_reference(model, "x")
    assert twin.config.reference and not model.config.reference
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), twin.state_dict().values()))
    frame, flow = torch.rand(2, 3, 224, 224), torch.randn(2, 2, 224, 224) * 3
    with torch.no_grad():
        emb = model.embed_audio(torch.randn(2, 16000) * 0.1)
        maps = twin(frame, flow, emb)
        plain = model(frame, flow, emb)
    assert all((m == 0).float().mean() >= 0.5 for m in maps)
    assert any((m == 0).float().mean() < 0.5 for m in plain)  # the default does not clean

    ckpt = tmp_path / "rc.ckpt"
    checkpoint.save(ckpt, models.create("rcgrad", width=0.125).eval())
    assert main(["--data", str(eval_set), "--reference", "--model", str(ckpt), "--model", f"flowgrad_h:{ckpt}",
                 "--json", str(tmp_path / "r.json")]) == 0
    labels = list(json.loads((tmp_path / "r.json").read_text())["models"])
    assert labels == [f"rcgrad reference ({tmp_path.name})", f"flowgrad_h reference ({tmp_path.name})"]
    capsys.readouterr()
    assert main(["--data", str(eval_set), "--reference", "--model", "htf", "--untrained"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no reference mode" in err[0]


def test_memory_specs_and_stabilise_fallbacks_in_the_output(eval_set, tmp_path, capsys):
    """``+memory`` / ``+nomemory`` choose each model's flow input, ``--motion-memory`` overrides them, and the
    output says how many computed flow pairs fell back from stabilisation (JSON: per model)."""
    from training.evaluate import open_localiser

    assert open_localiser("flow_only+memory", "cpu").motion_memory
    assert not open_localiser("flow_only+nomemory", "cpu").motion_memory
    assert not open_localiser("flow_only+memory", "cpu", motion_memory=False).motion_memory
    out_json = tmp_path / "m.json"
    assert main(["--data", str(eval_set), "--model", "flow_only+nomemory", "--model", "flow_only+memory",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "| flow_only |" in out and "| flow_only +memory |" in out
    assert "flow: camera shake removed;" in out and "stabilise fallbacks" in out
    models_ = json.loads(out_json.read_text())["models"]
    plain, memory = models_["flow_only"], models_["flow_only +memory"]
    assert plain["flow_pairs"] == plain["n"] and 0 <= plain["stabilise_fallbacks"] <= plain["flow_pairs"]
    assert plain["cious"] != memory["cious"]  # the memory is another flow input
    assert main(["--data", str(eval_set), "--model", "flow_only", "--no-stabilise"]) == 0
    assert "camera shake kept (--no-stabilise)" in capsys.readouterr().out
