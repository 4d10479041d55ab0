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

from dataclasses import dataclass

import torch

from ..audio import rcgrad_spectrogram
from ..backbones import resnet18
from ..inputs import CLIP_MEAN, CLIP_STD, encode_magnitude, flow_magnitude, normalise_rgb
from ..maps import clean_below_median, gradcam, minmax, normalise_cam
from .base import Localiser, check_wave


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
    """

    Config = FlowGradConfig
    image_channels = 3

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
        return self.audio_encoder(rcgrad_spectrogram(wave, stats=stats))

    def image_input(self, frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """The image encoder's input: CLIP-normalised RGB (B, 3, H, W)."""
        return normalise_rgb(frame, CLIP_MEAN, CLIP_STD)

    def cams(self, frame, flow, audio_embedding) -> dict[str, torch.Tensor]:
        """Raw closed-form Grad-CAM maps, (B, 14, 14) each, keyed by branch."""
        feats = self.image_encoder.features(self.image_input(frame, flow))
        return {"image": gradcam(feats, audio_embedding)}

    def finish(self, maps: torch.Tensor) -> torch.Tensor:
        """Final step of every variant: median clean in reference mode."""
        return clean_below_median(maps) if self.config.reference else maps

    def forward(self, frame, flow, audio_embedding):
        self.check_inputs(frame, flow, audio_embedding)
        cam = self.cams(frame, flow, audio_embedding)["image"]
        return self.finish(normalise_cam(cam, self.map_size))


class FlowGradH(RCGrad):
    """FlowGrad-H: the RCGrad map gated by flow magnitude.

    map = clip(rcgrad_map * |flow| / motion_px, 0, 1). In reference mode the
    RCGrad map is median-cleaned first and motion_px is 1 (the raw product); the
    clip to [0, 1] leaves every binarisation at a threshold <= 1 unchanged, so the
    papers' metrics are unaffected.
    """

    Config = FlowGradHConfig

    def forward(self, frame, flow, audio_embedding):
        self.check_inputs(frame, flow, audio_embedding)
        cam = self.cams(frame, flow, audio_embedding)["image"]
        semantic = self.finish(normalise_cam(cam, self.map_size))
        gate = flow_magnitude(flow) / self.config.motion_px
        return torch.clamp(semantic * gate, 0.0, 1.0)


class FlowGradIC(RCGrad):
    """FlowGrad-IC: flow magnitude as a fourth image channel, (|flow| + 5) / 200."""

    image_channels = 4

    def image_input(self, frame, flow):
        rgb = normalise_rgb(frame, CLIP_MEAN, CLIP_STD)
        return torch.cat([rgb, encode_magnitude(flow)], dim=1)


class FlowGradEN(RCGrad):
    """FlowGrad-EN: a separate flow encoder; map = normalised CAM_image * CAM_flow.

    The flow encoder is a ResNet-18 on the 1-channel (|flow| + 5) / 200 input with
    layer4 stride 1 (14x14). Each CAM is min-max normalised and resized, their
    product min-max normalised (and median-cleaned in reference mode).
    """

    def __init__(self, config: FlowGradConfig):
        super().__init__(config)
        self.flow_encoder = resnet18(1, layer4_stride=1, width=config.width)

    def cams(self, frame, flow, audio_embedding):
        cams = super().cams(frame, flow, audio_embedding)
        cams["flow"] = gradcam(self.flow_encoder.features(encode_magnitude(flow)), audio_embedding)
        return cams

    def forward(self, frame, flow, audio_embedding):
        self.check_inputs(frame, flow, audio_embedding)
        cams = self.cams(frame, flow, audio_embedding)
        product = normalise_cam(cams["image"], self.map_size) * normalise_cam(cams["flow"], self.map_size)
        return clean_below_median(product) if self.config.reference else minmax(product)
