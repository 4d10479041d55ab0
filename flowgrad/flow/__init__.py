"""Optical flow: OpenCV-exact Farneback in torch (any device, batched) and rolling flow for live streams."""
from .farneback import Farneback, FarnebackParams, farneback
from .opencv import opencv_flow
from .rolling import FLOW_INTERVAL_S, FlowResult, RollingFlow, RollingFlowConfig
from .stabilise import StabiliseInfo, compensate

__all__ = ["FLOW_INTERVAL_S", "farneback", "Farneback", "FarnebackParams", "RollingFlow", "RollingFlowConfig",
           "FlowResult", "opencv_flow", "compensate", "StabiliseInfo"]
