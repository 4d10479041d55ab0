"""Tests for flowgrad.checkpoint (save/load round trips, safe loading, clear errors) and
flowgrad.published (importing published weights)."""
import dataclasses
import os
import warnings

import pytest
import torch

from flowgrad import checkpoint as ckpt
from flowgrad import models
from flowgrad.assets import ROOT
from flowgrad.checkpoint import CheckpointError
from flowgrad.errors import InputError
from flowgrad.published import import_published


def small(name: str, seed: int = 0):
    """A small registry model (width=0.25 where the model has a width)."""
    fields = {f.name for f in dataclasses.fields(models.config_class(name))}
    torch.manual_seed(seed)
    return models.create(name, **({"width": 0.25} if "width" in fields else {}))


def assert_same_state(a: dict, b: dict):
    assert list(a) == list(b)
    for key in a:
        assert a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key


def assert_one_line_error(excinfo, path, *needles):
    text = str(excinfo.value)
    assert "\n" not in text
    assert os.path.basename(os.fspath(path)) in text
    for needle in needles:
        assert needle.lower() in text.lower(), (needle, text)
    return text


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("name", models.names())
def test_round_trip_every_model(tmp_path, name):
    model = small(name).eval()
    path = tmp_path / f"{name}.pt"
    ckpt.save(path, model, epoch=3, note="hello", tags=["a", "b"], extra={"lr": 1e-3, "x": None})
    assert not os.access(path, os.X_OK)

    loaded = ckpt.load(path)
    assert loaded.name == name
    assert not loaded.training
    assert dataclasses.asdict(loaded.config) == dataclasses.asdict(model.config)
    assert_same_state(model.state_dict(), loaded.state_dict())

    wave = torch.randn(1, int(model.audio_rate * model.audio_seconds), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model.embed_audio(wave)
        got = loaded.embed_audio(wave)
    if expected.shape[-1] != 0:
        assert torch.equal(expected, got)

    meta = ckpt.read_meta(path)
    assert meta["format"] == ckpt.FORMAT and meta["version"] == ckpt.VERSION
    assert meta["model"] == name
    assert meta["config"] == dataclasses.asdict(model.config)
    assert meta["meta"] == {"epoch": 3, "note": "hello", "tags": ["a", "b"], "extra": {"lr": 1e-3, "x": None}}


def test_save_rejects_non_plain_meta(tmp_path):
    model = small("rcgrad")
    path = tmp_path / "m.pt"
    for bad in (torch.zeros(1), {1: "int key"}, object(), [1, {"k": {2, 3}}]):
        with pytest.raises(TypeError):
            ckpt.save(path, model, bad=bad)
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_save_is_atomic(tmp_path, monkeypatch):
    model = small("rcgrad")
    path = tmp_path / "good.pt"
    ckpt.save(path, model, epoch=1)
    before = path.read_bytes()

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(path, model, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["good.pt"]
    assert ckpt.read_meta(path)["meta"] == {"epoch": 1}


# ------------------------------------------------------------------ refusals and errors


class _Evil:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"format": ckpt.FORMAT, "version": 1, "payload": _Evil(marker)}, path)
    for reader in (ckpt.load, ckpt.read_meta, import_published):
        with pytest.raises(CheckpointError) as excinfo:
            reader(path)
        assert_one_line_error(excinfo, path, "refused", "executable")
        assert excinfo.value.__cause__ is None
    assert not marker.exists()


def _real_checkpoint(tmp_path):
    path = tmp_path / "real.pt"
    ckpt.save(path, small("rcgrad"))
    return path


def test_corrupt_file(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError) as excinfo:
        ckpt.load(path)
    assert_one_line_error(excinfo, path, "corrupt")


def test_truncated_file(tmp_path):
    data = _real_checkpoint(tmp_path).read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as excinfo:
        ckpt.load(path)
    assert_one_line_error(excinfo, path, "truncated")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError) as excinfo:
        ckpt.load(path)
    assert_one_line_error(excinfo, path)


def test_png_header(tmp_path):
    path = tmp_path / "picture.pt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    with pytest.raises(CheckpointError) as excinfo:
        ckpt.load(path)
    assert_one_line_error(excinfo, path)


def test_plain_state_dict_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(small("rcgrad").state_dict(), path)
    for reader in (ckpt.load, ckpt.read_meta):
        with pytest.raises(CheckpointError) as excinfo:
            reader(path)
        assert_one_line_error(excinfo, path, "not a FlowGrad checkpoint", "import_published")


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.pt"
    with pytest.raises(CheckpointError) as excinfo:
        ckpt.load(path)
    assert_one_line_error(excinfo, path, "not found")
    assert isinstance(excinfo.value, InputError)  # the CLIs report it in one line, exit 2


def _payload(model_name, config, state_dict, version=1):
    return {"format": ckpt.FORMAT, "version": version, "model": model_name,
            "config": config, "state_dict": state_dict, "meta": {}}


def test_unknown_model_name(tmp_path):
    model = small("rcgrad")
    path = tmp_path / "unknown.pt"
    torch.save(_payload("no_such_model", dataclasses.asdict(model.config), model.state_dict()), path)
    with pytest.raises(CheckpointError) as excinfo:
        ckpt.load(path)
    text = assert_one_line_error(excinfo, path, "no_such_model")
    for name in models.names():
        assert name in text


def test_newer_version(tmp_path):
    model = small("rcgrad")
    path = tmp_path / "future.pt"
    torch.save(_payload("rcgrad", dataclasses.asdict(model.config), model.state_dict(), version=99), path)
    with pytest.raises(CheckpointError) as excinfo:
        ckpt.load(path)
    assert_one_line_error(excinfo, path, "newer", "upgrade")


def test_wrong_model_state_dict(tmp_path):
    model = small("rcgrad")
    path = tmp_path / "mixed.pt"
    torch.save(_payload("flowgrad_en", dataclasses.asdict(model.config), model.state_dict()), path)
    with pytest.raises(CheckpointError) as excinfo:
        ckpt.load(path)
    assert_one_line_error(excinfo, path, "missing", "flow_encoder.")


def test_shape_mismatch_in_checkpoint(tmp_path):
    model = small("rcgrad")
    sd = model.state_dict()
    sd["audio_encoder.conv1.weight"] = torch.zeros(2, 2)
    path = tmp_path / "shapes.pt"
    torch.save(_payload("rcgrad", dataclasses.asdict(model.config), sd), path)
    with pytest.raises(CheckpointError) as excinfo:
        ckpt.load(path)
    assert_one_line_error(excinfo, path, "audio_encoder.conv1.weight", "(2, 2)")


# ------------------------------------------------------------------ importers


def _import_and_check(path, original: dict, expected_ignored, **kwargs):
    model, report = import_published(path, **kwargs)
    assert not model.training
    assert_same_state(original, model.state_dict())
    assert report.missing == []
    assert report.unexpected == []
    assert sorted(report.ignored) == sorted(expected_ignored)
    assert sorted(report.loaded) == sorted(original)
    assert report.model_name in report.summary()
    return model, report


def test_import_flowgrad_en_lightning(tmp_path):
    original = small("flowgrad_en", seed=1).state_dict()
    published = {}
    for key, value in original.items():
        key = "flow_encoder.conv1_flow.weight" if key == "flow_encoder.conv1.weight" else key
        published["model." + key] = value.clone()
    extras = {
        "image_encoder.fc.weight": torch.randn(10, 8),
        "image_encoder.fc.bias": torch.randn(10),
        "image_encoder.conv1_a.weight": torch.randn(16, 1, 7, 7),
    }
    published.update({"model." + k: v for k, v in extras.items()})
    path = tmp_path / "flowgrad_en.ckpt"
    torch.save({"state_dict": published, "epoch": 3, "global_step": 1000}, path)

    model, report = _import_and_check(path, original, extras, width=0.25)
    assert report.model_name == model.name == "flowgrad_en"


def test_import_flowgrad_ic_lightning(tmp_path):
    original = small("flowgrad_ic", seed=2).state_dict()
    published = dict(original)
    published["image_encoder.conv1_flow.weight"] = published.pop("image_encoder.conv1.weight")
    published["image_encoder.conv1.weight"] = torch.randn(16, 3, 7, 7)  # unused RGB conv
    path = tmp_path / "flowgrad_ic.ckpt"
    torch.save({"state_dict": published, "epoch": 7}, path)

    model, report = _import_and_check(path, original, ["image_encoder.conv1.weight"], width=0.25)
    assert model.name == "flowgrad_ic"


def test_import_rcgrad_plain(tmp_path):
    original = small("rcgrad", seed=3).state_dict()
    published = dict(original)
    published["image_encoder.conv1_flow.weight"] = torch.randn(16, 4, 7, 7)
    published["image_encoder.fc.weight"] = torch.randn(5, 8)
    path = tmp_path / "rc_grad.pt"
    torch.save(published, path)

    model, _ = _import_and_check(path, original, ["image_encoder.conv1_flow.weight", "image_encoder.fc.weight"],
                                 width=0.25)
    assert model.name == "rcgrad"
    # the same weights go into FlowGrad-H on request
    model, report = _import_and_check(path, original, ["image_encoder.conv1_flow.weight", "image_encoder.fc.weight"],
                                      model="flowgrad_h", width=0.25)
    assert model.name == report.model_name == "flowgrad_h"


def test_import_htf_dataparallel(tmp_path):
    original = small("htf", seed=4).state_dict()
    published = {"module." + k: v for k, v in original.items()}
    published["module.imgnet.fc.weight"] = torch.randn(3, 8)
    path = tmp_path / "htf.pth"
    torch.save({"model": published, "epoch": 12}, path)

    model, report = _import_and_check(path, original, ["imgnet.fc.weight"], layout="htf", width=0.25)
    assert model.name == "htf"
    model, report = _import_and_check(path, original, ["imgnet.fc.weight"], width=0.25)  # guessed layout


def test_import_reports_unexpected_and_missing(tmp_path):
    original = small("rcgrad").state_dict()
    published = dict(original)
    del published["audio_encoder.bn1.weight"]
    published["audio_encoder.mystery.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pt"
    torch.save(published, path)
    _, report = import_published(path, width=0.25)
    assert report.missing == ["audio_encoder.bn1.weight"]
    assert report.unexpected == ["audio_encoder.mystery.weight"]
    assert not report.ok
    assert "missing" in report.summary()


def test_import_shape_mismatch_names_key(tmp_path):
    published = dict(small("rcgrad").state_dict())
    published["audio_encoder.layer1.0.conv1.weight"] = torch.randn(3, 3, 3, 3)
    path = tmp_path / "bad_shape.pt"
    torch.save(published, path)
    with pytest.raises(CheckpointError) as excinfo:
        import_published(path, width=0.25)
    assert_one_line_error(excinfo, path, "audio_encoder.layer1.0.conv1.weight", "(3, 3, 3, 3)")


def test_import_width_mismatch_is_a_shape_error(tmp_path):
    path = tmp_path / "rc_grad.pt"
    torch.save(dict(small("rcgrad").state_dict()), path)  # width 0.25 weights into a width 1.0 model
    with pytest.raises(CheckpointError) as excinfo:
        import_published(path)
    assert_one_line_error(excinfo, path, "shape mismatch")


def test_import_refuses_unsafe_lightning_extras(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": dict(small("rcgrad").state_dict()), "hyper_parameters": _Evil(marker)}, path)
    with pytest.raises(CheckpointError) as excinfo:
        import_published(path)
    assert_one_line_error(excinfo, path, "refused", "cannot be loaded safely")
    assert not marker.exists()


def test_import_unrecognised_layout_and_own_format(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError) as excinfo:
        import_published(path)
    assert_one_line_error(excinfo, path, "layout")

    own = _real_checkpoint(tmp_path)
    with pytest.raises(CheckpointError) as excinfo:
        import_published(own)
    assert_one_line_error(excinfo, own, "flowgrad.checkpoint.load")
    with pytest.raises(ValueError):
        import_published(own, layout="nonsense")


def test_load_or_create_resolves_files_and_names(tmp_path):
    model, trained = ckpt.load_or_create("flow_only")
    assert model.name == "flow_only" and not trained
    path = tmp_path / "m.ckpt"
    ckpt.save(path, models.create("rcgrad", width=0.25))
    model, trained = ckpt.load_or_create(str(path))
    assert model.name == "rcgrad" and trained
    with pytest.raises(ckpt.CheckpointError, match="not a registered model.*rcgrad"):
        ckpt.load_or_create("no_such_model")


# ------------------------------------------------------------------ non-finite weights, untrained names


def _poisoned(tmp_path, value, key="audio_encoder.layer2.0.conv1.weight"):
    """A real small rcgrad checkpoint whose tensor ``key`` holds ``value`` in one element."""
    model = small("rcgrad")
    with torch.no_grad():
        model.state_dict()[key].view(-1)[3] = value
    path = tmp_path / "poisoned.ckpt"
    ckpt.save(path, model)
    return path, key


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, value):
    path, key = _poisoned(tmp_path, value)
    with pytest.raises(CheckpointError) as excinfo:
        ckpt.load(path)
    assert_one_line_error(excinfo, path, key, "NaN or infinite", "1 of")
    # published weights are checked the same way (the key as the file names it)
    published = tmp_path / "rc_grad.pt"
    torch.save({"model." + k: v for k, v in torch.load(path, weights_only=True)["state_dict"].items()}, published)
    with pytest.raises(CheckpointError) as excinfo:
        import_published(published, width=0.25)
    assert_one_line_error(excinfo, published, key, "NaN or infinite")


def test_check_finite_ignores_integer_tensors_and_reports_the_first_bad_one(tmp_path):
    ckpt.check_finite("x.pt", {"steps": torch.tensor(7), "w": torch.ones(3)})
    with pytest.raises(CheckpointError, match=r"x\.pt: .*tensor model\.a has 2 of 3 \(and 1 more tensors\)"):
        ckpt.check_finite("x.pt", {"a": torch.tensor([1.0, float("nan"), float("inf")]),
                                   "b": torch.tensor([float("nan")])}, "model.")


def test_read_tensors_refuses_pickled_code_in_the_projects_words(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "state.pt"
    torch.save({"model": {}, "payload": _Evil(marker)}, path)
    with pytest.raises(CheckpointError) as excinfo:
        ckpt.read_tensors(path, what="training state")
    text = assert_one_line_error(excinfo, path, "refused", "executable", "training states must hold only tensors")
    assert "weights_only" not in text
    assert not marker.exists()


def test_a_registry_name_with_weights_needs_allow_untrained(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)  # the repository root: shipped paths show relative
    for name in ("rcgrad", "flowgrad_en", "htf"):
        with pytest.raises(ckpt.UntrainedError) as excinfo:
            ckpt.load_or_create(name)
        text = assert_one_line_error(excinfo, name, "untrained", "--untrained", "allow_untrained=True")
        assert excinfo.value.model == name
        shipped = [str(p.relative_to(ROOT)) for p in ckpt.shipped()]
        assert shipped and all(p.startswith("assets/models/") and p.endswith(".ckpt") for p in shipped)
        if f"assets/models/{name}.ckpt" in shipped:  # the shipped model of that name is named alone
            assert f"the shipped assets/models/{name}.ckpt" in text
        else:
            assert all(p in text for p in shipped)
    model, trained = ckpt.load_or_create("rcgrad", allow_untrained=True)
    assert model.name == "rcgrad" and not trained
    assert ckpt.create_registered("flow_only").name == "flow_only"  # no weights: nothing to train
    assert isinstance(excinfo.value, CheckpointError)  # every entry point already reports these in one line


# ------------------------------------------------------------------ the sounding-score calibration


def _old_format(tmp_path, model):
    """The file the code before the sounding score wrote: the same dict, without the score buffers."""
    path = tmp_path / "old.ckpt"
    ckpt.save(path, model)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if not k.startswith("score_")}
    torch.save(payload, path)
    return path


def test_a_checkpoint_from_before_the_score_loads_uncalibrated_with_one_warning(tmp_path):
    model = small("rcgrad")
    path = _old_format(tmp_path, model)
    with pytest.warns(ckpt.UncalibratedWarning) as record:
        loaded = ckpt.load(path)
    assert len(record) == 1
    text = str(record[0].message)
    assert "\n" not in text and "training.calibrate" in text and record[0].filename == str(path)
    line = warnings.formatwarning(record[0].message, record[0].category, record[0].filename, record[0].lineno)
    assert line.count("\n") == 1 and line.startswith(f"{path}:0: UncalibratedWarning: saved before")
    assert not loaded.score_is_calibrated
    assert float(loaded.score_scale) == 1.0 and float(loaded.score_bias) == 0.0
    frame, flow, wave = torch.rand(1, 3, 224, 224), torch.randn(1, 2, 224, 224), torch.randn(1, 16000) * 0.1
    with torch.no_grad():
        for got, want in zip(loaded.localise(frame, flow, wave), model.localise(frame, flow, wave)):
            assert torch.equal(got, want)


def test_a_calibrated_checkpoint_loads_calibrated_and_silently(tmp_path, recwarn):
    model = small("flowgrad_en")
    model.set_score_calibration(12.5, -9.0)
    ckpt.save(tmp_path / "cal.ckpt", model)
    loaded = ckpt.load(tmp_path / "cal.ckpt")
    assert loaded.score_is_calibrated
    assert (float(loaded.score_scale), float(loaded.score_bias)) == (12.5, -9.0)
    assert not [w for w in recwarn if issubclass(w.category, ckpt.UncalibratedWarning)]


def test_a_checkpoint_with_part_of_the_calibration_is_refused(tmp_path):
    model = small("rcgrad")
    path = tmp_path / "part.ckpt"
    ckpt.save(path, model)
    payload = torch.load(path, weights_only=True)
    del payload["state_dict"]["score_bias"]
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as excinfo:
        ckpt.load(path)
    assert_one_line_error(excinfo, path, "missing", "score_bias")
