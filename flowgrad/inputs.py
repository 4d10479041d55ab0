"""Network-input encodings of camera frames and optical flow (REFERENCE sections 2-3).

Units: frames are RGB in [0, 1]; flow is (dx, dy) in pixels of the FULL camera
frame over the flow interval (about 0.125 s), whatever grid it is sampled on.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise_rgb(frame: torch.Tensor, mean, std) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (x - mean) / std per channel."""
    m = frame.new_tensor(mean)[None, :, None, None]
    s = frame.new_tensor(std)[None, :, None, None]
    return (frame - m) / s


def flow_magnitude(flow: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) flow in pixels -> (B, H, W) magnitude in the same pixels."""
    return torch.sqrt(flow[:, 0] ** 2 + flow[:, 1] ** 2)


def encode_magnitude(flow: torch.Tensor) -> torch.Tensor:
    """FlowGrad-IC/EN flow channel: (|flow| + 5) / 200 -> (B, 1, H, W).

    |flow| is in pixels of the full-resolution camera frame, as in the reference.
    """
    return ((flow_magnitude(flow) + 5.0) / 200.0)[:, None]


def encode_uv_reference(flow: torch.Tensor) -> torch.Tensor:
    """Hear The Flow's u/v encoding: round, clip to [0, 255], / 255 -> (B, 2, H, W).

    Negative motion (leftwards, upwards) becomes 0: a loss the released code has.
    """
    return torch.clamp(torch.round(flow), 0.0, 255.0) / 255.0


def encode_uv_signed(flow: torch.Tensor) -> torch.Tensor:
    """Signed variant: round, clip to [-255, 255], / 255 -> (B, 2, H, W) in [-1, 1].

    Equal to :func:`encode_uv_reference` for positive motion, so a model trained on
    the reference encoding sees the same values there; negative motion is kept.
    """
    return torch.clamp(torch.round(flow), -255.0, 255.0) / 255.0


def model_inputs(image_bgr: np.ndarray, flow: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One camera frame and its flow as a model's numpy inputs, batch 1.

    image_bgr: (H, W, 3) uint8 BGR; flow: (2, h, w) float32 (dx, dy) in full-frame
    pixels per flow interval, on any grid; size: the model's (height, width). Returns
    frame (1, 3, *size) float32 RGB in [0, 1] and flow (1, 2, *size) float32, still in
    full-frame pixels (see prepare_frames and prepare_flow).
    """
    frame = prepare_frames(torch.from_numpy(image_bgr), size).numpy()
    return frame, prepare_flow(torch.from_numpy(np.ascontiguousarray(flow)), size).numpy()


def prepare_frames(frames_bgr: torch.Tensor, size: tuple[int, int] = (224, 224)) -> torch.Tensor:
    """Camera frames to the model's frame input.

    frames_bgr: (B, H, W, 3) or (H, W, 3) uint8, OpenCV's BGR order.
    Returns (B, 3, *size) float32 RGB in [0, 1], squash-resized (aspect not kept,
    as the reference) with antialiased bicubic interpolation.
    """
    if frames_bgr.ndim == 3:
        frames_bgr = frames_bgr[None]
    if frames_bgr.ndim != 4 or frames_bgr.shape[-1] != 3:
        raise ValueError(f"expected (B, H, W, 3) BGR frames, got {tuple(frames_bgr.shape)}")
    if frames_bgr.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames, got {frames_bgr.dtype}")
    rgb = frames_bgr.flip(-1).permute(0, 3, 1, 2).float() / 255.0
    out = F.interpolate(rgb, size=size, mode="bicubic", align_corners=False, antialias=True)
    return out.clamp(0.0, 1.0)


def prepare_flow(flow: torch.Tensor, size: tuple[int, int] = (224, 224)) -> torch.Tensor:
    """Camera-resolution flow to the model's flow input.

    flow: (B, 2, H, W) or (2, H, W) float, (dx, dy) in pixels of the full camera
    frame. Returns (B, 2, *size) float32, resampled bilinearly; the VALUES stay in
    full-frame pixels (the models' flow encodings are defined in those units).
    """
    if flow.ndim == 3:
        flow = flow[None]
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"expected (B, 2, H, W) flow, got {tuple(flow.shape)}")
    flow = flow.float()
    if tuple(flow.shape[-2:]) == tuple(size):
        return flow
    return F.interpolate(flow, size=size, mode="bilinear", align_corners=False, antialias=True)
