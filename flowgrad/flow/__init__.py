"""Optical flow: OpenCV-exact Farneback in torch (any device, batched) and rolling flow for live streams."""
from .farneback import FarnebackParams, farneback
from .rolling import FlowResult, RollingFlow, RollingFlowConfig

__all__ = ["farneback", "FarnebackParams", "RollingFlow", "RollingFlowConfig", "FlowResult"]
