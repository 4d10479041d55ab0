"""The closed-form Grad-CAM equals Grad-CAM computed with autograd on the same weights."""
import pytest
import torch

from helpers import make_inputs
from flowgrad import models
from flowgrad.inputs import encode_magnitude
from flowgrad.maps import normalise_cam


def autograd_gradcam(encoder, x, audio_embedding):
    """Textbook Grad-CAM: backpropagate <GAP(A), a> to the last layer4 activation A."""
    feats = encoder.features(x)
    score = (feats.mean(dim=(2, 3)) * audio_embedding).sum()
    (grads,) = torch.autograd.grad(score, feats)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * feats).sum(dim=1)).detach()


CASES = [
    ("rcgrad", "image", lambda m, fr, fl: m.image_input(fr, fl), "image_encoder"),
    ("flowgrad_ic", "image", lambda m, fr, fl: m.image_input(fr, fl), "image_encoder"),
    ("flowgrad_en", "image", lambda m, fr, fl: m.image_input(fr, fl), "image_encoder"),
    ("flowgrad_en", "flow", lambda m, fr, fl: encode_magnitude(fl), "flow_encoder"),
]


@pytest.mark.parametrize("width", [0.25, 1.0])
@pytest.mark.parametrize("name,branch,make_input,encoder", CASES)
def test_closed_form_matches_autograd(name, branch, make_input, encoder, width):
    torch.manual_seed(0)
    model = models.create(name, width=width)
    frame, flow, wave = make_inputs(model, batch=2)
    with torch.no_grad():
        emb = model.embed_audio(wave)
        closed = model.cams(frame, flow, emb)[branch]
    reference = autograd_gradcam(getattr(model, encoder), make_input(model, frame, flow), emb)
    assert closed.shape == (2, 14, 14)
    assert reference.abs().max() > 0, "degenerate test: Grad-CAM is all zero"
    torch.testing.assert_close(closed, reference, rtol=1e-5, atol=1e-5 * float(reference.abs().max()))
    torch.testing.assert_close(
        normalise_cam(closed, (224, 224)), normalise_cam(reference, (224, 224)), rtol=1e-5, atol=1e-5
    )
