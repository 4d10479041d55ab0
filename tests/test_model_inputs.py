"""Hostile and mistaken model arguments at every command-line entry point (run_live,
export.onnx, export.trt, training.evaluate): NaN weights, tampered ONNX metadata and bare
registry names are one line and exit 2; untrained weights only when asked for; the shipped
checkpoints are found by their bare file name where the docs use it."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from export.onnx import export_onnx
from export.onnx import main as export_onnx_main
from export.onnx import resolve_model
from export.trt import main as export_trt_main
from flowgrad import checkpoint, models
from flowgrad.assets import DEMO_CLIP, MODELS_DIR
from helpers import tamper
from realtime.cli import main as run_live_main
from realtime.console import describe_model
from training.evaluate import main as evaluate_main

ROOT = Path(__file__).resolve().parent.parent
HAVE_TRT = torch.cuda.is_available() and importlib.util.find_spec("torch_tensorrt") is not None
POISONED = "audio_encoder.layer3.1.bn2.running_var"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small rcgrad: its checkpoint, one with a NaN tensor, its ONNX export and a tampered copy."""
    tmp = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = models.create("rcgrad", width=0.25)
    checkpoint.save(tmp / "good.ckpt", model)
    with torch.no_grad():
        model.state_dict()[POISONED][5] = float("nan")
    checkpoint.save(tmp / "nan.ckpt", model)
    export_onnx(checkpoint.load(tmp / "good.ckpt"), tmp / "good")
    tamper(tmp / "good", tmp / "evil", "frame", embed_dim={"x": 1})
    return tmp


def _one_line(capsys, prefix: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(prefix), err
    return err[0]


def _cases(files):
    return [
        (str(files / "nan.ckpt"), ["nan.ckpt", POISONED, "NaN or infinite"]),
        (str(files / "evil"), ["evil.frame.onnx", "'embed_dim' must be an integer"]),
        ("rcgrad", ["untrained", "--untrained", f"{MODELS_DIR.name}/rcgrad.ckpt"]),
    ]


def test_run_live_refuses_with_one_line(files, capsys):
    for spec, needles in _cases(files):
        assert run_live_main(["--camera", str(DEMO_CLIP), "--model", spec]) == 2
        line = _one_line(capsys, "run_live: error: ")
        assert all(n in line for n in needles), line


def test_evaluate_refuses_with_one_line(files, tmp_path, capsys):
    for spec, needles in _cases(files) + [(f"flowgrad_h:{files / 'nan.ckpt'}", ["nan.ckpt", POISONED])]:
        assert evaluate_main(["--data", str(tmp_path), "--model", spec]) == 2
        line = _one_line(capsys, "evaluate: error: ")
        assert all(n in line for n in needles), line


def test_exports_refuse_with_one_line_and_write_nothing(files, tmp_path, capsys):
    for main, prog in ((export_onnx_main, "export.onnx: "), (export_trt_main, "export.trt: ")):
        for spec, needles in _cases(files)[::2]:  # the exports read checkpoints, not ONNX files
            assert main([spec, "-o", str(tmp_path / "out")]) == 2
            line = _one_line(capsys, prog)
            assert all(n in line for n in needles), line
    assert not list(tmp_path.iterdir())


def test_untrained_weights_only_when_asked_for(capsys):
    model, out = resolve_model("rcgrad", True, "export.onnx")
    assert model.name == "rcgrad" and out == Path("rcgrad")
    assert "random, untrained weights of 'rcgrad'" in capsys.readouterr().err
    model, _ = resolve_model("flow_only", False, "export.onnx")  # no weights: fine by name, no warning
    assert model.name == "flow_only" and capsys.readouterr().err == ""


def test_export_onnx_finds_a_shipped_checkpoint_by_its_bare_name(tmp_path, monkeypatch, capsys):
    shipped = MODELS_DIR / "rcgrad.ckpt"
    before = set(MODELS_DIR.iterdir())
    monkeypatch.chdir(tmp_path)
    assert export_onnx_main(["rcgrad.ckpt"]) == 0
    captured = capsys.readouterr()
    assert f"no rcgrad.ckpt in the working directory; using the shipped {shipped}" in captured.err
    assert captured.out.split() == ["rcgrad.frame.onnx", "rcgrad.audio.onnx"]  # written here, not in assets/
    assert (tmp_path / "rcgrad.frame.onnx").is_file() and set(MODELS_DIR.iterdir()) == before
    (tmp_path / "rcgrad.ckpt").write_bytes(b"a file of that name here wins")
    assert export_onnx_main(["rcgrad.ckpt"]) == 2
    assert "rcgrad.ckpt: cannot read checkpoint" in capsys.readouterr().err


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is available: this checks the run up to the missing dependency")
def test_export_trt_documented_usage_finds_the_shipped_model(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "export.trt", "flowgrad_en.ckpt"], capture_output=True, text=True,
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    note, error = proc.stderr.strip().splitlines()
    assert note == f"export.trt: no flowgrad_en.ckpt in the working directory; using the shipped " \
                   f"{MODELS_DIR / 'flowgrad_en.ckpt'}"
    assert error.startswith("export.trt: ") and ("CUDA" in error or "torch-tensorrt" in error)


def test_run_live_start_up_line_names_the_checkpoint(monkeypatch):
    monkeypatch.chdir(ROOT)
    shipped = SimpleNamespace(name="flowgrad_en", source=str(MODELS_DIR / "flowgrad_en.ckpt"), untrained=False,
                              uses_audio=True, score_calibrated=True)
    assert describe_model(shipped) == "flowgrad_en from assets/models/flowgrad_en.ckpt"
    elsewhere = SimpleNamespace(name="rcgrad", source="/", untrained=False, uses_audio=True, score_calibrated=False)
    assert describe_model(elsewhere) == "rcgrad from / (score uncalibrated)"
    random = SimpleNamespace(name="rcgrad", source="rcgrad", untrained=True)
    assert describe_model(random) == "rcgrad UNTRAINED random weights"
    assert describe_model(SimpleNamespace(name="flow_only", source="flow_only", untrained=False)) == \
        "flow_only (no weights)"


def test_run_live_prints_the_checkpoint_it_runs(files, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "run_live.py"), "--camera", str(DEMO_CLIP), "--model",
                           str(files / "good.ckpt"), "--device", "cpu", "--duration", "2", "--quiet",
                           "--publish", "tcp://127.0.0.1:*"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    # good.ckpt is a freshly made model: its score is not calibrated, and the line says so
    assert f"run_live: rcgrad from {files / 'good.ckpt'} (score uncalibrated) (torch, cpu) on {DEMO_CLIP}" in proc.stderr
