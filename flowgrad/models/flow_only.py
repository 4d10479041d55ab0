"""The optical-flow-only baseline: the flow magnitude is the map."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..inputs import flow_magnitude
from ..maps import minmax
from .base import Localiser, check_wave


@dataclass(frozen=True)
class FlowOnlyConfig:
    """audio_rate / audio_seconds only describe the (ignored) audio input."""

    audio_rate: int = 16000
    audio_seconds: float = 5.0


class FlowOnly(Localiser):
    """map = min-max normalised |flow|; anything that moves is taken as sounding.

    No parameters; ``embed_audio`` returns a (B, 0) embedding and
    ``uses_audio`` is False so pipelines can skip audio altogether.

    It has no ears: its sounding score is a constant 1 (every frame "sounds"), its
    evidence a constant 1, and it takes no calibration.
    """

    Config = FlowOnlyConfig
    name = "flow_only"
    uses_audio = False
    not_trained_because = "it has no parameters"
    reference_config = {}  # the published baseline already: nothing to switch
    # Fed the 5 s motion memory by default: it triples success on vehicles stopped at a light and raises the
    # overall AUC on held-out synthetic sets (docs/RESULTS.md, issue 18); SPEC+nomemory turns it off.
    motion_memory = True

    @property
    def embed_dim(self) -> int:
        return 0

    def embed_audio(self, wave: torch.Tensor) -> torch.Tensor:
        check_wave(wave, self.name)
        return wave.new_zeros(wave.shape[0], 0)

    def sounding_evidence(self, frame, flow, audio_embedding):
        """(B,) ones: no audio, no evidence either way."""
        self.check_inputs(frame, flow, audio_embedding)
        return flow.new_ones(flow.shape[0], dtype=torch.float32)

    def forward(self, frame, flow, audio_embedding):
        self.check_inputs(frame, flow, audio_embedding)
        # ones_like of a flow slice: the exported graph's score keeps the batch axis
        return minmax(flow_magnitude(flow)), torch.ones_like(flow[:, 0, 0, 0], dtype=torch.float32)
