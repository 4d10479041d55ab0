"""Where the files that ship with the repository lie: the demo clip and scene, the trained models.

The core's one list of shipped paths; application packages (realtime, export,
bench) take them from here.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository root
DEMO_DIR = ROOT / "assets" / "demo"  # frame0.png, frame1.png, audio.wav: one still scene (realtime.demo)
DEMO_CLIP = DEMO_DIR / "street.mp4"  # the bundled street clip (H.264 + AAC), made by scripts/make_demo_assets.py
MODELS_DIR = ROOT / "assets" / "models"  # trained checkpoints (scripts/train_demo_models.sh)

__all__ = ["ROOT", "DEMO_DIR", "DEMO_CLIP", "MODELS_DIR"]
