"""Localisation-map maths shared by the models: closed-form Grad-CAM and post-processing.

All maps here are float32 tensors (B, H, W); the functions are plain forward
graphs (no autograd), so they export to ONNX and TensorRT.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-7


def channel_dot(features: torch.Tensor, weights: torch.Tensor, traceable: bool = False) -> torch.Tensor:
    """sum_c weights[b, c] * features[b, c, i, j]: (B, C, h, w) and (B, C) -> (B, h, w).

    traceable: compute it as Mul + ReduceSum, the form ONNX export and TensorRT
    take, instead of ``einsum`` (the same values to float rounding; see
    :meth:`flowgrad.models.base.Localiser.tracing`).
    """
    if traceable:
        return (features * weights[:, :, None, None]).sum(dim=1)
    return torch.einsum("bchw,bc->bhw", features, weights)


def gradcam(features: torch.Tensor, audio_embedding: torch.Tensor, traceable: bool = False) -> torch.Tensor:
    """Closed-form RCGrad Grad-CAM.

    The score is <GAP(A), a>, so dS/dA_c(i, j) = a_c / (h w) everywhere and
    Grad-CAM reduces to ReLU(sum_c a_c A_c) / (h w): a 1x1 convolution with the
    audio embedding as kernel.

    features: A, (B, C, h, w), the last layer4 activation.
    audio_embedding: a, (B, C), unnormalised.
    traceable: the export-friendly form (:func:`channel_dot`).
    Returns (B, h, w), in the feature map's own grid (not resized).
    """
    if features.ndim != 4 or audio_embedding.shape != features.shape[:2]:
        raise ValueError(
            f"features (B, C, h, w) and embedding (B, C) disagree: "
            f"{tuple(features.shape)} vs {tuple(audio_embedding.shape)}"
        )
    h, w = features.shape[-2:]
    return torch.relu(channel_dot(features, audio_embedding, traceable)) / (h * w)


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map of (B, H, W) to [0, 1]; a constant map becomes 0."""
    flat = maps.flatten(1)
    lo = flat.min(dim=1).values[:, None, None]
    hi = flat.max(dim=1).values[:, None, None]
    return (maps - lo) / (hi - lo + EPS)


def resize(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (half-pixel centres, as cv2.INTER_LINEAR) of (B, h, w) to (B, *size)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def normalise_cam(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Reference CAM post-processing before cleaning: min-max, resize to size, min-max."""
    return minmax(resize(minmax(cam), size))


def clean_below_median(maps: torch.Tensor) -> torch.Tensor:
    """Zero every value below the map's median (the reference's ``clean_pred``).

    The reference takes the element at index N // 2 of the sorted map (the upper
    median for even N) and zeroes values strictly below it; maps are min-max
    normalised first, as there. (B, H, W) -> (B, H, W) in [0, 1].
    """
    maps = minmax(maps)
    flat = maps.flatten(1)
    threshold = torch.sort(flat, dim=1).values[:, flat.shape[1] // 2]
    return torch.where(maps < threshold[:, None, None], torch.zeros_like(maps), maps)
