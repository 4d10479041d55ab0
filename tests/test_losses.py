"""training.losses against hand-worked values (plain Python math, not torch)."""
import math

import pytest
import torch

from training.losses import (
    INITIAL_LOGIT_SCALE,
    LogitScale,
    LVSConfig,
    box_map_loss,
    clip_loss,
    lvs_loss,
    pairwise_similarity,
    sounding_margin_loss,
)


def _ce(logits, target):
    """Cross-entropy of one row of logits, by hand."""
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def _wmean(weights, values):
    return sum(w * v for w, v in zip(weights, values)) / sum(weights)


# ---- clip_loss -------------------------------------------------------------


def test_clip_loss_hand_computed():
    # unit rows a = e1, e2; b = e1, (0.6, 0.8): cosines [[1, 0.6], [0, 0.8]];
    # logit scale log 2 -> logits [[2, 1.2], [0, 1.6]].
    a = torch.tensor([[3.0, 0.0], [0.0, 0.5]])  # not unit length: the loss normalises
    b = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    rows = [[2.0, 1.2], [0.0, 1.6]]
    cols = [[2.0, 0.0], [1.2, 1.6]]
    expected = ((_ce(rows[0], 0) + _ce(rows[1], 1)) / 2 + (_ce(cols[0], 0) + _ce(cols[1], 1)) / 2) / 2
    got = clip_loss(a, b, torch.tensor(math.log(2.0)))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_clip_loss_is_symmetric_and_caps_the_scale():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    s = torch.tensor(2.5)
    assert clip_loss(a, b, s).item() == pytest.approx(clip_loss(b, a, s).item(), rel=1e-6)
    capped = clip_loss(a, b, torch.tensor(math.log(100.0))).item()
    assert clip_loss(a, b, torch.tensor(math.log(1000.0))).item() == pytest.approx(capped, rel=1e-6)
    assert clip_loss(a, b, torch.tensor(math.log(10.0))).item() != pytest.approx(capped, rel=1e-3)


def test_clip_loss_perfect_alignment_is_near_zero_and_chance_is_log_b():
    eye = torch.eye(4)
    # logits 100 on the diagonal, 0 elsewhere: loss = log(1 + 3 e^-100) ~ 0
    assert clip_loss(eye, eye, torch.tensor(math.log(100.0))).item() < 1e-6
    # identical rows everywhere: every logit equal, loss = log(B)
    same = torch.ones(4, 3)
    assert clip_loss(same, same, torch.tensor(1.0)).item() == pytest.approx(math.log(4), rel=1e-6)


def test_clip_loss_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(clip_loss, (a, b, s))


def test_logit_scale_starts_at_clip_value_and_learns():
    scale = LogitScale()
    assert scale().item() == pytest.approx(math.log(1 / 0.07), rel=1e-6) == INITIAL_LOGIT_SCALE
    loss = clip_loss(torch.eye(3), torch.eye(3), scale())
    loss.backward()
    # aligned pairs: a sharper softmax lowers the loss, so d loss / d scale < 0
    assert scale.value.grad.item() < 0


def test_clip_loss_bad_shapes_raise():
    with pytest.raises(ValueError, match="clip_loss"):
        clip_loss(torch.ones(2, 3), torch.ones(2, 4), torch.tensor(1.0))
    with pytest.raises(ValueError, match="0-d"):
        clip_loss(torch.ones(2, 3), torch.ones(2, 3), torch.ones(1))


# ---- lvs_loss --------------------------------------------------------------

# B = 2 clips, maps of h x w = 1 x 2 locations. S[k][j] = image k against audio j.
S = [
    [[0.9, 0.1], [0.5, 0.3]],
    [[0.7, -0.2], [0.8, 0.2]],
]


def _lvs_by_hand(s, eps=0.65, eps_neg=0.40, tau=0.03, t=0.07, reference_diagonal=False):
    losses = []
    for k in range(len(s)):
        own = s[k][k]
        pos = _wmean([_sig((v - eps) / tau) for v in own], own)
        hard = _wmean([1 - _sig((v - eps_neg) / tau) for v in own], own)
        easy = [_wmean([_sig((v - eps) / tau) for v in s[k][j]], s[k][j]) for j in range(len(s))]
        if reference_diagonal:
            logits = [pos] + [e * (-99.0 if j == k else 1.0) for j, e in enumerate(easy)] + [hard]
        else:
            logits = [pos] + [e for j, e in enumerate(easy) if j != k] + [hard]
        losses.append(_ce([v / t for v in logits], 0))
    return sum(losses) / len(losses)


def test_lvs_loss_hand_computed():
    sim = torch.tensor(S, dtype=torch.float64)[:, :, None, :]  # (2, 2, 1, 2)
    assert lvs_loss(sim).item() == pytest.approx(_lvs_by_hand(S), rel=1e-9)
    ref = lvs_loss(sim, LVSConfig(reference_diagonal=True)).item()
    assert ref == pytest.approx(_lvs_by_hand(S, reference_diagonal=True), rel=1e-9)
    other = LVSConfig(epsilon=0.5, epsilon_neg=0.2, tau=0.1, temperature=0.5)
    assert lvs_loss(sim, other).item() == pytest.approx(
        _lvs_by_hand(S, eps=0.5, eps_neg=0.2, tau=0.1, t=0.5), rel=1e-9
    )


def test_lvs_loss_is_invariant_to_batch_order():
    g = torch.Generator().manual_seed(2)
    sim = torch.rand(4, 4, 3, 3, generator=g) * 2 - 1
    perm = torch.tensor([2, 0, 3, 1])
    permuted = sim[perm][:, perm]
    assert lvs_loss(permuted).item() == pytest.approx(lvs_loss(sim).item(), rel=1e-5)


def test_lvs_loss_perfect_localisation_is_near_zero():
    # each image: a region that matches its own audio (S = 1) on a background S = -1;
    # every other clip's audio is dissimilar everywhere (S = -1).
    sim = -torch.ones(3, 3, 2, 2)
    for k in range(3):
        sim[k, k, 0, 0] = 1.0
    assert lvs_loss(sim).item() < 1e-6
    confused = torch.ones(3, 3, 2, 2)  # every audio matches everywhere: nothing to tell apart
    assert lvs_loss(confused).item() > math.log(3)


def test_lvs_loss_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(3)
    sim = (torch.rand(3, 3, 2, 2, generator=g, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    assert torch.autograd.gradcheck(lvs_loss, (sim,))
    assert torch.autograd.gradcheck(lambda s: lvs_loss(s, LVSConfig(reference_diagonal=True)), (sim,))


def test_lvs_loss_bad_input_raises():
    with pytest.raises(ValueError, match=r"\(B, B, h, w\)"):
        lvs_loss(torch.zeros(2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        lvs_loss(torch.full((2, 2, 2, 2), 3.0))
    with pytest.raises(ValueError, match="epsilon_neg"):
        LVSConfig(epsilon=0.3, epsilon_neg=0.4)


def test_pairwise_similarity_hand_computed():
    # image 0: locations (1, 0) and (0, 2); image 1: (1, 1) and (-1, 0)
    visual = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]], [[[1.0, -1.0]], [[1.0, 0.0]]]])  # (2, 2, 1, 2)
    audio = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]], [[[r, -1.0]], [[r, 0.0]]]])
    torch.testing.assert_close(pairwise_similarity(visual, audio), expected)


# ---- negatives -------------------------------------------------------------


def test_clip_loss_with_negative_audio_hand_computed():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    extra = torch.tensor([[4.0, 0.0]])  # negative audio looking like audio 0
    # scale 1: logits (3, 2) = [[1, 0], [0, 1], [1, 0]]; audio rows 0, 1 pick their image among 2,
    # image columns pick their audio among 3 (the negative is a wrong answer for both)
    audio_to_image = (_ce([1, 0], 0) + _ce([0, 1], 1)) / 2
    image_to_audio = (_ce([1, 0, 1], 0) + _ce([0, 1, 0], 1)) / 2
    expected = (audio_to_image + image_to_audio) / 2
    assert clip_loss(a, b, torch.tensor(0.0), extra_a=extra).item() == pytest.approx(expected, rel=1e-6)
    assert clip_loss(a, b, torch.tensor(0.0)).item() < expected  # the negative made image 0's choice harder


def test_clip_loss_without_negatives_is_unchanged_bit_for_bit():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    s = torch.tensor(2.1)
    scale = torch.clamp(s, max=math.log(100.0)).exp()  # the formula as it stood before negatives
    logits = scale * torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T
    target = torch.arange(5)
    before = (torch.nn.functional.cross_entropy(logits, target)
              + torch.nn.functional.cross_entropy(logits.T, target)) / 2
    assert torch.equal(clip_loss(a, b, s), before)
    assert torch.equal(clip_loss(a, b, s, extra_a=torch.zeros(0, 8)), before)


def test_clip_loss_with_negatives_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(5)
    a, b, extra = (torch.randn(n, 4, generator=g, dtype=torch.float64, requires_grad=True) for n in (3, 3, 2))
    s = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *x: clip_loss(x[0], x[1], x[2], extra_a=x[3]), (a, b, s, extra))


def test_sounding_margin_hand_computed_and_gradients():
    pos, neg = torch.tensor([0.5, 0.1]), torch.tensor([0.3])
    softplus = lambda x: math.log(1 + math.exp(x))  # noqa: E731
    expected = (softplus((0.3 - 0.5) / 0.1) + softplus((0.3 - 0.1) / 0.1)) / 2
    assert sounding_margin_loss(pos, neg, 0.1).item() == pytest.approx(expected, rel=1e-6)
    assert sounding_margin_loss(pos, torch.zeros(0), 0.1).item() == 0.0
    # a negative ranked far below every positive costs almost nothing
    assert sounding_margin_loss(pos, torch.tensor([-0.9]), 0.1).item() < 1e-4
    g = torch.Generator().manual_seed(6)
    p, n = (torch.randn(k, generator=g, dtype=torch.float64, requires_grad=True) for k in (3, 2))
    assert torch.autograd.gradcheck(lambda x, y: sounding_margin_loss(x, y, 0.2), (p, n))
    with pytest.raises(ValueError, match=r"\(B,\) and \(N,\)"):
        sounding_margin_loss(torch.zeros(2, 1), neg, 0.1)


def _lvs_with_negatives_by_hand(s, cross, neg_maps, eps=0.65, eps_neg=0.40, tau=0.03, t=0.07):
    """LVS of S (k, j, locations) with the negatives' columns, plain Python."""
    losses = []
    background = [sum(m) / len(m) for m in neg_maps]  # the whole negative map is background
    for k in range(len(s)):
        own = s[k][k]
        pos = _wmean([_sig((v - eps) / tau) for v in own], own)
        hard = _wmean([1 - _sig((v - eps_neg) / tau) for v in own], own)
        easy = [_wmean([_sig((v - eps) / tau) for v in s[k][j]], s[k][j]) for j in range(len(s)) if j != k]
        extra = [_wmean([_sig((v - eps) / tau) for v in c], c) for c in cross[k]]
        losses.append(_ce([v / t for v in [pos] + easy + [hard] + extra + background], 0))
    return sum(losses) / len(losses)


def test_lvs_loss_with_negatives_hand_computed():
    cross = [[[0.7, 0.2], [0.1, -0.3]], [[0.66, 0.64], [0.9, 0.0]]]  # image k vs negative audio m
    neg_maps = [[0.5, 0.3], [-0.2, 0.8]]
    sim = torch.tensor(S, dtype=torch.float64)[:, :, None, :]
    c = torch.tensor(cross, dtype=torch.float64)[:, :, None, :]
    g = torch.tensor(neg_maps, dtype=torch.float64)[:, None, :]
    assert lvs_loss(sim, cross=c, negative_maps=g).item() == pytest.approx(
        _lvs_with_negatives_by_hand(S, cross, neg_maps), rel=1e-9)
    assert torch.equal(lvs_loss(sim), lvs_loss(sim, LVSConfig()))  # no negatives: the plain loss
    assert lvs_loss(sim, cross=c, negative_maps=g).item() > lvs_loss(sim).item()
    with pytest.raises(ValueError, match="both"):
        lvs_loss(sim, cross=c)
    with pytest.raises(ValueError, match=r"\(B, N, h, w\)"):
        lvs_loss(sim, cross=c[:1], negative_maps=g)


def test_lvs_loss_with_negatives_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(7)
    sim, cross = ((torch.rand(*shape, generator=g, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
                  for shape in ((3, 3, 2, 2), (3, 2, 2, 2)))
    maps = (torch.rand(2, 2, 2, generator=g, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y, z: lvs_loss(x, cross=y, negative_maps=z), (sim, cross, maps))


def test_pairwise_similarity_against_other_audio():
    visual = torch.randn(3, 4, 2, 2)
    audio = torch.randn(2, 4)
    sim = pairwise_similarity(visual, audio)
    assert sim.shape == (3, 2, 2, 2)
    torch.testing.assert_close(sim[2, 1], pairwise_similarity(visual[2:], audio[1:])[0, 0])


def test_box_map_loss_hand_computed_skips_rows_without_boxes_and_prefers_the_box():
    gt = torch.zeros(3, 2, 2)
    gt[0, 0, 0] = 1.0
    gt[2, 1, 1] = 1.0
    maps = torch.tensor([[[0.9, 0.2], [0.1, 0.0]], [[1.0, 1.0], [1.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]]])
    p = torch.tensor([0.9, 0.2, 0.1, 1e-6])
    bce0 = -(math.log(0.9) + math.log(0.8) + math.log(0.9) + math.log(1 - 1e-6)) / 4
    dice0 = 2 * 0.9 / (p.sum().item() + 1)
    bce2 = -math.log(0.5)
    dice2 = 2 * 0.5 / (2.0 + 1)
    expected = ((bce0 + 1 - dice0) + (bce2 + 1 - dice2)) / 2  # row 1 has no boxes: left out
    assert math.isclose(box_map_loss(maps, gt).item(), expected, rel_tol=1e-5)
    on_box, off_box = gt[:1].clone(), gt[:1].flip(-1)
    assert box_map_loss(on_box, gt[:1]) < 1e-4 < box_map_loss(off_box, gt[:1])


def test_box_map_loss_without_boxes_is_zero_with_a_graph_and_bad_shapes_raise():
    maps = torch.rand(2, 4, 4, requires_grad=True)
    loss = box_map_loss(maps, torch.zeros(2, 4, 4))
    loss.backward()
    assert loss.item() == 0 and maps.grad is not None and maps.grad.abs().sum() == 0
    with pytest.raises(ValueError, match="box_map_loss"):
        box_map_loss(torch.rand(2, 4, 4), torch.zeros(2, 4, 5))


def test_box_map_loss_gradients_match_finite_differences():
    gt = torch.zeros(2, 3, 3, dtype=torch.float64)
    gt[:, 1, 1] = 1.0
    maps = (0.1 + 0.8 * torch.rand(2, 3, 3, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda m: box_map_loss(m, gt).double(), (maps,))
