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
    return Localiser(label, 16000, 1.0, lambda batch, data, idx: (fn(batch), np.ones(len(idx), np.float32)))


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
        maps = twin(frame, flow, emb)[0]
        plain = model(frame, flow, emb)[0]
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

    assert open_localiser("flow_only", "cpu").motion_memory  # the default where it helps (docs/RESULTS.md, issue 18)
    assert open_localiser("flow_only+memory", "cpu").motion_memory
    assert not open_localiser("flow_only+nomemory", "cpu").motion_memory
    assert not open_localiser("flow_only+memory", "cpu", motion_memory=False).motion_memory
    out_json = tmp_path / "m.json"
    assert main(["--data", str(eval_set), "--model", "flow_only+nomemory", "--model", "flow_only+memory",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "| flow_only +nomemory |" in out and "| flow_only |" in out  # the label names a departure from the default
    assert "flow: camera shake removed;" in out and "stabilise fallbacks" in out
    models_ = json.loads(out_json.read_text())["models"]
    plain, memory = models_["flow_only +nomemory"], models_["flow_only"]
    assert plain["flow_pairs"] == plain["n"] and 0 <= plain["stabilise_fallbacks"] <= plain["flow_pairs"]
    assert plain["cious"] != memory["cious"]  # the memory is another flow input
    assert main(["--data", str(eval_set), "--model", "flow_only", "--no-stabilise"]) == 0
    assert "camera shake kept (--no-stabilise)" in capsys.readouterr().out


# --- --negatives and --by-case -----------------------------------------------------------------

import shutil  # noqa: E402

from training import cases as case_file  # noqa: E402
from training.data.pairs import KINDS, EvalPairs  # noqa: E402
from training.data.urbansas import AUDIO_COLUMNS, read_csv  # noqa: E402
from training.data.windows import audio_window  # noqa: E402
from training.evaluate import evaluate_pairs  # noqa: E402

RECORD_KEYS = {"clip", "time", "positive", "kind", "case", "ciou", "score"}


@pytest.fixture(scope="module")
def listen_set(tmp_path_factory):
    """Two 12 s clips with quiet stretches: every kind of pair, swapped ones even for 5 s windows."""
    out = tmp_path_factory.mktemp("listen") / "set"
    generate(out, clips=2, seed=7, config=SynthConfig(width=160, height=96, seconds=12.0, fps=8, audio_rate=16000,
                                                      quiet_fraction=0.5, silent_fraction=0.5))
    return out


@pytest.fixture(scope="module")
def listen_cache(tmp_path_factory):
    """One flow cache for the listening tests: a pair's flow is computed once."""
    return tmp_path_factory.mktemp("listen_cache")


def _events(root):
    rows = read_csv(root / "annotations" / "audio_annotations.csv", AUDIO_COLUMNS)
    return [(r["filename"], r["label"], float(r["start"]), float(r["end"])) for r in rows if r["start"] != "-1.0"]


def test_negative_pairs_have_the_documented_audio(listen_set):
    data = EvalPairs(listen_set, DataConfig(audio_seconds=1.0))
    counts = data.kind_counts()
    assert counts["positive"] > 0 and counts["no-event"] > 0
    assert counts["silence"] == counts["swapped"] == counts["positive"]
    events = _events(listen_set)
    read = {"silence": 3, "swapped": 3}  # the waves of a few pairs of each kind (reading is slow)
    for i, item in enumerate(data.items):
        clip = data.sources[item.source].clip
        if item.kind == "no-event":  # no on-screen vehicle sound at t; no box
            assert item.boxes == ()
            assert not any(c == clip and label != "offscreen" and s <= item.t <= e for c, label, s, e in events)
        elif item.kind == "silence" and read["silence"]:
            read["silence"] -= 1
            assert not data[i].wave.any()
        elif item.kind == "swapped":  # the donor window holds no vehicle sound at all, on or off screen
            source, t = item.audio
            donor = data.sources[source].clip
            assert not any(c == donor and s < t + 0.5 and e > t - 0.5 for c, _, s, e in events)
            assert item.boxes  # the positive frame's boxes stay the gt
            if read["swapped"]:
                read["swapped"] -= 1
                np.testing.assert_array_equal(data[i].wave.numpy(),
                                              audio_window(data.sources[source].audio, t, data.config))
    assert not any(read.values())
    assert len(EvalPairs(listen_set, DataConfig(audio_seconds=1.0), negatives=False)) == counts["positive"]


def test_pairs_record_and_slavc_figures_with_known_localisers(listen_set, listen_cache):
    cache = FlowCache(listen_cache)
    cases = case_file.load(listen_set)

    def oracle(batch, data, idx):  # perfect map; sure exactly when the pair is positive
        return batch.gt.numpy(), np.array([data.items[i].kind == "positive" for i in idx], np.float32)

    summary, cious, _, pairs = evaluate_pairs(Localiser("oracle", 16000, 1.0, oracle), listen_set, cache, 8, 0.5,
                                              False, negatives=True, cases=cases, split_cases=True)
    assert all(set(p) == RECORD_KEYS for p in pairs)
    assert {p["kind"] for p in pairs} == set(KINDS)
    assert all(p["positive"] == (p["kind"] == "positive") for p in pairs)
    assert all((p["ciou"] is None) == (p["kind"] == "no-event") for p in pairs)
    assert all(p["case"] in case_file.PRECEDENCE for p in pairs)
    assert summary["n"] == len(cious) == sum(p["positive"] for p in pairs)
    assert summary["ap"] == summary["max_f1"] == 1.0 and summary["fpr@0.5"] == 0.0
    assert summary["positives_quiet@0.5"] == 0.0
    assert sum(summary["negatives"].values()) == len(pairs) - summary["n"]
    assert set(summary["by_case"]) <= set(case_file.PRECEDENCE)
    assert sum(r["n"] + sum(r["negatives"].values()) for r in summary["by_case"].values()) == len(pairs)

    # A constant score cannot rank: AP = localised positives / all pairs; every negative is a false alarm.
    from training.pair_report import summarise_pairs

    deaf = summarise_pairs([dict(p, score=1.0) for p in pairs], negatives=True)
    assert deaf["ap"] == pytest.approx(summary["n"] / len(pairs)) and deaf["fpr@0.5"] == 1.0
    assert deaf["positives_quiet@0.5"] == 0.0 and set(deaf["fpr@0.5_by_kind"].values()) == {1.0}


def test_cli_negatives_by_case_json_and_table(listen_set, listen_cache, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["--data", str(listen_set), "--model", "flow_only", "--negatives", "--by-case",
                 "--flow-cache", str(listen_cache), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| AP | max-F1 | FPR @ 0.5 |" in table and "| flow_only | all |" in table
    record = json.loads(out.read_text())
    assert record["negatives"] is True
    r = record["models"]["flow_only"]
    kinds = [p["kind"] for p in r["pairs"]]
    assert set(kinds) == set(KINDS)  # 5 s windows: swapped needs a 5 s stretch without vehicle sound
    assert kinds.count("silence") == kinds.count("swapped") == kinds.count("positive") == r["n"]
    assert all(set(p) == RECORD_KEYS and p["case"] in case_file.PRECEDENCE for p in r["pairs"])
    assert r["cious"] == [p["ciou"] for p in r["pairs"] if p["positive"]]
    # flow_only has no ears (score 1): every negative is loud, and AP is the share of localised positives.
    assert r["fpr@0.5"] == 1.0
    assert r["ap"] == pytest.approx(sum(c >= 0.5 for c in r["cious"]) / len(r["pairs"]))
    for case, row in r["by_case"].items():
        assert f"| flow_only | {case} |" in table
        assert row["n"] == sum(p["positive"] and p["case"] == case for p in r["pairs"])


def test_cli_by_case_without_negatives_and_without_a_cases_file(listen_set, listen_cache, tmp_path, capsys):
    assert main(["--data", str(listen_set), "--model", "flow_only", "--by-case", "--flow-cache", str(listen_cache),
                 "--json", str(tmp_path / "a.json")]) == 0
    r = json.loads((tmp_path / "a.json").read_text())["models"]["flow_only"]
    assert {p["kind"] for p in r["pairs"]} == {"positive"} and "ap" not in r
    assert "AP" not in capsys.readouterr().out
    bare = tmp_path / "bare"
    shutil.copytree(listen_set, bare)
    (bare / "annotations" / "cases.json").unlink()
    assert main(["--data", str(bare), "--model", "flow_only", "--by-case", "--json", str(tmp_path / "b.json")]) == 0
    assert "no pair has a case" in capsys.readouterr().err
    r = json.loads((tmp_path / "b.json").read_text())["models"]["flow_only"]
    assert {p["case"] for p in r["pairs"]} == {None} and list(r["by_case"]) == ["none"]


def test_negatives_need_sound_events(listen_set, capsys):
    assert main(["--data", str(listen_set), "--benchmark", "flickr", "--model", "flow_only", "--negatives"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--negatives" in err[0]
