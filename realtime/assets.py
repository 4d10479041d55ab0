"""The live tools' default model; the shipped paths themselves are :mod:`flowgrad.assets`'."""
from __future__ import annotations

from flowgrad.assets import DEMO_CLIP, DEMO_DIR, MODELS_DIR, ROOT

DEMO_MODEL = MODELS_DIR / "flowgrad_en.ckpt"

__all__ = ["ROOT", "DEMO_DIR", "DEMO_CLIP", "MODELS_DIR", "DEMO_MODEL", "default_model"]


def default_model() -> str:
    """The shipped demo model (FlowGrad-EN trained on synthetic streets, scripts/train_demo_models.sh)
    when present, else the weight-free flow_only baseline."""
    return str(DEMO_MODEL) if DEMO_MODEL.is_file() else "flow_only"
