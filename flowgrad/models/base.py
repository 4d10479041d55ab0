"""The one contract every localiser in the registry follows.

A localiser has two paths, run at their own rates:

* ``embed_audio(wave)``: wave (B, T) float32 mono in [-1, 1] sampled at
  ``audio_rate`` Hz, normally ``audio_seconds`` long (the most recent window in
  a live system) -> audio embedding (B, embed_dim) float32.
* ``forward(frame, flow, audio_embedding)``:
    frame (B, 3, H, W) float32 RGB (not BGR) in [0, 1], H, W = ``input_size``;
    flow (B, 2, H, W) float32 (dx, dy) from this frame to the one ~0.125 s
    later, sampled on the same H x W grid but in PIXELS OF THE FULL CAMERA FRAME
    (see :func:`flowgrad.inputs.prepare_flow`);
    audio_embedding (B, embed_dim) from ``embed_audio``
  -> heatmap (B, *map_size) float32 in [0, 1], on the same grid as the frame
  input (pixel (i, j) of the map covers pixel (i, j) of the 224x224 frame).

``cams(...)`` exposes the raw closed-form Grad-CAM maps, where a model has them,
for tests and diagnostics.
"""
from __future__ import annotations

import torch
from torch import nn


class Localiser(nn.Module):
    """Base class of registry models; see the module docstring for the contract."""

    name: str = ""
    input_size: tuple[int, int] = (224, 224)
    map_size: tuple[int, int] = (224, 224)
    uses_audio: bool = True

    def __init__(self, config):
        super().__init__()
        self.config = config

    @property
    def audio_rate(self) -> int:
        """Sample rate, Hz, that ``embed_audio`` expects."""
        return self.config.audio_rate

    @property
    def audio_seconds(self) -> float:
        """Length, seconds, of the audio window the model was defined on."""
        return self.config.audio_seconds

    @property
    def embed_dim(self) -> int:
        """Width of the audio embedding."""
        raise NotImplementedError

    def embed_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) float32 wave at ``audio_rate`` -> (B, embed_dim)."""
        raise NotImplementedError

    def localise(self, frame: torch.Tensor, flow: torch.Tensor, wave: torch.Tensor) -> torch.Tensor:
        """Both paths at once: ``forward(frame, flow, embed_audio(wave))``."""
        return self(frame, flow, self.embed_audio(wave))

    def check_inputs(self, frame: torch.Tensor, flow: torch.Tensor, emb: torch.Tensor) -> None:
        """Raise ValueError unless the inputs follow the contract's shapes."""
        b = frame.shape[0] if frame.ndim == 4 else None
        expected = {
            "frame": (frame, (b, 3, *self.input_size)),
            "flow": (flow, (b, 2, *self.input_size)),
            "audio_embedding": (emb, (b, self.embed_dim)),
        }
        for what, (t, shape) in expected.items():
            if tuple(t.shape) != shape:
                raise ValueError(f"{self.name}: {what} must have shape {shape}, got {tuple(t.shape)}")
            if not t.is_floating_point():
                raise ValueError(f"{self.name}: {what} must be floating point, got {t.dtype}")


def check_wave(wave: torch.Tensor, who: str) -> None:
    """Raise ValueError unless ``wave`` is a (B, T) floating-point tensor."""
    if wave.ndim != 2 or not wave.is_floating_point():
        raise ValueError(f"{who}: wave must be (B, T) float, got {tuple(wave.shape)} {wave.dtype}")
