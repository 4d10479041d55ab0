"""export.trt: a clear one-line exit 2 where CUDA or torch-tensorrt is missing; a real run where present."""
import importlib.util
import subprocess
import sys

import pytest
import torch

from flowgrad import checkpoint, models

HAVE_TRT = torch.cuda.is_available() and importlib.util.find_spec("torch_tensorrt") is not None


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is available: the missing-dependency path cannot be shown")
def test_missing_tensorrt_or_cuda_exits_2_with_one_line(tmp_path):
    ckpt = tmp_path / "rc.ckpt"
    checkpoint.save(ckpt, models.create("rcgrad", width=0.25))
    proc = subprocess.run([sys.executable, "-m", "export.trt", str(ckpt)], capture_output=True, text=True)
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert ("CUDA" in line) or ("torch-tensorrt" in line and "pip install" in line)
    assert not list(tmp_path.glob("*.ep"))


def test_bad_checkpoint_exits_2_naming_the_file(tmp_path):
    bad = tmp_path / "broken.ckpt"
    bad.write_bytes(b"garbage")
    proc = subprocess.run([sys.executable, "-m", "export.trt", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "broken.ckpt" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(not HAVE_TRT, reason="needs a CUDA GPU and torch-tensorrt")
def test_trt_export_runs_and_checks_itself(tmp_path):
    from export.trt import export_trt

    written = export_trt(models.create("rcgrad", width=0.25), tmp_path / "rc", batch=2)
    assert {p.name for p in written} == {"rc.frame.ep", "rc.audio.ep"}


def test_doa_suffix_is_refused_in_one_line_without_metadata_to_record_it(tmp_path):
    """An ExportedProgram has no flowgrad metadata: +doa is one line, exit 2, before TensorRT is needed."""
    ckpt = tmp_path / "fo.ckpt"
    checkpoint.save(ckpt, models.create("flow_only"))
    proc = subprocess.run([sys.executable, "-m", "export.trt", f"{ckpt}+doa"], capture_output=True, text=True)
    line = proc.stderr.strip()
    assert proc.returncode == 2 and "\n" not in line and "Traceback" not in line
    assert "+doa" in line and "metadata" in line and "export.onnx" in line
    assert not list(tmp_path.glob("*.ep"))
