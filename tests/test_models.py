"""Contract tests generated from the registry: every model gets the same checks."""
import pytest
import torch

from helpers import make_inputs
from flowgrad import models


def test_registry_holds_the_papers_models():
    assert {"rcgrad", "flowgrad_h", "flowgrad_ic", "flowgrad_en", "htf", "flow_only"} <= set(models.names())


def test_unknown_name_and_field_are_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'nope'.*rcgrad"):
        models.create("nope")
    with pytest.raises(ValueError, match="unknown config field.*colour"):
        models.create("rcgrad", colour=1)


@torch.no_grad()
def test_shapes_dtype_and_range(model):
    frame, flow, wave = make_inputs(model, batch=2)
    emb = model.embed_audio(wave)
    assert emb.shape == (2, model.embed_dim) and emb.dtype == torch.float32
    out, score = model(frame, flow, emb)
    assert out.shape == (2, *model.map_size) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1
    assert out.max() > 0.5, "a map of random inputs should use its range"
    assert score.shape == (2,) and score.dtype == torch.float32
    assert torch.isfinite(score).all() and score.min() >= 0 and score.max() <= 1
    evidence = model.sounding_evidence(frame, flow, emb)
    assert evidence.shape == (2,) and torch.isfinite(evidence).all()
    if model.uses_audio:  # the score is the sigmoid of the calibrated evidence
        torch.testing.assert_close(score, torch.sigmoid(model.score_scale * evidence + model.score_bias))
    else:
        assert torch.equal(score, torch.ones(2)), "flow_only has no ears: its score is a constant 1"


@torch.no_grad()
def test_batch_independence(model):
    frame, flow, wave = make_inputs(model, batch=3)
    emb = model.embed_audio(wave)
    together, scores = model(frame, flow, emb)
    for i in range(3):
        alone_emb = model.embed_audio(wave[i : i + 1])
        torch.testing.assert_close(alone_emb, emb[i : i + 1], atol=1e-5, rtol=1e-4)
        alone, score = model(frame[i : i + 1], flow[i : i + 1], alone_emb)
        torch.testing.assert_close(alone, together[i : i + 1], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(score, scores[i : i + 1], atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_determinism(model):
    frame, flow, wave = make_inputs(model, batch=2)
    a = model.localise(frame, flow, wave)
    b = model.localise(frame, flow, wave)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@torch.no_grad()
def test_map_follows_the_inputs(model):
    """Different frames/flows give different maps: the model is not a constant."""
    frame, flow, wave = make_inputs(model, batch=1, seed=1)
    frame2, flow2, _ = make_inputs(model, batch=1, seed=2)
    emb = model.embed_audio(wave)
    assert not torch.allclose(model(frame, flow, emb)[0], model(frame2, flow2, emb)[0], atol=1e-3)


def test_bad_shapes_raise(model):
    frame, flow, wave = make_inputs(model, batch=1)
    emb = model.embed_audio(wave)
    with pytest.raises(ValueError, match="frame"):
        model(frame[:, :, :100], flow, emb)
    with pytest.raises(ValueError, match="flow"):
        model(frame, flow[:, :1], emb)
    with pytest.raises(ValueError, match="wave"):
        model.embed_audio(wave[0])


@pytest.mark.parametrize("name", [n for n in models.names() if n != "flow_only"])
def test_full_width_embedding_size(name):
    m = models.create(name)
    assert m.embed_dim == 512


@torch.no_grad()
def test_calibration_sets_the_score_and_travels_in_the_state_dict(model):
    frame, flow, wave = make_inputs(model, batch=2)
    emb = model.embed_audio(wave)
    if not model.uses_audio:
        with pytest.raises(ValueError, match="no audio"):
            model.set_score_calibration(2.0, -1.0)
        assert model.score_is_calibrated and "score_scale" not in model.state_dict()
        return
    assert not model.score_is_calibrated
    evidence = model.sounding_evidence(frame, flow, emb)
    model.set_score_calibration(8.0, -3.0)
    assert model.score_is_calibrated
    torch.testing.assert_close(model(frame, flow, emb)[1], torch.sigmoid(8.0 * evidence - 3.0))
    state = model.state_dict()
    assert float(state["score_scale"]) == 8.0 and float(state["score_bias"]) == -3.0
    assert bool(state["score_calibrated"])
    with pytest.raises(ValueError, match="finite"):
        model.set_score_calibration(float("nan"), 0.0)
