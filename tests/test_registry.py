"""The registry is the only place that knows a model: cases generated from it, one per model.

For every registered model: its class carries its name (a model built directly saves a
checkpoint that loads), it exports through its own code paths without anything
process-wide being patched (onnxruntime agrees with torch), and it has a training
objective exactly when its class says it is trained. And no module outside
flowgrad/models decides anything by comparing with a model's name.
"""
import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import onnx
from helpers import make_inputs, small_config
from flowgrad import checkpoint, models
from flowgrad.backbones import BatchNorm2d
from training.objectives import Objective, objective_for, trainable

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-4


def _direct(name):
    """Model ``name`` built from its class and config, without the registry's factory."""
    torch.manual_seed(0)
    cls = models.model_class(name)
    return cls(cls.Config(**small_config(name))).eval()


@pytest.mark.parametrize("name", models.names())
def test_class_carries_its_registry_name(name):
    cls = models.model_class(name)
    assert cls.name == name and "name" in vars(cls)  # its own, not a base class's
    assert models.create(name).name == name


def test_rcgrad_built_directly_saves_a_checkpoint_that_loads(tmp_path):
    from flowgrad.models.flowgrad_family import FlowGradConfig, RCGrad

    model = RCGrad(FlowGradConfig(width=0.125))
    checkpoint.save(tmp_path / "rc.ckpt", model)
    assert checkpoint.read_meta(tmp_path / "rc.ckpt")["model"] == "rcgrad"
    assert checkpoint.load(tmp_path / "rc.ckpt").name == "rcgrad"


@pytest.mark.parametrize("name", models.names())
def test_save_load_round_trip(name, tmp_path):
    model = _direct(name)
    path = tmp_path / f"{name}.ckpt"
    checkpoint.save(path, model)
    loaded = checkpoint.load(path)
    assert type(loaded) is type(model) and loaded.name == name
    assert dataclasses.asdict(loaded.config) == dataclasses.asdict(model.config)
    assert loaded.has_weights == model.has_weights == bool(model.state_dict())
    frame, flow, wave = make_inputs(model, batch=2)
    with torch.no_grad():
        for got, want in zip(loaded.localise(frame, flow, wave), model.localise(frame, flow, wave)):
            assert torch.equal(got, want)


@pytest.mark.parametrize("name", models.names())
def test_export_parity_without_process_wide_patches(name, tmp_path, monkeypatch):
    """While the exporter traces, torch.einsum and BatchNorm2d.forward are the originals and
    another instance of the same model keeps its plain code paths; onnxruntime then matches
    torch and the graphs hold no Einsum (the export-friendly paths were taken)."""
    from export.onnx import export_onnx, load_session

    model = _direct(name)
    bystander = _direct(name)
    einsum, bn_forward, real_export = torch.einsum, BatchNorm2d.forward, torch.onnx.export
    seen = []

    def spying_export(*args, **kwargs):
        seen.append((torch.einsum is einsum, BatchNorm2d.forward is bn_forward,
                     not any(getattr(m, "traceable", False) for m in bystander.modules()),
                     getattr(model, "traceable", False)))
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", spying_export)
    paths = export_onnx(model, tmp_path / name)
    assert seen and all(s == (True, True, True, True) for s in seen), seen
    assert not any(getattr(m, "traceable", False) for m in model.modules())  # restored after export
    for path in paths:
        assert "Einsum" not in {n.op_type for n in onnx.load(str(path)).graph.node}

    frame, flow, wave = make_inputs(model, batch=3, seed=5)
    with torch.no_grad():
        emb = model.embed_audio(wave)
        ref, ref_score = (t.numpy() for t in model(frame, flow, emb))
    feeds = {"frame": frame.numpy(), "flow": flow.numpy()}
    if model.uses_audio:
        got_emb = load_session(paths[1])[0].run(None, {"wave": wave.numpy()})[0]
        assert np.abs(got_emb - emb.numpy()).max() <= TOL
        feeds["audio_embedding"] = emb.numpy()
    got, got_score = load_session(paths[0])[0].run(["heatmap", "score"], feeds)
    assert np.abs(got - ref).max() <= TOL
    assert got_score.shape == (3,) and np.abs(got_score - ref_score).max() <= TOL


@pytest.mark.parametrize("name", models.names())
def test_objective_exists_iff_trainable(name):
    cls = models.model_class(name)
    model = _direct(name).train()
    assert trainable(name) == (cls.objective is not None)
    if cls.objective is None:
        assert cls.not_trained_because
        with pytest.raises(ValueError, match="is not trained: " + cls.not_trained_because[:20]):
            objective_for(model)
        return
    assert model.has_weights
    objective = objective_for(model)
    assert isinstance(objective, Objective) and objective.key == cls.objective
    loss, _ = objective(model, *make_inputs(model, batch=2))
    assert loss.ndim == 0 and torch.isfinite(loss)


# Layout names of the publishers' checkpoint formats ("rcgrad", "htf") coincide with model
# names; flowgrad.published compares layouts, not models.
_NAME_AWARE = {ROOT / "flowgrad" / "published.py"}


def _name_tests(tree: ast.AST, names: set[str]):
    """(line, text) of each comparison with a model-name literal, dict keyed by model names,
    and ``.startswith("<name>...")``."""
    def literal_names(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value} & names
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return set().union(*(literal_names(e) for e in node.elts)) if node.elts else set()
        return set()

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(literal_names(n) for n in [node.left, *node.comparators]):
            yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.Dict) and any(k is not None and literal_names(k) for k in node.keys):
            yield node.lineno, "a dict keyed by model names"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "startswith" and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and any(node.args[0].value.startswith(n) for n in names)):
            yield node.lineno, ast.unparse(node)


def test_nothing_outside_the_registry_tests_a_model_name():
    names = set(models.names())
    found = []
    for package in ("flowgrad", "export", "training", "realtime", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.is_relative_to(ROOT / "flowgrad" / "models") or path in _NAME_AWARE:
                continue
            found += [f"{path.relative_to(ROOT)}:{line}: {text}"
                      for line, text in _name_tests(ast.parse(path.read_text()), names)]
    assert not found, "decided by a model's name; ask the model or its registry entry:\n" + "\n".join(found)
