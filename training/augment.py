"""Batch augmentation for contrastive training, applied on the training device.

Small synthetic or real street sets let a model memorise windows; these
changes keep what localisation depends on (which regions move and sound)
while varying what it must not depend on (exact framing, picture colour,
loudness). Picture and flow always get the SAME geometric change, and a
mirrored flow has its horizontal component negated so it still describes
the mirrored motion.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """flip: probability of a left-right mirror. crop: smallest kept side fraction of a
    random crop (resized back), 1.0 = none. brightness: max relative change of the
    picture's brightness. gain_db: max change of the audio level, decibels."""

    flip: float = 0.5
    crop: float = 0.8
    brightness: float = 0.2
    gain_db: float = 6.0


def augment(frame: torch.Tensor, flow: torch.Tensor, wave: torch.Tensor, config: AugmentConfig,
            generator: torch.Generator | None = None, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """frame (B, 3, H, W) RGB [0, 1], flow (B, 2, H, W) full-frame px, wave (B, T) -> the same shapes.

    Flow VALUES stay in pixels of the full camera frame: a crop zooms the picture
    but the motion it shows is still the camera's motion, as at inference.
    mask: optional (B, H, W) box mask in {0, 1} on the frame's grid; given, it gets the
    frame's mirror and crop (nearest, so it stays binary) and is returned fourth.
    """
    b, _, h, w = frame.shape
    dev = frame.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator).to(dev)

    mirror = rand(b) < config.flip
    frame = torch.where(mirror[:, None, None, None], frame.flip(-1), frame)
    flipped_flow = flow.flip(-1) * torch.tensor([-1.0, 1.0], device=dev)[None, :, None, None]
    flow = torch.where(mirror[:, None, None, None], flipped_flow, flow)
    if mask is not None:
        mask = torch.where(mirror[:, None, None], mask.flip(-1), mask)

    if config.crop < 1.0:
        side = config.crop + (1 - config.crop) * rand(b)
        cx, cy = (rand(b) * 2 - 1) * (1 - side), (rand(b) * 2 - 1) * (1 - side)
        theta = torch.zeros(b, 2, 3, device=dev)
        theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = side, side, cx, cy
        grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
        frame = F.grid_sample(frame, grid, mode="bilinear", padding_mode="border", align_corners=False)
        flow = F.grid_sample(flow, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if mask is not None:
            mask = F.grid_sample(mask[:, None], grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0]

    scale = 1 + (rand(b) * 2 - 1) * config.brightness
    frame = (frame * scale[:, None, None, None]).clamp(0, 1)
    gain = 10 ** ((rand(b) * 2 - 1) * config.gain_db / 20)
    wave = (wave * gain[:, None]).clamp(-1, 1)
    return (frame, flow, wave) if mask is None else (frame, flow, wave, mask)
