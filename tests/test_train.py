"""`python -m training.train` on a tiny synthetic street set: the smoke test CI runs
(real data path, real optimiser steps, real files), resume, refusal cases, torchrun."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flowgrad import checkpoint, models
from training.data import DataConfig, UrbansasWindows
from training.data.negatives import label_windows, read_events
from training.synth import SynthConfig, generate
from training.train import _calibrate_best, main, split_by_clip

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "set"
    # The scenes of synth version 1.0 (no quiet stretches etc.): the step counts below rely on its windows.
    generate(out, clips=4, seed=11, config=SynthConfig(width=160, height=96, seconds=6.0, silent_fraction=0.0,
                                                       busy_fraction=0.0, quiet_fraction=0.0, parked_fraction=1.0,
                                                       ambience=0.0))
    return out


def _args(data, out, *extra, model="rcgrad"):
    return ["--model", model, "--width", "0.125", "--data", str(data), "--out", str(out), "--batch-size", "3",
            "--val-fraction", "0.25", *extra]


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU (bf16 autocast runs on CUDA only)")
@pytest.mark.parametrize("model", ["flowgrad_en", "htf"])
def test_mixed_precision_training_on_cuda(tiny_set, tmp_path, model):
    run = tmp_path / "run"
    assert main(_args(tiny_set, run, "--epochs", "1", "--max-steps", "4", "--device", "cuda", "--amp",
                      model=model)) == 0
    log = _log(run)
    assert log[-1]["steps"] == 4 and torch.isfinite(torch.tensor(log[-1]["train_loss"]))
    assert next(checkpoint.load(run / "best.ckpt").parameters()).dtype == torch.float32  # weights stay fp32


def test_split_by_clip_never_shares_a_clip():
    clips = ["a", "a", "b", "b", "b", "c", "d", "d"]
    train, val = split_by_clip(clips, 0.25, seed=0)
    assert sorted(train + val) == list(range(len(clips)))
    assert not {clips[i] for i in train} & {clips[i] for i in val}
    assert len({clips[i] for i in val}) == 1
    assert split_by_clip(clips, 0.25, seed=0) == (train, val)
    assert split_by_clip(["only"] * 4, 0.5, seed=0) == ([0, 1, 2, 3], [])


@pytest.mark.parametrize("model", ["rcgrad", "flowgrad_en", "htf"])
def test_training_writes_loadable_checkpoints_and_a_log(tiny_set, tmp_path, model):
    run = tmp_path / "run"
    assert main(_args(tiny_set, run, "--epochs", "2", "--max-steps", "8", model=model)) == 0
    log = _log(run)
    assert [r["epoch"] for r in log] == [1, 2] and log[-1]["steps"] == 8  # 6 steps per epoch
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in log)
    best = checkpoint.load(run / "best.ckpt")
    assert best.name == model and best.config.width == 0.125
    last = checkpoint.load(run / "epoch_002.ckpt")
    fresh = type(last)(last.config)
    changed = [k for k, v in last.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, fresh.state_dict()[k])]
    assert changed, "training changed no weights"
    assert checkpoint.read_meta(run / "epoch_002.ckpt")["meta"]["epoch"] == 2


def test_resume_continues_where_the_run_stopped(tiny_set, tmp_path):
    run = tmp_path / "run"
    assert main(_args(tiny_set, run, "--epochs", "1")) == 0
    steps_after_one = _log(run)[-1]["steps"]
    assert main(_args(tiny_set, run, "--epochs", "1")) == 2  # refuses to overwrite a run
    assert main(_args(tiny_set, run, "--epochs", "2", "--resume")) == 0
    log = _log(run)
    assert [r["epoch"] for r in log] == [1, 2] and log[-1]["steps"] == 2 * steps_after_one
    state = torch.load(run / "state.pt", weights_only=True)
    adam_steps = {int(s["step"]) for s in state["optimiser"]["state"].values()}
    assert adam_steps == {2 * steps_after_one}


def test_bad_runs_fail_with_one_line(tiny_set, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.pt").write_bytes(b"not a torch file")
    assert main(_args(tiny_set, run, "--resume")) == 2
    assert main(_args(tmp_path / "missing", tmp_path / "other")) == 2
    assert main(_args(tiny_set, tmp_path / "x", "--batch-size", "1")) == 2
    assert main(_args(tiny_set, tmp_path / "y", "--init", str(tmp_path / "none.ckpt"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("train: error: ") for line in err), err
    assert "state.pt" in err[0] and "missing" in err[1] and "batch-size" in err[2] and "none.ckpt" in err[3]


def test_en_starts_from_a_trained_rcgrad(tiny_set, tmp_path):
    rc = tmp_path / "rc"
    assert main(_args(tiny_set, rc, "--epochs", "1", "--max-steps", "1", "--clips-per-batch", "2")) == 0
    en = tmp_path / "en"
    assert main(_args(tiny_set, en, "--epochs", "1", "--max-steps", "1", "--augment", "--init", str(rc / "best.ckpt"),
                      model="flowgrad_en")) == 0
    assert checkpoint.load(en / "best.ckpt").name == "flowgrad_en"


def test_torchrun_two_cpu_processes(tiny_set, tmp_path):
    """Data parallel training under the standard launcher, gloo backend, 2 processes."""
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.train", *_args(tiny_set, run, "--epochs", "1", "--batch-size", "2")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    log = _log(run)
    assert log[-1]["world_size"] == 2 and log[-1]["steps"] >= 1
    checkpoint.load(run / "best.ckpt")


# ------------------------------------------------------------------ broken inputs, honest figures


def _copy_with_nan_audio(tiny_set, tmp_path):
    """The tiny set with one clip's WAV rewritten as float32 holding NaN in a 0.1 s stretch."""
    import shutil

    import numpy as np
    from scipy.io import wavfile

    root = tmp_path / "set"
    shutil.copytree(tiny_set, root)
    wav = sorted((root / "audio").glob("*.wav"))[1]
    rate, data = wavfile.read(wav)
    data = data.astype(np.float32) / 32768
    data[2 * rate: 2 * rate + rate // 10] = np.nan
    wavfile.write(wav, rate, data)
    return root, wav


def test_a_clip_with_nan_audio_is_skipped_counted_and_reported(tiny_set, tmp_path, capsys):
    from training.data.windows import SKIP_NON_FINITE

    data, wav = _copy_with_nan_audio(tiny_set, tmp_path)
    run = tmp_path / "run"
    assert main(_args(data, run, "--epochs", "1", "--val-fraction", "0", "--negatives", "0")) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # all 6 windows of the clip reach 2.0-2.1 s: 5 s windows tiled over a 6 s clip (and the resampler's margin)
    assert f"train: skipped inputs: {SKIP_NON_FINITE}: 6\n" in err, err
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in _log(run))
    # negatives draw frames and other clips' audio from the same windows: passed over and counted too
    run = tmp_path / "with_negatives"
    assert main(_args(data, run, "--epochs", "1", "--max-steps", "3", "--val-fraction", "0", "--negatives", "2")) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"train: skipped inputs: {SKIP_NON_FINITE}: " in err, err
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in _log(run))


def test_nan_audio_is_counted_through_dataloader_workers(tiny_set, tmp_path, capsys):
    from training.data.windows import SKIP_NON_FINITE

    data, _ = _copy_with_nan_audio(tiny_set, tmp_path)
    assert main(_args(data, tmp_path / "run", "--epochs", "1", "--val-fraction", "0", "--workers", "1",
                      "--negatives", "0")) == 0
    assert f"train: skipped inputs: {SKIP_NON_FINITE}: 6\n" in capsys.readouterr().err


def test_the_validation_count_is_the_windows_validated(tiny_set, tmp_path, capsys):
    from training.data import DataConfig, UrbansasWindows
    from training.train import clip_ids

    clips = clip_ids(UrbansasWindows(tiny_set, DataConfig(audio_seconds=5.0)))
    held_out = len(split_by_clip(clips, 0.25, seed=0)[1])
    run = tmp_path / "run"
    # batches of 5: the old loader left a last batch of one window, which a contrastive loss cannot use
    assert main(_args(tiny_set, run, "--epochs", "1", "--max-steps", "1", "--batch-size", "5")) == 0
    err = capsys.readouterr().err
    assert f"/ {held_out} validation windows" in err
    assert f"on {held_out} windows" in err and _log(run)[-1]["val_windows"] == held_out


def test_without_validation_windows_no_validation_loss_is_reported(tiny_set, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_args(tiny_set, run, "--epochs", "1", "--max-steps", "1", "--val-fraction", "0")) == 0
    err = capsys.readouterr().err
    assert "/ 0 validation windows" in err and " val " not in err and "best validation" not in err
    assert "no validation windows (best.ckpt by the training loss)" in err
    assert "best training loss" in err
    record = _log(run)[-1]
    assert record["val_loss"] is None and record["val_windows"] == 0
    assert checkpoint.read_meta(run / "best.ckpt")["meta"]["val_loss"] is None


def test_nan_weights_are_refused_for_init_and_resume(tiny_set, tmp_path, capsys):
    model = models.create("rcgrad", width=0.125)
    with torch.no_grad():
        model.audio_encoder.conv1.weight[0, 0, 0, 0] = float("inf")
    checkpoint.save(tmp_path / "inf.ckpt", model)
    assert main(_args(tiny_set, tmp_path / "a", "--init", str(tmp_path / "inf.ckpt"))) == 2
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": model.state_dict(), "objective": {}, "optimiser": {}, "scheduler": {}, "counters": {}},
               run / "state.pt")
    assert main(_args(tiny_set, run, "--resume")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("train: error: ") for line in err), err
    assert "inf.ckpt" in err[0] and "audio_encoder.conv1.weight" in err[0] and "NaN or infinite" in err[0]
    assert "state.pt" in err[1] and "NaN or infinite" in err[1] and "model.audio_encoder.conv1.weight" in err[1]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_state_pt_is_refused_in_one_line(tiny_set, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": {}, "counters": _Evil(marker)}, run / "state.pt")
    proc = subprocess.run([sys.executable, "-m", "training.train", *_args(tiny_set, run, "--resume")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"train: error: {run / 'state.pt'}: refused to load"), err
    assert "executable" in err[0] and "posix.system" in err[0] and "weights_only" not in err[0]
    assert not marker.exists()


def test_flow_options_reach_the_data_and_the_run_record(tiny_set, tmp_path, monkeypatch):
    """--no-stabilise and --motion-memory set the training data's DataConfig (and args.json)."""
    import training.train as train_module

    seen = []
    real = train_module.open_windows

    def spy(root, config, flow_cache=None, boxes=False):
        seen.append(config)
        return real(root, config, flow_cache, boxes)
    monkeypatch.setattr(train_module, "open_windows", spy)
    run = tmp_path / "run"
    assert main(_args(tiny_set, run, "--epochs", "1", "--max-steps", "1", "--no-stabilise", "--motion-memory")) == 0
    assert not seen[0].stabilise and seen[0].motion_memory_s == 5.0
    args = json.loads((run / "args.json").read_text())
    assert args["stabilise"] is False and args["motion_memory"] is True


def test_negatives_train_and_log_each_term_then_calibrate_best(tiny_set, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_args(tiny_set, run, "--epochs", "1", "--max-steps", "2", "--negatives", "0.5")) == 0
    record = _log(run)[-1]
    assert set(record["train_terms"]) == {"loss_contrastive", "loss_margin"}
    assert record["train_terms"]["loss_margin"] > 0
    assert sum(record["negatives"].values()) == 2 * 2  # 2 steps x round(0.5 x 3) negatives
    assert set(record["negatives"]) <= {"silence", "quiet", "offscreen", "swapped"}
    err = capsys.readouterr().err
    assert "negatives per batch" in err and "margin" in err and "train: calibration:" in err

    # the calibration hook with a stand-in evidence (the wave's RMS) and fit
    data = UrbansasWindows(tiny_set, DataConfig(audio_rate=16000, audio_seconds=5.0))
    labels = label_windows(data, read_events(tiny_set))
    stored = []
    hooks = lambda model: (lambda f, fl, w: w.square().mean(1).sqrt(), lambda e, y: (3.0, -0.5),  # noqa: E731
                           lambda scale, bias: stored.append((scale, bias)))
    result = _calibrate_best(run / "best.ckpt", data, labels, "cpu", 4, 0, hooks=hooks)
    assert stored == [(3.0, -0.5)]
    meta = checkpoint.read_meta(run / "best.ckpt")["meta"]
    assert meta["calibration"] == result and result["pairs"]["positive"] > 0 and result["pairs"]["silence"] > 0
    assert meta["epoch"] == 1  # the checkpoint's own meta is kept


def test_without_negatives_the_log_is_as_before(tiny_set, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_args(tiny_set, run, "--epochs", "1", "--max-steps", "1", "--negatives", "0")) == 0
    assert "train_terms" not in _log(run)[-1] and "negatives per batch" not in capsys.readouterr().err
    assert main(_args(tiny_set, tmp_path / "bad", "--negatives", "-1")) == 2
    assert capsys.readouterr().err.strip().startswith("train: error: --negatives: negatives fraction")


@pytest.mark.parametrize("model", ["flowgrad_en", "htf"])
def test_box_loss_trains_the_map_on_the_boxes_and_logs_it(tiny_set, tmp_path, capsys, model):
    run = tmp_path / "run"
    assert main(_args(tiny_set, run, "--epochs", "1", "--max-steps", "2", "--box-loss", "1", "--augment",
                      "--negatives", "0", model=model)) == 0
    record = _log(run)[-1]
    assert record["train_terms"]["loss_box"] > 0 and json.loads((run / "args.json").read_text())["box_weight"] == 1.0
    assert "box " in capsys.readouterr().err


@pytest.mark.parametrize("boxed", [False, True])
def test_box_loss_runs_the_maps_only_for_a_batch_with_boxes(boxed):
    # A batch whose windows carry no box adds nothing to the loss (box_map_loss leaves such rows out), so its
    # maps are not made: the objective's loss alone, and no second forward pass of the model.
    from training import objectives
    from training.train import TrainStep

    torch.manual_seed(0)
    model = models.create("flowgrad_en", width=0.25)
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    step = TrainStep(model, objectives.objective_for(model), box_weight=1.0)
    frame, flow, wave = torch.rand(2, 3, 224, 224), torch.rand(2, 2, 224, 224), torch.rand(2, 16000) - 0.5
    gt = torch.zeros(2, 224, 224)
    if boxed:
        gt[1, 50:100, 60:120] = 1
    torch.manual_seed(1)
    plain, plain_logs = TrainStep(model, objectives.objective_for(model))(frame, flow, wave)
    calls.clear()
    torch.manual_seed(1)
    loss, logs = step(frame, flow, wave, gt=gt)
    assert len(calls) == int(boxed)
    if boxed:
        assert logs["loss_box"] > 0 and loss.item() == pytest.approx(plain.item() + logs["loss_box"], rel=1e-5)
    else:
        assert logs["loss_box"] == 0.0 and loss.item() == pytest.approx(plain.item(), rel=1e-6)


def test_box_loss_refuses_bad_weights_and_sets_without_annotations(tiny_set, tmp_path, capsys):
    for bad in ("-1", "nan"):
        assert main(_args(tiny_set, tmp_path / f"bad{bad}", "--box-loss", bad)) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("train: error: --box-loss must be a finite number >= 0") and "\n" not in err
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "video").mkdir()
    for sub in ("audio", "video"):
        for f in (tiny_set / sub).rglob("*"):
            if f.is_file():
                dest = bare / f.relative_to(tiny_set)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(f.read_bytes())
    assert main(_args(bare, tmp_path / "run", "--box-loss", "1")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train: error: --box-loss:") and "video_annotations.csv" in err and "\n" not in err
