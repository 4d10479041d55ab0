"""Training losses: CLIP-style contrastive (RCGrad, FlowGrad) and LVS (Hear The Flow).

References: RCGrad / FlowGrad train with CLIP's symmetric InfoNCE on L2-normalised
embeddings and a learnable logit scale (REFERENCE section 5; Radford et al. 2021).
Hear The Flow trains with the loss of Chen et al. 2021, "Localizing Visual Sounds
the Hard Way" (LVS), on its flow-attended similarity maps (REFERENCE section 2).

Negative audio (silence, ambience-only or off-screen-only windows, another clip's
audio: training.data.negatives) enters both losses as audio that matches no image
(``negatives=`` / ``extra_a=``), and :func:`sounding_margin_loss` ranks every
negative pair's audio-visual evidence below every positive pair's. The idea of
training with such audio is SSL-SaN's (Juanola et al., "Learning from Silence and
Noise for Visual Sound Source Localization", 2025); ranking negatives below positives
is what SLAVC's AP and max-F1 measure (Mo & Morgado, NeurIPS 2022). Without
negatives every loss is computed exactly as before.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

# CLIP caps the logit scale at log(100) so the logits never exceed 100 x cosine.
MAX_LOGIT_SCALE = math.log(100.0)
INITIAL_LOGIT_SCALE = math.log(1.0 / 0.07)


class LogitScale(nn.Module):
    """Learnable log inverse temperature, initialised at log(1 / 0.07) as CLIP and RCGrad.

    ``forward()`` returns the raw parameter (a 0-d float32 tensor); :func:`clip_loss`
    applies the log(100) cap.
    """

    def __init__(self, initial: float = INITIAL_LOGIT_SCALE):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(initial)))

    def forward(self) -> torch.Tensor:
        """The log inverse temperature, a 0-d tensor (uncapped)."""
        return self.value


def clip_loss(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor,
              extra_a: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Symmetric InfoNCE between paired embeddings (CLIP's loss).

    a, b: (B, D) float embeddings; row i of ``a`` and row i of ``b`` are a pair.
    logit_scale: 0-d tensor, log of the inverse temperature. As CLIP does, it is
    capped at log(100) (here by a clamp in the forward pass, so its gradient is
    zero while above the cap, instead of CLIP's in-place clamp after each step).

    logits = exp(min(logit_scale, log 100)) * a_n @ b_n^T with a_n, b_n the rows
    L2-normalised; loss = (CE(logits, arange(B)) + CE(logits^T, arange(B))) / 2,
    each cross-entropy averaged over the batch. Returns a 0-d tensor (nats).

    extra_a: optional (N, D) negative rows of ``a`` (negative audio) that pair with
    no row of ``b``: with A = [a; extra_a] (B + N rows), logits = s * A_n @ b_n^T and
    loss = (CE(logits[:B], arange(B)) + CE(logits^T, arange(B))) / 2, so every b
    learns to prefer its own a over the negatives too, while the negatives, having no
    partner, add no term of their own. None or N = 0 is the plain loss, bit for bit.
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"clip_loss: a and b must both be (B, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    if logit_scale.ndim != 0:
        raise ValueError(f"clip_loss: logit_scale must be a 0-d tensor, got shape {tuple(logit_scale.shape)}")
    if extra_a is not None and (extra_a.ndim != 2 or extra_a.shape[1] != a.shape[1]):
        raise ValueError(f"clip_loss: extra_a must be (N, {a.shape[1]}), got {tuple(extra_a.shape)}")
    scale = torch.clamp(logit_scale, max=MAX_LOGIT_SCALE).exp()
    target = torch.arange(a.shape[0], device=a.device)
    if extra_a is None or extra_a.shape[0] == 0:
        logits = scale * F.normalize(a, dim=1) @ F.normalize(b, dim=1).T
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    logits = scale * F.normalize(torch.cat([a, extra_a]), dim=1) @ F.normalize(b, dim=1).T  # (B + N, B)
    return (F.cross_entropy(logits[:a.shape[0]], target) + F.cross_entropy(logits.T, target)) / 2


@dataclass(frozen=True)
class NegativeLossConfig:
    """Constants of the terms negatives add.

    margin_temperature: T of :func:`sounding_margin_loss` (0.07, the contrastive
        losses' initial temperature: a cosine gap of 0.07 is one nat of logit).
    margin_weight: weight of that term in an objective's total (1.0).
    """

    margin_temperature: float = 0.07
    margin_weight: float = 1.0

    def __post_init__(self):
        if not self.margin_temperature > 0 or not self.margin_weight >= 0:
            raise ValueError(f"NegativeLossConfig: margin_temperature must be > 0 and margin_weight >= 0, got "
                             f"{self.margin_temperature}, {self.margin_weight}")


def sounding_margin_loss(positive: torch.Tensor, negative: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logistic ranking of every negative pair's evidence below every positive pair's.

    positive: (B,) evidence of the positive (frame, own audio) pairs; negative: (N,)
    evidence of the negative pairs (audio-visual cosine similarity, or a similarity
    map's peak; dimensionless). temperature: T > 0, same units as the evidence.

        L = 1 / (N B) * sum_n sum_k log(1 + exp((e_n^- - e_k^+) / T))

    the pairwise logistic (RankNet) surrogate of 1 - AUC over (positive, negative)
    pairs: AP and max-F1 (SLAVC) rank pairs by such evidence, so a negative scored
    above a positive is what costs. Returns a 0-d tensor (nats); N = 0 gives 0.
    """
    if positive.ndim != 1 or negative.ndim != 1:
        raise ValueError(f"sounding_margin_loss: expected (B,) and (N,), got {tuple(positive.shape)} and "
                         f"{tuple(negative.shape)}")
    if negative.numel() == 0:
        return positive.sum() * 0.0
    return F.softplus((negative[:, None] - positive[None, :]) / temperature).mean()


def box_map_loss(maps: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Box supervision of a localiser's final map: pixel BCE plus soft Dice, per map.

    maps: (B, H, W) in [0, 1], the map the model publishes (min-max normalised, so
    only its shape is learnt); gt: (B, H, W) in {0, 1} on the same grid, the union of
    the sounding vehicles' boxes (training.metrics.boxes_to_mask); an all-zero row
    means "no boxes known here" and is left out. Dice rewards overlap the way the
    evaluation's cIoU does, whatever the box's share of the frame; BCE keeps the
    background low where Dice alone gives no gradient. Returns a 0-d tensor: the
    mean over kept rows of mean-BCE (nats) + (1 - Dice); 0 (graph kept) when no row
    has boxes.
    """
    if maps.ndim != 3 or maps.shape != gt.shape:
        raise ValueError(f"box_map_loss: maps and gt must both be (B, H, W), got {tuple(maps.shape)} and "
                         f"{tuple(gt.shape)}")
    kept = gt.flatten(1).amax(dim=1) > 0
    if not bool(kept.any()):
        return maps.sum() * 0.0
    dtype = torch.promote_types(maps.dtype, torch.float32)  # at least float32 under autocast
    p, g = maps[kept].flatten(1).to(dtype).clamp(1e-6, 1 - 1e-6), gt[kept].flatten(1).to(dtype)
    bce = F.binary_cross_entropy(p, g, reduction="none").mean(dim=1)
    dice = 2 * (p * g).sum(dim=1) / (p.sum(dim=1) + g.sum(dim=1))
    return (bce + 1 - dice).mean()


@dataclass(frozen=True)
class LVSConfig:
    """Constants of the LVS loss (Chen et al. 2021; Hear The Flow's released values).

    epsilon: similarity above which a location is positive (0.65).
    epsilon_neg: similarity below which a location is a hard negative (0.40;
        HTF's ``epsilon - epsilon_margin``).
    tau: softness of both thresholds (0.03).
    temperature: divides the logits (0.07).
    reference_diagonal: False (default) leaves a clip's own audio out of its
        easy negatives; True reproduces the released code, which multiplies
        that entry by (1 - 100) instead: excluded while it is positive, but a
        large spurious logit while the positive region's similarity is negative.
    """

    epsilon: float = 0.65
    epsilon_neg: float = 0.40
    tau: float = 0.03
    temperature: float = 0.07
    reference_diagonal: bool = False

    def __post_init__(self):
        if not self.epsilon_neg <= self.epsilon:
            raise ValueError(f"LVSConfig: epsilon_neg ({self.epsilon_neg}) must not exceed epsilon ({self.epsilon})")
        if self.tau <= 0 or self.temperature <= 0:
            raise ValueError(f"LVSConfig: tau and temperature must be > 0, got {self.tau}, {self.temperature}")


def pairwise_similarity(visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every image location with every clip's audio.

    visual: (B, C, h, w) feature maps; audio: (J, C) embeddings (both normalised
    here along C; J = B for a batch's own audio). Returns S (B, J, h, w) in [-1, 1]
    with S[k, j] the map of image k against audio j; for J = B the diagonal S[k, k]
    holds the matched pairs.
    """
    if visual.ndim != 4 or audio.ndim != 2 or visual.shape[1] != audio.shape[1]:
        raise ValueError(
            f"pairwise_similarity: expected visual (B, C, h, w) and audio (J, C), "
            f"got {tuple(visual.shape)} and {tuple(audio.shape)}"
        )
    return torch.einsum("kchw,jc->kjhw", F.normalize(visual, dim=1), F.normalize(audio, dim=1))


def _soft_mean(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Weighted mean over the last two (spatial) axes: (..., h, w) -> (...)."""
    return (weights * values).flatten(-2).sum(-1) / weights.flatten(-2).sum(-1)


def lvs_loss(sim: torch.Tensor, config: LVSConfig = LVSConfig(), cross: Optional[torch.Tensor] = None,
             negative_maps: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The LVS loss as Hear The Flow trains with it.

    sim: S (B, B, h, w) cosine similarities in [-1, 1], S[k, j] = image k (its
    flow-attended features for HTF) against audio j; see :func:`pairwise_similarity`.
    Returns a 0-d tensor (nats), averaged over the batch.

    With sigma the logistic function, eps = 0.65, eps' = 0.40, tau = 0.03, T = 0.07,
    and <w, S> / |w| a weighted mean over the h x w locations:

        Pos_k = sigma((S_kk - eps) / tau)          soft positive region
        Neg_k = sigma((eps' - S_kk) / tau)         soft background (= 1 - sigma((S_kk - eps') / tau))
        P_k   = <Pos_k, S_kk> / |Pos_k|            positive
        H_k   = <Neg_k, S_kk> / |Neg_k|            hard negative: the same image's background
        E_kj  = <sigma((S_kj - eps) / tau), S_kj> / |sigma((S_kj - eps) / tau)|, j != k
                                                   easy negatives: other clips' audio
        L = mean_k -log( exp(P_k/T) / (exp(P_k/T) + sum_{j != k} exp(E_kj/T) + exp(H_k/T)) )

    (Chen et al. 2021, the trimap variant of their loss; Fedorishin et al.,
    Hear The Flow, "Self-supervised training"). Where the papers are silent or disagree we follow the released
    LVS / HTF code: the easy negative E_kj is the mean over the positive region
    of S_kj (HTF's poster writes the plain mean of S_kj); the loss is averaged,
    not summed, over the batch; the poster's "sigma(S - eps) / tau" is read as
    sigma((S - eps) / tau). Neg is computed as sigma((eps' - S) / tau) rather than
    1 - sigma(...): the same value, but it does not round to 0 in float32 where
    S is near 1. The diagonal of the easy negatives: see ``LVSConfig.reference_diagonal``.

    Negatives (both None, or both given): cross (B, N, h, w) is image k against
    negative audio m, negative_maps (N, h, w) a negative pair's own map (its frame with
    its negative audio). Each image's row of the softmax gains
        E'_km = <sigma((C_km - eps) / tau), C_km> / |sigma((C_km - eps) / tau)|
            the negative audio as one more easy negative (audio that matches no image);
        G_n   = mean over all h x w of the negative pair's map
            its whole map as background: the trimap's Neg region is everywhere
    so L = mean_k -log(exp(P_k/T) / (exp(P_k/T) + sum_j exp(E_kj/T) + exp(H_k/T)
                                      + sum_m exp(E'_km/T) + sum_n exp(G_n/T))).
    """
    if sim.ndim != 4 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"lvs_loss: sim must be (B, B, h, w), got {tuple(sim.shape)}")
    for name, t in (("sim", sim), ("cross", cross), ("negative_maps", negative_maps)):
        if t is not None and (not torch.isfinite(t).all() or t.abs().max() > 1.0 + 1e-4):
            raise ValueError(f"lvs_loss: {name} must hold finite cosine similarities in [-1, 1]")
    if (cross is None) != (negative_maps is None):
        raise ValueError("lvs_loss: give both cross and negative_maps, or neither")
    b = sim.shape[0]
    own = torch.diagonal(sim).permute(2, 0, 1)  # (B, h, w): S_kk
    positive = _soft_mean(torch.sigmoid((own - config.epsilon) / config.tau), own)
    hard = _soft_mean(torch.sigmoid((config.epsilon_neg - own) / config.tau), own)
    easy = _soft_mean(torch.sigmoid((sim - config.epsilon) / config.tau), sim)  # (B, B)
    eye = torch.eye(b, dtype=torch.bool, device=sim.device)
    if config.reference_diagonal:
        easy = easy * (1.0 - 100.0 * eye.to(easy.dtype))
    else:
        easy = easy.masked_fill(eye, float("-inf"))
    columns = [positive[:, None], easy, hard[:, None]]
    if cross is not None:
        n = negative_maps.shape[0]
        if cross.shape != (b, n) + sim.shape[2:] or negative_maps.shape[1:] != sim.shape[2:]:
            raise ValueError(f"lvs_loss: cross must be (B, N, h, w) and negative_maps (N, h, w) matching sim "
                             f"{tuple(sim.shape)}, got {tuple(cross.shape)} and {tuple(negative_maps.shape)}")
        columns.append(_soft_mean(torch.sigmoid((cross - config.epsilon) / config.tau), cross))
        columns.append(negative_maps.flatten(1).mean(1)[None, :].expand(b, n))
    logits = torch.cat(columns, dim=1) / config.temperature
    return F.cross_entropy(logits, torch.zeros(b, dtype=torch.long, device=sim.device))
