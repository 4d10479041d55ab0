"""The training objective of each trainable registry model (REFERENCE section 5).

>>> model = models.create("flowgrad_en", width=0.25).train()
>>> objective = objective_for(model)
>>> loss, logs = objective(model, frame, flow, wave)
>>> loss, logs = objective(model, frame, flow, wave, negatives=(neg_frame, neg_flow, neg_wave))

An objective is an ``nn.Module`` holding the loss's own learnable parameters (the
logit scales), so the optimiser takes ``model.parameters()`` and
``objective.parameters()`` and a checkpoint saves both. It computes embeddings
with the model's own methods (``image_embedding``, ``flow_embedding``,
``attended_features``), the features the model's map reads, so what is trained
is what localises.

Which objective a model is trained with is the model's to say: its class
attribute ``objective`` names one of the keys below (``clip``: RCGrad;
``clip_rgb_flow``: FlowGrad-IC; ``clip_pairwise``: FlowGrad-EN; ``lvs``: Hear The
Flow), or is None for a model that is not trained, with ``not_trained_because``
saying why (FlowGrad-H: RCGrad's weights plus a fixed flow gate; flow_only: no
parameters). Initialisation rules (IC and EN from a trained RCGrad, flow filters
from the RGB filters) are the models' too: ``model.init_from(source)``,
``model.init_flow_filters_from_rgb()``.

The caller owns the train/eval mode. In train mode every BatchNorm uses batch
statistics, so the audio encoder's reference-mode quirk (input statistics in eval
mode) plays no part in training; the spectrogram is standardised per clip, or over
the batch with ``reference=True``, as at inference.

Negatives: ``negatives=(frame, flow, wave)`` holds N negative pairs (a frame with
audio in which nothing visible sounds: training.data.negatives). Every objective
takes them: the negative audio joins the contrastive softmax as audio that matches
no image (``clip_loss(extra_a=)``; for LVS, ``lvs_loss(cross=, negative_maps=)``,
the negative pair's whole map as background), and ``loss_margin``
(:func:`~training.losses.sounding_margin_loss`) ranks each negative pair's evidence
below each positive pair's. The evidence is what a sounding score reads before a
map's normalisation: the audio-image cosine (RCGrad, IC), the mean of the
audio-image and audio-flow cosines (EN, whose map multiplies the two streams'
maps), the similarity map's peak (Hear The Flow). Each term is logged on its own
(``loss_*``). Without negatives (None) every objective computes exactly what it
did before they existed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flowgrad import models

from .losses import (LogitScale, LVSConfig, NegativeLossConfig, clip_loss, lvs_loss, pairwise_similarity,
                     sounding_margin_loss)

Negatives = tuple  # (frame (N, 3, H, W), flow (N, 2, H, W), wave (N, T)), as the positives'


class Objective(nn.Module):
    """Base class: ``forward(model, frame, flow, wave, negatives=None) -> (loss, logs)``.

    frame: (B, 3, 224, 224) float32 RGB in [0, 1]; flow: (B, 2, 224, 224) float32
    (dx, dy) in pixels of the full camera frame; wave: (B, T) float32 at
    ``model.audio_rate`` Hz. negatives: None or (frame, flow, wave) of N >= 1
    negative pairs, shaped as the positives. loss: 0-d tensor (nats); logs: floats
    for display (``loss`` the total, ``loss_*`` each term).
    ``key`` is the value of ``model.objective`` this objective trains. ``frozen``
    names the model's submodules the published recipe keeps fixed (the trainer
    excludes them from the optimiser and keeps them in eval mode).
    """

    key: str = ""
    frozen: tuple[str, ...] = ()
    negative_config: NegativeLossConfig = NegativeLossConfig()

    def margin(self, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        """The weighted ``sounding_margin_loss`` of (B,) positive and (N,) negative evidence."""
        cfg = self.negative_config
        return cfg.margin_weight * sounding_margin_loss(positive, negative, cfg.margin_temperature)

    def check_model(self, model: nn.Module) -> None:
        """Raise ValueError unless ``model`` is trained with this objective (its ``objective`` is ``key``)."""
        if getattr(model, "objective", None) != self.key:
            raise ValueError(
                f"{type(self).__name__} trains models whose objective is {self.key!r}, got "
                f"{type(model).__name__} (objective {getattr(model, 'objective', None)!r})"
            )


def _audio(model, frame, flow, wave) -> torch.Tensor:
    """Audio embedding (B, D), after checking the batch against the model's contract."""
    emb = model.embed_audio(wave)
    model.check_inputs(frame, flow, emb)
    return emb


def _joined(model, frame, flow, wave, negatives) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, frame, flow, audio embedding) of positives and negatives in one batch (positives first),
    after checking both against the model's contract: one pass of each encoder serves both."""
    nf, nfl, nw = negatives
    if len(nf) == 0 or not len(nf) == len(nfl) == len(nw):
        raise ValueError(f"negatives: frame, flow and wave must hold the same N >= 1 items, got "
                         f"{len(nf)}, {len(nfl)}, {len(nw)}")
    b = len(frame)
    frame, flow = torch.cat([frame, nf]), torch.cat([flow, nfl])
    return b, frame, flow, _audio(model, frame, flow, torch.cat([wave, nw]))


def _cosine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of two (B, D) tensors: (B,)."""
    return (F.normalize(x, dim=1) * F.normalize(y, dim=1)).sum(1)


class ContrastiveObjective(Objective):
    """RCGrad's objective: clip_loss(audio embedding, image embedding), one learnable scale.

    FlowGrad-IC's objective (:class:`ICObjective`) is the same loss; its image
    embedding sees RGB + flow channel.
    """

    key = "clip"

    def __init__(self):
        super().__init__()
        self.scale = LogitScale()

    def forward(self, model, frame, flow, wave, negatives: Negatives = None):
        self.check_model(model)
        if negatives is None:
            audio = _audio(model, frame, flow, wave)
            loss = clip_loss(audio, model.image_embedding(frame, flow), self.scale())
            return loss, {"loss": loss.item(), "logit_scale": self.scale().item()}
        b, frames, flows, audio = _joined(model, frame, flow, wave, negatives)
        image = model.image_embedding(frames, flows)
        contrastive = clip_loss(audio[:b], image[:b], self.scale(), extra_a=audio[b:])
        evidence = _cosine(audio, image)
        margin = self.margin(evidence[:b], evidence[b:])
        loss = contrastive + margin
        return loss, {"loss": loss.item(), "loss_contrastive": contrastive.item(), "loss_margin": margin.item(),
                      "logit_scale": self.scale().item(), "evidence_positive": evidence[:b].mean().item(),
                      "evidence_negative": evidence[b:].mean().item()}


class ICObjective(ContrastiveObjective):
    """FlowGrad-IC: the RCGrad objective on the 4-channel image encoder."""

    key = "clip_rgb_flow"


class PairwiseObjective(Objective):
    """FlowGrad-EN: clip(audio, image) + clip(image, flow) + clip(audio, flow).

    Each pair has its own learnable logit scale (the paper gives none; we assume
    three, as three CLIP losses each with their own).
    """

    key = "clip_pairwise"
    pairs = ("audio_image", "image_flow", "audio_flow")

    def __init__(self):
        super().__init__()
        self.scales = nn.ModuleDict({p: LogitScale() for p in self.pairs})

    def forward(self, model, frame, flow, wave, negatives: Negatives = None):
        self.check_model(model)
        if negatives is None:
            emb = {
                "audio": _audio(model, frame, flow, wave),
                "image": model.image_embedding(frame, flow),
                "flow": model.flow_embedding(flow),
            }
            losses = {}
            for pair in self.pairs:
                first, second = pair.split("_")
                losses[pair] = clip_loss(emb[first], emb[second], self.scales[pair]())
            loss = sum(losses.values())
            logs = {"loss": loss.item(), **{f"loss_{p}": v.item() for p, v in losses.items()}}
            return loss, logs
        b, frames, flows, audio = _joined(model, frame, flow, wave, negatives)
        emb = {"audio": audio, "image": model.image_embedding(frames, flows), "flow": model.flow_embedding(flows)}
        losses = {}
        for pair in self.pairs:
            first, second = pair.split("_")
            # negative audio is one more column for the audio pairs; image-flow pairs are all positive
            extra = emb["audio"][b:] if first == "audio" else None
            losses[pair] = clip_loss(emb[first][:b], emb[second][:b], self.scales[pair](), extra_a=extra)
        evidence = (_cosine(audio, emb["image"]) + _cosine(audio, emb["flow"])) / 2
        losses["margin"] = self.margin(evidence[:b], evidence[b:])
        loss = sum(losses.values())
        return loss, {"loss": loss.item(), **{f"loss_{p}": v.item() for p, v in losses.items()},
                      "evidence_positive": evidence[:b].mean().item(), "evidence_negative": evidence[b:].mean().item()}


class LVSObjective(Objective):
    """Hear The Flow: the LVS loss on every (image, audio) pair's flow-attended map.

    The published recipe keeps the ImageNet image encoder frozen (``frozen``).
    """

    key = "lvs"
    frozen = ("imgnet",)

    def __init__(self, config: LVSConfig = LVSConfig()):
        super().__init__()
        self.config = config

    def similarity_matrix(self, model, frame, flow, audio_embedding) -> torch.Tensor:
        """S (B, B, 7, 7): image k's attended features against audio j.

        The diagonal S[k, k] equals ``model.similarity(frame, flow, audio_embedding)``;
        the attention depends on the image and flow only, so one pass serves all pairs.
        """
        return pairwise_similarity(model.attended_features(frame, flow), audio_embedding)

    def forward(self, model, frame, flow, wave, negatives: Negatives = None):
        self.check_model(model)
        if negatives is None:
            sim = self.similarity_matrix(model, frame, flow, _audio(model, frame, flow, wave))
            loss = lvs_loss(sim, self.config)
            matched = torch.diagonal(sim).mean().item()
            return loss, {"loss": loss.item(), "matched_similarity": matched}
        b, frames, flows, audio = _joined(model, frame, flow, wave, negatives)
        visual = model.attended_features(frames, flows)
        sim = pairwise_similarity(visual[:b], audio[:b])
        cross = pairwise_similarity(visual[:b], audio[b:])  # (B, N, h, w): images against negative audio
        own = (F.normalize(visual[b:], dim=1) * F.normalize(audio[b:], dim=1)[:, :, None, None]).sum(1)
        lvs = lvs_loss(sim, self.config, cross=cross, negative_maps=own)
        positive_peak = torch.diagonal(sim).amax(dim=(0, 1))
        negative_peak = own.flatten(1).amax(1)
        margin = self.margin(positive_peak, negative_peak)
        loss = lvs + margin
        return loss, {"loss": loss.item(), "loss_lvs": lvs.item(), "loss_margin": margin.item(),
                      "matched_similarity": torch.diagonal(sim).mean().item(),
                      "evidence_positive": positive_peak.mean().item(), "evidence_negative": negative_peak.mean().item()}


_OBJECTIVES: dict[str, type[Objective]] = {
    cls.key: cls for cls in (ContrastiveObjective, ICObjective, PairwiseObjective, LVSObjective)}


def trainable(name: str) -> bool:
    """Whether registry model ``name`` is trained (its class names an objective)."""
    return models.model_class(name).objective is not None


def objective_for(model: nn.Module) -> Objective:
    """A fresh objective (learnable scales at their initial values) for ``model``, the one it names.

    Raises ValueError for a model that is not trained (saying why).
    """
    if model.objective is None:
        raise ValueError(f"{model.name} is not trained: {model.not_trained_because}")
    objective = _OBJECTIVES[model.objective]()
    objective.check_model(model)
    return objective
