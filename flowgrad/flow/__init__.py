"""Optical flow: OpenCV-exact Farneback in torch (any device, batched) and rolling flow for live streams."""
from .farneback import Farneback, FarnebackParams, farneback
from .rolling import FlowResult, RollingFlow, RollingFlowConfig

__all__ = ["farneback", "Farneback", "FarnebackParams", "RollingFlow", "RollingFlowConfig", "FlowResult"]
