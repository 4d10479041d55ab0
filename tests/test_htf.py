"""Hear The Flow: attention and cosine map against a direct, loop-based computation."""
import math

import torch
import torch.nn.functional as F

from helpers import make_inputs
from flowgrad import models
from flowgrad.inputs import IMAGENET_MEAN, IMAGENET_STD, encode_uv_reference, encode_uv_signed, normalise_rgb


def direct_attention(att, image, flow):
    """Per-location sums written out: out[:, c, i] = sum_j V[:, c, j] softmax_j(q_i . k_j / sqrt(d))."""
    q = att.query_conv(image).flatten(2)
    k = att.key_conv(flow).flatten(2)
    v = att.value_conv(image).flatten(2)
    d = q.shape[1]
    out = torch.zeros_like(v)
    for i in range(q.shape[2]):
        logits = torch.stack([(q[:, :, i] * k[:, :, j]).sum(1) for j in range(k.shape[2])], dim=1) / math.sqrt(d)
        weights = torch.softmax(logits, dim=1)
        out[:, :, i] = (v * weights[:, None, :]).sum(2)
    return out.view_as(image)


@torch.no_grad()
def test_similarity_matches_direct_formula():
    torch.manual_seed(0)
    m = models.create("htf", width=0.25)
    frame, flow, wave = make_inputs(m, batch=2)
    emb = m.embed_audio(wave)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    image = m.imgnet(normalise_rgb(frame, IMAGENET_MEAN, IMAGENET_STD))
    motion = m.flownet(encode_uv_reference(flow))
    attended = image + direct_attention(m.flowatt, image, motion)
    expected = F.cosine_similarity(attended, emb[:, :, None, None], dim=1)
    sim = m.similarity(frame, flow, emb)
    assert sim.shape == (2, 7, 7)
    torch.testing.assert_close(sim, expected, atol=1e-5, rtol=1e-4)


def test_flow_encodings():
    flow = torch.tensor([[[[-3.4, 2.6, 300.0]], [[0.4, -0.6, -300.0]]]])
    torch.testing.assert_close(encode_uv_reference(flow), torch.tensor([[[[0, 3, 255.0]], [[0, 0, 0]]]]) / 255)
    torch.testing.assert_close(
        encode_uv_signed(flow), torch.tensor([[[[-3, 3, 255.0]], [[0, -1, -255]]]]) / 255
    )
