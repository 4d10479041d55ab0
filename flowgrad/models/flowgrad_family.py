"""RCGrad and the FlowGrad variants (H, IC, EN): Grad-CAM in closed form.

Submodule names follow the published checkpoints (``image_encoder``,
``audio_encoder``, ``flow_encoder``) so they load by name.

``reference=True`` reproduces the published post-processing exactly: the map is
cleaned (zeroed below its median), FlowGrad-H multiplies by the raw flow
magnitude, the audio encoder's BatchNorms use each input's own statistics (the
reference never calls eval() on it) and the spectrogram is standardised over
the whole batch. The default (live) behaviour differs only there: no median
clean (a hard step that makes maps flicker and breaks backend parity), eval-mode
BatchNorm and per-clip standardisation, so a clip's map never depends on its
batch-mates.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..audio import rcgrad_spectrogram, rcgrad_spectrogram_dft
from ..backbones import resnet18
from ..inputs import CLIP_MEAN, CLIP_STD, encode_magnitude, flow_magnitude, normalise_rgb
from ..maps import clean_below_median, gradcam, minmax, normalise_cam
from .base import InitError, Localiser, PublishedForm, check_wave


@dataclass(frozen=True)
class FlowGradConfig:
    """Options shared by RCGrad and the FlowGrad variants.

    width: ResNet-18 channel multiplier (1.0 = published size).
    reference: reproduce the published post-processing (module docstring).
    audio_rate: Hz of ``embed_audio``'s input (RCGrad trained at 16 kHz).
    audio_seconds: audio window, seconds (5 s as RCGrad training).
    """

    width: float = 1.0
    reference: bool = False
    audio_rate: int = 16000
    audio_seconds: float = 5.0


@dataclass(frozen=True)
class FlowGradHConfig(FlowGradConfig):
    """FlowGrad-H options; motion_px: flow magnitude (full-frame pixels per flow
    interval) at which the motion gate reaches 1. The reference multiplies by the
    raw magnitude, i.e. motion_px = 1."""

    motion_px: float = 1.0


class RCGrad(Localiser):
    """RCGrad: ResNet-18 image (layer4 stride 1, 14x14) and audio encoders.

    Map: closed-form Grad-CAM of the audio embedding on the image features,
    min-max normalised and resized to 224x224 (and median-cleaned in reference mode).
    Trained with the CLIP loss of audio against image embeddings; published as a
    plain state dict (``rc_grad.pt``) or in FlowGrad's Lightning checkpoints.
    """

    Config = FlowGradConfig
    name = "rcgrad"
    image_channels = 3
    objective = "clip"
    reference_config = {"reference": True}
    published_forms = (PublishedForm("rcgrad"), PublishedForm("flowgrad"))

    def __init__(self, config: FlowGradConfig):
        super().__init__(config)
        self.image_encoder = resnet18(self.image_channels, layer4_stride=1, width=config.width)
        self.audio_encoder = resnet18(1, layer4_stride=2, width=config.width)
        self.audio_encoder.use_input_stats(config.reference)

    @property
    def embed_dim(self) -> int:
        return self.audio_encoder.out_channels

    def embed_audio(self, wave: torch.Tensor) -> torch.Tensor:
        check_wave(wave, self.name)
        stats = "batch" if self.config.reference else "clip"
        spectrogram = rcgrad_spectrogram_dft if self.traceable else rcgrad_spectrogram
        return self.audio_encoder(spectrogram(wave, stats=stats))

    def image_input(self, frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """The image encoder's input: CLIP-normalised RGB (B, 3, H, W)."""
        return normalise_rgb(frame, CLIP_MEAN, CLIP_STD)

    def image_embedding(self, frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """(B, D) image embedding for training: the pooled features the CAM reads."""
        return self.image_encoder(self.image_input(frame, flow))

    def branch_features(self, frame: torch.Tensor, flow: torch.Tensor) -> dict[str, torch.Tensor]:
        """The feature maps (B, C, 14, 14) the CAMs read, keyed by branch ("image"; EN adds "flow")."""
        return {"image": self.image_encoder.features(self.image_input(frame, flow))}

    def cams(self, frame, flow, audio_embedding) -> dict[str, torch.Tensor]:
        """Raw closed-form Grad-CAM maps, (B, 14, 14) each, keyed by branch."""
        return {k: gradcam(f, audio_embedding, self.traceable) for k, f in self.branch_features(frame, flow).items()}

    def heatmap(self, cams: dict[str, torch.Tensor], flow: torch.Tensor) -> torch.Tensor:
        """The variant's map (B, *map_size) in [0, 1] from its raw CAMs (and the flow, for the gate)."""
        return self.finish(normalise_cam(cams["image"], self.map_size))

    def finish(self, maps: torch.Tensor) -> torch.Tensor:
        """Final step of every variant: median clean in reference mode."""
        return clean_below_median(maps) if self.config.reference else maps

    def sounding_evidence(self, frame, flow, audio_embedding):
        """(B,) cosine of the audio embedding with each branch's pooled embedding, averaged over
        branches (see :func:`cosine_evidence`)."""
        self.check_inputs(frame, flow, audio_embedding)
        return cosine_evidence(self.branch_features(frame, flow), audio_embedding)

    def forward(self, frame, flow, audio_embedding):
        self.check_inputs(frame, flow, audio_embedding)
        feats = self.branch_features(frame, flow)
        cams = {k: gradcam(f, audio_embedding, self.traceable) for k, f in feats.items()}
        return self.heatmap(cams, flow), self.score_from_evidence(cosine_evidence(feats, audio_embedding))


def cosine_evidence(features: dict[str, torch.Tensor], audio_embedding: torch.Tensor) -> torch.Tensor:
    """Sounding evidence of the RCGrad family: (B,) mean over branches of cos(GAP(A), a).

    features: branch -> A (B, C, h, w); audio_embedding: a (B, C). The cosine of the pooled
    embeddings is the logit the CLIP objective trains, so it is where the model says whether
    sound and picture agree; the CAM's peak is not usable: it scales with |a|, and digital
    silence gives an embedding ~2000x longer than any sound (per-clip standardisation of a
    constant spectrogram). Measured on a held-out synthetic set (training.synth seed 5000):
    cosine AUROC sounding vs silence 0.95 (rcgrad) / 0.98 (flowgrad_en), the CAM peak 0.0.
    Each vector is divided by its largest magnitude first so float16 never overflows.
    """
    a = audio_embedding / audio_embedding.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    a = a / a.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
    total = 0
    for feats in features.values():
        v = feats.mean(dim=(2, 3))
        v = v / v.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
        v = v / v.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
        total = total + (v * a).sum(dim=1)
    return (total / len(features)).float()


class FlowGradH(RCGrad):
    """FlowGrad-H: the RCGrad map gated by flow magnitude.

    map = clip(rcgrad_map * |flow| / motion_px, 0, 1). In reference mode the
    RCGrad map is median-cleaned first and motion_px is 1 (the raw product); the
    clip to [0, 1] leaves every binarisation at a threshold <= 1 unchanged, so the
    papers' metrics are unaffected.
    """

    Config = FlowGradHConfig
    name = "flowgrad_h"
    objective = None
    not_trained_because = ("it is rcgrad's weights with a fixed flow gate: train rcgrad, then derive it "
                           "(flowgrad.models.derive_flowgrad_h, or evaluate flowgrad_h:RCGRAD.ckpt)")
    derived_from = "rcgrad"
    published_forms = ()  # never a file's default: derived from rcgrad weights
    # Fed the 5 s motion memory by default: it triples success on vehicles stopped at a light and raises the
    # overall AUC on held-out synthetic sets (docs/RESULTS.md, issue 18); SPEC+nomemory turns it off.
    motion_memory = True

    def heatmap(self, cams, flow):
        semantic = self.finish(normalise_cam(cams["image"], self.map_size))
        gate = flow_magnitude(flow) / self.config.motion_px
        return torch.clamp(semantic * gate, 0.0, 1.0)

    @classmethod
    def derive(cls, base: Localiser) -> "FlowGradH":
        return derive_flowgrad_h(base)


class FlowGradIC(RCGrad):
    """FlowGrad-IC: flow magnitude as a fourth image channel, (|flow| + 5) / 200.

    Trained as RCGrad, the image embedding seeing RGB and flow; starts from a
    trained RCGrad. Published in FlowGrad's Lightning checkpoints, told apart by
    the 4-channel ``image_encoder.conv1_flow``.
    """

    name = "flowgrad_ic"
    image_channels = 4
    objective = "clip_rgb_flow"
    init_sources = ("rcgrad",)
    has_flow_filters = True
    published_forms = (PublishedForm("flowgrad", channels=("image_encoder.conv1_flow.weight", 4)),)

    def image_input(self, frame, flow):
        rgb = normalise_rgb(frame, CLIP_MEAN, CLIP_STD)
        return torch.cat([rgb, encode_magnitude(flow)], dim=1)

    def _init_from_source(self, source):
        init_from_rcgrad(self, source)
        return f"{source.name} weights, flow filters from its RGB filters"

    def init_flow_filters_from_rgb(self) -> None:
        """image_encoder.conv1's 4th input channel = the mean of its 3 RGB channels, in place."""
        with torch.no_grad():
            conv = self.image_encoder.conv1.weight
            conv[:, 3] = conv[:, :3].mean(dim=1)


class FlowGradEN(RCGrad):
    """FlowGrad-EN: a separate flow encoder; map = normalised CAM_image * CAM_flow.

    The flow encoder is a ResNet-18 on the 1-channel (|flow| + 5) / 200 input with
    layer4 stride 1 (14x14). Each CAM is min-max normalised and resized, their
    product min-max normalised (and median-cleaned in reference mode).

    Trained with the sum of the three pairwise CLIP losses (audio, image, flow);
    starts from a trained RCGrad. Published in FlowGrad's Lightning checkpoints,
    told apart by its ``flow_encoder``.
    """

    name = "flowgrad_en"
    objective = "clip_pairwise"
    init_sources = ("rcgrad",)
    has_flow_filters = True
    published_forms = (PublishedForm("flowgrad", root="flow_encoder"),)

    def __init__(self, config: FlowGradConfig):
        super().__init__(config)
        self.flow_encoder = resnet18(1, layer4_stride=1, width=config.width)

    def flow_embedding(self, flow: torch.Tensor) -> torch.Tensor:
        """(B, D) flow embedding for training: the pooled flow encoder on (|flow| + 5) / 200."""
        return self.flow_encoder(encode_magnitude(flow))

    def branch_features(self, frame, flow):
        feats = super().branch_features(frame, flow)
        feats["flow"] = self.flow_encoder.features(encode_magnitude(flow))
        return feats

    def heatmap(self, cams, flow):
        product = normalise_cam(cams["image"], self.map_size) * normalise_cam(cams["flow"], self.map_size)
        return clean_below_median(product) if self.config.reference else minmax(product)

    def _init_from_source(self, source):
        init_from_rcgrad(self, source)
        return f"{source.name} weights, flow encoder a copy of its image encoder with conv1 the mean RGB filter"

    def init_flow_filters_from_rgb(self) -> None:
        """flow_encoder.conv1 (1 input channel) = the mean of image_encoder.conv1 over RGB, in place."""
        with torch.no_grad():
            self.flow_encoder.conv1.weight[:, 0] = self.image_encoder.conv1.weight[:, :3].mean(dim=1)


def derive_flowgrad_h(rcgrad_model: RCGrad, motion_px: float = 1.0) -> FlowGradH:
    """A FlowGrad-H model holding a copy of ``rcgrad_model``'s weights and config.

    motion_px: flow magnitude (full-frame pixels per flow interval) at which the
    motion gate saturates (1.0 = the reference's raw product). Returned in eval mode.
    Raises ValueError unless ``rcgrad_model`` is an RCGrad.
    """
    if type(rcgrad_model) is not RCGrad:
        raise ValueError(f"derive_flowgrad_h needs an rcgrad model, got {type(rcgrad_model).__name__}")
    config = FlowGradHConfig(**dataclasses.asdict(rcgrad_model.config), motion_px=motion_px)
    derived = FlowGradH(config)
    derived.load_state_dict(rcgrad_model.state_dict())
    return derived.eval()


def init_flow_filters_from_rgb(model: Localiser) -> None:
    """The papers' initialisation of the flow input filters, in place (after loading the RGB
    weights, e.g. RCGrad's): FlowGrad-IC's 4th conv1 channel, FlowGrad-EN's flow_encoder.conv1,
    each the mean of the RGB filters. Raises ValueError for a model without flow filters."""
    model.init_flow_filters_from_rgb()


@torch.no_grad()
def init_from_rcgrad(model: Localiser, rcgrad_model: RCGrad) -> None:
    """Start FlowGrad-IC or -EN from a trained RCGrad, in place (the FlowGrad paper's recipe).

    Every RCGrad tensor is copied by name; IC's 4-channel conv1 takes the RGB
    filters and its flow channel their mean. EN's flow encoder is a copy of the
    image encoder with conv1 the mean over RGB (the paper says only "initialized
    the weights as the average of RGB channels of the vision encoder"; we read it
    as the whole encoder). Both models must have the same width: InitError, and
    nothing is changed, when a shape does not fit. ValueError for other models.
    """
    if type(rcgrad_model) is not RCGrad:
        raise ValueError(f"init_from_rcgrad needs an rcgrad model as source, got {type(rcgrad_model).__name__}")
    if type(model) not in (FlowGradIC, FlowGradEN):
        raise ValueError(f"init_from_rcgrad initialises flowgrad_ic or flowgrad_en, got {type(model).__name__}")
    source = rcgrad_model.state_dict()
    if type(model) is FlowGradEN:
        source.update({f"flow_encoder.{k[len('image_encoder.'):]}": v
                       for k, v in source.items() if k.startswith("image_encoder.")})
    target = model.state_dict()
    copies = []
    for name, value in source.items():
        dest = target[name]
        if name == "flow_encoder.conv1.weight":
            continue  # one input channel: set below from the RGB mean
        if name == "image_encoder.conv1.weight" and type(model) is FlowGradIC:
            dest = dest[:, :3]  # the flow channel is set below
        if dest.shape != value.shape:
            raise InitError(f"init_from_rcgrad: {name} is {tuple(value.shape)} in rcgrad but "
                             f"{tuple(dest.shape)} here; create both models with the same width")
        copies.append((dest, value))
    for dest, value in copies:  # only once every shape agrees: no half-initialised model
        dest.copy_(value)
    model.init_flow_filters_from_rgb()
