"""Paths of what ships in the repository: the demo clip and scene, and the demo models."""
from __future__ import annotations

from pathlib import Path

from flowgrad.checkpoint import SHIPPED_DIR

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "assets" / "demo"
DEMO_CLIP = DEMO_DIR / "street.mp4"
MODELS_DIR = SHIPPED_DIR  # flowgrad.checkpoint.shipped() lists them
DEMO_MODEL = MODELS_DIR / "flowgrad_en.ckpt"


def default_model() -> str:
    """The shipped demo model (FlowGrad-EN trained on synthetic streets, scripts/train_demo_models.sh)
    when present, else the weight-free flow_only baseline."""
    return str(DEMO_MODEL) if DEMO_MODEL.is_file() else "flow_only"
