"""Shared fixtures; the helper functions they use are in tests/helpers.py."""
from pathlib import Path

import pytest
import torch

from flowgrad import models
from helpers import small_config, write_urbansas

USER_OUTPUT = Path(__file__).resolve().parents[1] / "demo_out"  # what the README's demo writes


def _listing(folder: Path) -> dict:
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def user_outputs_untouched():
    """The tests write to temporary folders only: the user's demo_out/ is the same after the run."""
    before = _listing(USER_OUTPUT)
    yield
    changed = sorted(str(p) for p, stamp in _listing(USER_OUTPUT).items() if before.get(p) != stamp)
    assert not changed, f"tests wrote into the checkout's demo_out/: {changed}"



@pytest.fixture(params=models.names())
def model(request):
    torch.manual_seed(0)
    return models.create(request.param, **small_config(request.param))


@pytest.fixture(scope="session")
def onnx_exports(tmp_path_factory):
    """Every registry model (test size, seed 0) exported once with a dynamic batch.

    {name: (model, prefix, written paths)}; shared by the export and engine
    tests so the suite exports each model once.
    """
    from export.onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx")
    result = {}
    for name in models.names():
        torch.manual_seed(0)
        model = models.create(name, **small_config(name))
        result[name] = (model, out / name, export_onnx(model, out / name))
    return result


@pytest.fixture(scope="module")
def urbansas(tmp_path_factory):
    """A tiny Urbansas root (:func:`helpers.write_urbansas`), one per test module."""
    return write_urbansas(tmp_path_factory.mktemp("urbansas"))
