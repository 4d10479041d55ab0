"""Shared fixtures; the helper functions they use are in tests/helpers.py."""
import pytest
import torch

from flowgrad import models
from helpers import small_config, write_urbansas


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
