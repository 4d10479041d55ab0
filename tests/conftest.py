"""Shared test helpers: small registry models and contract-shaped inputs."""
import dataclasses

import pytest
import torch

from flowgrad import models


def small_config(name: str) -> dict:
    """Config for a fast test-size model of ``name`` (narrow width where the model has one)."""
    fields = {f.name for f in dataclasses.fields(models.config_class(name))}
    return {"width": 0.25} if "width" in fields else {}


def make_inputs(model, batch: int, seed: int = 0):
    """Random (frame, flow, wave) following the contract, deterministic per seed."""
    g = torch.Generator().manual_seed(seed)
    h, w = model.input_size
    frame = torch.rand(batch, 3, h, w, generator=g)
    flow = torch.randn(batch, 2, h, w, generator=g) * 4.0
    n = int(model.audio_rate * model.audio_seconds)
    wave = torch.randn(batch, n, generator=g) * 0.1
    return frame, flow, wave


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
