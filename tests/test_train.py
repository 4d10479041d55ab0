"""`python -m training.train` on a tiny synthetic street set: the smoke test CI runs
(real data path, real optimiser steps, real files), resume, refusal cases, torchrun."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flowgrad import checkpoint
from training.synth import SynthConfig, generate
from training.train import main, split_by_clip

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "set"
    generate(out, clips=4, seed=11, config=SynthConfig(width=160, height=96, seconds=6.0))
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
