"""Optical flow: OpenCV-exact Farneback in torch (any device, batched)."""
from .farneback import FarnebackParams, farneback

__all__ = ["farneback", "FarnebackParams"]
