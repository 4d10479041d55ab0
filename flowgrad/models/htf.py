"""Hear The Flow: flow cross-attention over image features, cosine map with audio.

Submodule names follow the released code (``imgnet``, ``audnet``, ``flownet``,
``flowatt.{query,key,value}_conv``) so its checkpoints load by name. The
attention is the released code's, which differs from the poster's figure:
Q from the image, K from the flow, V from the image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import htf_spectrogram, htf_spectrogram_dft
from ..backbones import resnet18
from ..inputs import IMAGENET_MEAN, IMAGENET_STD, encode_uv_reference, encode_uv_signed, normalise_rgb
from ..maps import channel_dot, minmax, resize
from .base import Localiser, PublishedForm, check_wave

FLOW_ENCODINGS = {"reference": encode_uv_reference, "signed": encode_uv_signed}


@dataclass(frozen=True)
class HTFConfig:
    """Hear The Flow options.

    width: ResNet-18 channel multiplier (1.0 = published size).
    flow_encoding: "reference" (u, v rounded and clipped to [0, 255], / 255:
        negative motion is lost, as in the released code) or "signed" (clipped
        to [-255, 255]; see flowgrad.inputs.encode_uv_signed).
    audio_rate: Hz (22.05 kHz as released); audio_seconds: the window (3 s).
    """

    width: float = 1.0
    flow_encoding: str = "reference"
    audio_rate: int = 22050
    audio_seconds: float = 3.0

    def __post_init__(self):
        if self.flow_encoding not in FLOW_ENCODINGS:
            raise ValueError(f"flow_encoding must be one of {sorted(FLOW_ENCODINGS)}, got {self.flow_encoding!r}")


class FlowAttention(nn.Module):
    """Cross-attention: image queries attend over flow keys, values from the image.

    image, flow: (B, C, h, w) -> (B, C, h, w) attended image values.
    softmax(Q^T K / sqrt(d)) over the h*w keys, with d = C / 8 (64 at full width).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.key_dim = channels // 8
        self.query_conv = nn.Conv2d(channels, self.key_dim, 1)
        self.key_conv = nn.Conv2d(channels, self.key_dim, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)

    def forward(self, image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        b, c, h, w = image.shape
        q = self.query_conv(image).flatten(2).transpose(1, 2)  # (B, hw, d)
        k = self.key_conv(flow).flatten(2)  # (B, d, hw)
        attn = torch.softmax(torch.bmm(q, k) / math.sqrt(self.key_dim), dim=-1)
        v = self.value_conv(image).flatten(2)  # (B, C, hw)
        return torch.bmm(v, attn.transpose(1, 2)).view(b, c, h, w)


class HearTheFlow(Localiser):
    """Hear The Flow (7x7 map, bilinearly resized to 224x224 and min-max normalised).

    attended = L2-normalise(image_features + attention) per location; the map is
    the cosine similarity of each location with the L2-normalised audio embedding.
    Trained with the LVS loss on the attended maps; published as ``{"model": state dict}``.
    """

    Config = HTFConfig
    name = "htf"
    objective = "lvs"
    published_forms = (PublishedForm("htf"),)

    def __init__(self, config: HTFConfig):
        super().__init__(config)
        self.imgnet = resnet18(3, layer4_stride=2, pool="none", width=config.width)
        self.audnet = resnet18(1, layer4_stride=2, pool="max", width=config.width)
        self.flownet = resnet18(2, layer4_stride=2, pool="none", width=config.width)
        self.flowatt = FlowAttention(self.imgnet.out_channels)

    @property
    def embed_dim(self) -> int:
        return self.audnet.out_channels

    def embed_audio(self, wave: torch.Tensor) -> torch.Tensor:
        check_wave(wave, self.name)
        spectrogram = htf_spectrogram_dft if self.traceable else htf_spectrogram
        return F.normalize(self.audnet(spectrogram(wave, sample_rate=self.config.audio_rate)), dim=1)

    def attended_features(self, frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """(B, C, 7, 7) flow-attended image features, L2-normalised per location."""
        image = self.imgnet(normalise_rgb(frame, IMAGENET_MEAN, IMAGENET_STD))
        motion = self.flownet(FLOW_ENCODINGS[self.config.flow_encoding](flow))
        return F.normalize(image + self.flowatt(image, motion), dim=1)

    def similarity(self, frame, flow, audio_embedding) -> torch.Tensor:
        """Cosine similarity map (B, 7, 7) in [-1, 1] before resizing."""
        return channel_dot(self.attended_features(frame, flow), F.normalize(audio_embedding, dim=1),
                           self.traceable)

    def sounding_evidence(self, frame, flow, audio_embedding):
        """(B,) peak of the 7x7 cosine similarity map: the LVS objective trains the sounding
        region's cosine up and others' down, and the peak is scale-free (both sides are unit
        vectors) where the min-max normalised map is not."""
        self.check_inputs(frame, flow, audio_embedding)
        return self.similarity(frame, flow, audio_embedding).flatten(1).amax(dim=1).float()

    def forward(self, frame, flow, audio_embedding):
        self.check_inputs(frame, flow, audio_embedding)
        similarity = self.similarity(frame, flow, audio_embedding)
        evidence = similarity.flatten(1).amax(dim=1).float()
        return minmax(resize(similarity, self.map_size)), self.score_from_evidence(evidence)
