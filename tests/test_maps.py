"""Post-processing and reference-mode behaviour, checked against the published formulas."""
import numpy as np
import torch

from helpers import make_inputs
from flowgrad import models
from flowgrad.inputs import flow_magnitude
from flowgrad.maps import clean_below_median, gradcam, minmax, normalise_cam


def numpy_clean_pred(pred):
    """The reference's clean_pred, written out in numpy."""
    pred = (pred - pred.min()) / (pred.max() - pred.min())
    threshold = np.sort(pred.flatten())[int(pred.shape[0] * pred.shape[1] / 2)]
    pred = pred.copy()
    pred[pred < threshold] = 0
    return pred


def test_clean_below_median_matches_reference_formula():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 224, 224)).astype(np.float32)
    ours = clean_below_median(torch.from_numpy(maps)).numpy()
    for i in range(3):
        np.testing.assert_allclose(ours[i], numpy_clean_pred(maps[i]), atol=1e-6)
        assert (ours[i] == 0).mean() == 0.5


def test_gradcam_formula_on_hand_worked_example():
    # two channels, 1x2 map: a = (2, -1); A = [[1, 3]], [[2, 1]] -> 2*1-2=0, 2*3-1=5
    feats = torch.tensor([[[[1.0, 3.0]], [[2.0, 1.0]]]])
    cam = gradcam(feats, torch.tensor([[2.0, -1.0]]))
    torch.testing.assert_close(cam, torch.tensor([[[0.0, 5.0 / 2]]]))


def test_minmax_and_constant_map():
    m = minmax(torch.tensor([[[2.0, 4.0], [6.0, 10.0]]]))
    torch.testing.assert_close(m, torch.tensor([[[0.0, 0.25], [0.5, 1.0]]]), atol=1e-6, rtol=0)
    assert torch.equal(minmax(torch.full((1, 3, 3), 7.0)), torch.zeros(1, 3, 3))


@torch.no_grad()
def test_reference_mode_cleans_and_uses_input_batchnorm_stats():
    torch.manual_seed(0)
    live = models.create("rcgrad", width=0.25)
    ref = models.create("rcgrad", width=0.25, reference=True)
    ref.load_state_dict(live.state_dict())
    frame, flow, wave = make_inputs(live, batch=1)
    buffers = {k: v.clone() for k, v in ref.state_dict().items()}
    e_live, e_ref = live.embed_audio(wave), ref.embed_audio(wave)
    assert not torch.allclose(e_live, e_ref), "reference mode must use the clip's own BN statistics"
    for k, v in ref.state_dict().items():
        assert torch.equal(v, buffers[k]), f"reference mode changed {k}"
    out_ref = ref(frame, flow, e_live)[0]
    out_live = live(frame, flow, e_live)[0]
    torch.testing.assert_close(out_ref, clean_below_median(out_live))
    assert (out_ref == 0).float().mean() >= 0.5


@torch.no_grad()
def test_flowgrad_h_is_rcgrad_map_gated_by_motion():
    torch.manual_seed(0)
    rc = models.create("rcgrad", width=0.25)
    for reference in (False, True):
        h = models.create("flowgrad_h", width=0.25, reference=reference, motion_px=2.0 if not reference else 1.0)
        h.load_state_dict(rc.state_dict())
        frame, flow, wave = make_inputs(h, batch=2)
        emb = h.embed_audio(wave)
        semantic = normalise_cam(rc.cams(frame, flow, emb)["image"], (224, 224))
        if reference:
            semantic = clean_below_median(semantic)
        expected = torch.clamp(semantic * flow_magnitude(flow) / h.config.motion_px, 0, 1)
        torch.testing.assert_close(h(frame, flow, emb)[0], expected)
        assert h(frame, torch.zeros_like(flow), emb)[0].max() == 0, "no motion, no sound source"


@torch.no_grad()
def test_flow_only_is_normalised_magnitude():
    m = models.create("flow_only")
    flow = torch.zeros(1, 2, 224, 224)
    flow[0, 0, 100:120, 50:90] = 3.0
    flow[0, 1, 100:120, 50:90] = 4.0  # magnitude 5
    flow[0, 0, 0:10, 0:10] = -2.5  # magnitude 2.5
    out, score = m(torch.rand(1, 3, 224, 224), flow, m.embed_audio(torch.zeros(1, 16000)))
    assert score.tolist() == [1.0]  # no ears
    assert out[0, 110, 60] == 1 and out[0, 200, 200] == 0
    torch.testing.assert_close(out[0, 5, 5], torch.tensor(0.5), atol=1e-6, rtol=0)
