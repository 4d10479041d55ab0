"""training.objectives, generated over the registry's trainable models."""
import pytest
import torch

from helpers import make_inputs, small_config
from flowgrad import models
from flowgrad.inputs import flow_magnitude
from flowgrad.models import InitError, derive_flowgrad_h, init_flow_filters_from_rgb, init_from_rcgrad
from training.losses import clip_loss, lvs_loss, pairwise_similarity, sounding_margin_loss
from training.objectives import ContrastiveObjective, LVSObjective, objective_for, trainable

# The encoders each model's loss must train, listed by hand from the papers.
ENCODERS = {
    "rcgrad": ("image_encoder", "audio_encoder"),
    "flowgrad_ic": ("image_encoder", "audio_encoder"),
    "flowgrad_en": ("image_encoder", "audio_encoder", "flow_encoder"),
    "htf": ("imgnet", "audnet", "flownet", "flowatt"),
}
TRAINABLE = sorted(ENCODERS)


def _train_model(name):
    torch.manual_seed(0)
    return models.create(name, **small_config(name)).train()


def test_trainable_matches_the_papers():
    assert [n for n in models.names() if trainable(n)] == TRAINABLE
    with pytest.raises(ValueError, match="derive_flowgrad_h"):
        objective_for(_train_model("flowgrad_h"))
    with pytest.raises(ValueError, match="no parameters"):
        objective_for(_train_model("flow_only"))


@pytest.mark.parametrize("name", TRAINABLE)
def test_loss_is_finite_and_trains_every_encoder_and_scale(name):
    model = _train_model(name)
    objective = objective_for(model)
    frame, flow, wave = make_inputs(model, batch=2)
    loss, logs = objective(model, frame, flow, wave)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert logs["loss"] == pytest.approx(loss.item())
    loss.backward()
    for enc in ENCODERS[name]:
        module = getattr(model, enc)
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), enc
        first = next(module.parameters()).grad  # conv1 / query_conv: the start of the encoder
        assert first.abs().sum() > 0, f"{enc} gets no gradient at its input layer"
    for p in objective.parameters():
        assert p.grad is not None and p.grad.abs() > 0


@pytest.mark.parametrize("name", TRAINABLE)
def test_one_sgd_step_reduces_the_loss(name):
    model = _train_model(name)
    objective = objective_for(model)
    frame, flow, wave = make_inputs(model, batch=3, seed=4)
    params = list(model.parameters()) + list(objective.parameters())
    optimiser = torch.optim.SGD(params, lr=1e-2)
    before, _ = objective(model, frame, flow, wave)
    before.backward()
    optimiser.step()
    with torch.no_grad():
        after, _ = objective(model, frame, flow, wave)
    assert after.item() < before.item()


def test_rcgrad_ignores_flow_and_ic_uses_it():
    frame, flow, wave = make_inputs(_train_model("rcgrad"), batch=2)
    other_flow = flow * 3.0 + 1.0
    with torch.no_grad():
        for name, uses_flow in (("rcgrad", False), ("flowgrad_ic", True)):
            model = _train_model(name)
            objective = objective_for(model)
            a, _ = objective(model, frame, flow, wave)
            b, _ = objective(model, frame, other_flow, wave)
            assert (abs(a.item() - b.item()) > 1e-6) == uses_flow, name


def test_en_loss_is_the_sum_of_three_pairs_with_own_scales():
    model = _train_model("flowgrad_en")
    objective = objective_for(model)
    assert len(list(objective.parameters())) == 3
    with torch.no_grad():
        loss, logs = objective(model, *make_inputs(model, batch=2))
    parts = [logs[f"loss_{p}"] for p in ("audio_image", "image_flow", "audio_flow")]
    assert loss.item() == pytest.approx(sum(parts), rel=1e-6)


@torch.no_grad()
def test_htf_similarity_matrix_diagonal_is_the_models_own_map():
    model = _train_model("htf").eval()
    frame, flow, wave = make_inputs(model, batch=3)
    emb = model.embed_audio(wave)
    sim = LVSObjective().similarity_matrix(model, frame, flow, emb)
    assert sim.shape == (3, 3, 7, 7)
    torch.testing.assert_close(torch.diagonal(sim).permute(2, 0, 1), model.similarity(frame, flow, emb))
    # off-diagonal: image 0 with audio 2 is the model's map of that pair
    torch.testing.assert_close(sim[0, 2], model.similarity(frame[:1], flow[:1], emb[2:3])[0])
    assert LVSObjective.frozen == ("imgnet",)


def test_objective_rejects_the_wrong_model():
    with pytest.raises(ValueError, match="FlowGradIC"):
        ContrastiveObjective()(_train_model("flowgrad_ic"), *make_inputs(_train_model("rcgrad"), batch=2))


@torch.no_grad()
def test_derive_flowgrad_h_copies_rcgrad():
    rc = models.create("rcgrad", width=0.25)
    derived = derive_flowgrad_h(rc)
    assert derived.name == "flowgrad_h" and not derived.training
    frame, flow, wave = make_inputs(rc, batch=2)
    emb = rc.embed_audio(wave)
    expected = torch.clamp(rc(frame, flow, emb)[0] * flow_magnitude(flow), 0.0, 1.0)
    torch.testing.assert_close(derived(frame, flow, emb)[0], expected)
    with pytest.raises(ValueError, match="rcgrad"):
        derive_flowgrad_h(models.create("flowgrad_ic", width=0.25))


@torch.no_grad()
def test_init_flow_filters_from_rgb():
    ic = models.create("flowgrad_ic", width=0.25)
    init_flow_filters_from_rgb(ic)
    w = ic.image_encoder.conv1.weight
    torch.testing.assert_close(w[:, 3], (w[:, 0] + w[:, 1] + w[:, 2]) / 3)

    en = models.create("flowgrad_en", width=0.25)
    rgb_before = en.image_encoder.conv1.weight.clone()
    init_flow_filters_from_rgb(en)
    w = en.image_encoder.conv1.weight
    torch.testing.assert_close(en.flow_encoder.conv1.weight[:, 0], (w[:, 0] + w[:, 1] + w[:, 2]) / 3)
    assert torch.equal(w, rgb_before)

    with pytest.raises(ValueError, match="flow filters"):
        init_flow_filters_from_rgb(models.create("rcgrad", width=0.25))


@torch.no_grad()
def test_init_from_rcgrad():
    torch.manual_seed(1)
    rc = models.create("rcgrad", width=0.25)
    ic = models.create("flowgrad_ic", width=0.25)
    init_from_rcgrad(ic, rc)
    w = ic.image_encoder.conv1.weight
    assert torch.equal(w[:, :3], rc.image_encoder.conv1.weight)
    torch.testing.assert_close(w[:, 3], rc.image_encoder.conv1.weight.mean(dim=1))
    assert torch.equal(ic.image_encoder.layer4[1].conv2.weight, rc.image_encoder.layer4[1].conv2.weight)
    assert torch.equal(ic.audio_encoder.layer1[0].bn1.running_var, rc.audio_encoder.layer1[0].bn1.running_var)
    # the audio path is RCGrad's exactly
    _, _, wave = make_inputs(rc, batch=1)
    torch.testing.assert_close(ic.embed_audio(wave), rc.embed_audio(wave))

    en = models.create("flowgrad_en", width=0.25)
    init_from_rcgrad(en, rc)
    assert torch.equal(en.flow_encoder.layer2[0].conv1.weight, rc.image_encoder.layer2[0].conv1.weight)
    assert torch.equal(en.image_encoder.conv1.weight, rc.image_encoder.conv1.weight)
    torch.testing.assert_close(en.flow_encoder.conv1.weight[:, 0], rc.image_encoder.conv1.weight.mean(dim=1))

    with pytest.raises(InitError, match="same width"):
        init_from_rcgrad(models.create("flowgrad_ic", width=0.5), rc)
    with pytest.raises(ValueError, match="flowgrad_ic or flowgrad_en"):
        init_from_rcgrad(models.create("rcgrad", width=0.25), rc)


# ---- negatives -------------------------------------------------------------

TERMS = {
    "rcgrad": ("loss_contrastive", "loss_margin"),
    "flowgrad_ic": ("loss_contrastive", "loss_margin"),
    "flowgrad_en": ("loss_audio_image", "loss_image_flow", "loss_audio_flow", "loss_margin"),
    "htf": ("loss_lvs", "loss_margin"),
}


def _negatives(model, n=2):
    frame, flow, wave = make_inputs(model, batch=n, seed=9)
    wave[0] = 0.0  # digital silence, as a silent file gives it
    return frame, flow, wave


@pytest.mark.parametrize("name", TRAINABLE)
def test_negatives_add_logged_terms_and_train_every_encoder(name):
    model = _train_model(name)
    objective = objective_for(model)
    loss, logs = objective(model, *make_inputs(model, batch=3), negatives=_negatives(model))
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(sum(logs[t] for t in TERMS[name]), rel=1e-5)
    assert logs["loss_margin"] > 0
    loss.backward()
    for enc in ENCODERS[name]:
        grads = [p.grad for p in getattr(model, enc).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), enc
        assert next(getattr(model, enc).parameters()).grad.abs().sum() > 0, enc


@pytest.mark.parametrize("name", TRAINABLE)
def test_without_negatives_the_loss_is_todays_bit_for_bit(name):
    model = _train_model(name)
    objective = objective_for(model)
    frame, flow, wave = make_inputs(model, batch=3)
    with torch.no_grad():
        loss, _ = objective(model, frame, flow, wave)
        audio = model.embed_audio(wave)
        if name == "htf":
            before = lvs_loss(pairwise_similarity(model.attended_features(frame, flow), audio))
        elif name == "flowgrad_en":
            emb = {"audio": audio, "image": model.image_embedding(frame, flow), "flow": model.flow_embedding(flow)}
            before = sum(clip_loss(emb[p.split("_")[0]], emb[p.split("_")[1]], objective.scales[p]())
                         for p in objective.pairs)
        else:
            before = clip_loss(audio, model.image_embedding(frame, flow), objective.scale())
    assert torch.equal(loss, before)


@torch.no_grad()
def test_rcgrad_with_negatives_is_the_extended_softmax_plus_the_margin():
    model = _train_model("rcgrad")
    objective = objective_for(model)
    frame, flow, wave = make_inputs(model, batch=3)
    nf, nfl, nw = _negatives(model)
    loss, logs = objective(model, frame, flow, wave, negatives=(nf, nfl, nw))
    audio = model.embed_audio(torch.cat([wave, nw]))
    image = model.image_embedding(torch.cat([frame, nf]), torch.cat([flow, nfl]))
    contrastive = clip_loss(audio[:3], image[:3], objective.scale(), extra_a=audio[3:])
    cos = torch.nn.functional.cosine_similarity(audio, image, dim=1)
    margin = sounding_margin_loss(cos[:3], cos[3:], 0.07)
    torch.testing.assert_close(loss, contrastive + margin)
    assert logs["loss_contrastive"] == pytest.approx(contrastive.item(), rel=1e-5)
    assert logs["evidence_negative"] == pytest.approx(cos[3:].mean().item(), rel=1e-5)


def test_negatives_must_be_consistent():
    model = _train_model("rcgrad")
    nf, nfl, nw = _negatives(model)
    with pytest.raises(ValueError, match="same N"):
        objective_for(model)(model, *make_inputs(model, batch=2), negatives=(nf, nfl, nw[:1]))
