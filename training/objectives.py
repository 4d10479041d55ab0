"""The training objective of each trainable registry model (REFERENCE section 5).

>>> model = models.create("flowgrad_en", width=0.25).train()
>>> objective = objective_for(model)
>>> loss, logs = objective(model, frame, flow, wave)

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
"""
from __future__ import annotations

import torch
from torch import nn

from flowgrad import models

from .losses import LogitScale, LVSConfig, clip_loss, lvs_loss, pairwise_similarity


class Objective(nn.Module):
    """Base class: ``forward(model, frame, flow, wave) -> (loss, logs)``.

    frame: (B, 3, 224, 224) float32 RGB in [0, 1]; flow: (B, 2, 224, 224) float32
    (dx, dy) in pixels of the full camera frame; wave: (B, T) float32 at
    ``model.audio_rate`` Hz. loss: 0-d tensor (nats); logs: floats for display.
    ``key`` is the value of ``model.objective`` this objective trains. ``frozen``
    names the model's submodules the published recipe keeps fixed (the trainer
    excludes them from the optimiser and keeps them in eval mode).
    """

    key: str = ""
    frozen: tuple[str, ...] = ()

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


class ContrastiveObjective(Objective):
    """RCGrad's objective: clip_loss(audio embedding, image embedding), one learnable scale.

    FlowGrad-IC's objective (:class:`ICObjective`) is the same loss; its image
    embedding sees RGB + flow channel.
    """

    key = "clip"

    def __init__(self):
        super().__init__()
        self.scale = LogitScale()

    def forward(self, model, frame, flow, wave):
        self.check_model(model)
        audio = _audio(model, frame, flow, wave)
        loss = clip_loss(audio, model.image_embedding(frame, flow), self.scale())
        return loss, {"loss": loss.item(), "logit_scale": self.scale().item()}


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

    def forward(self, model, frame, flow, wave):
        self.check_model(model)
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

    def forward(self, model, frame, flow, wave):
        self.check_model(model)
        sim = self.similarity_matrix(model, frame, flow, _audio(model, frame, flow, wave))
        loss = lvs_loss(sim, self.config)
        matched = torch.diagonal(sim).mean().item()
        return loss, {"loss": loss.item(), "matched_similarity": matched}


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
