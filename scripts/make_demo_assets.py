"""Render the bundled demo data in assets/demo/ (a tiny procedural street scene).

Two 640x360 frames 0.125 s apart and 5 s of 16 kHz mono audio: a bus drives
right (6 px per 0.125 s) with an engine sound, a red car is parked (silent),
a tree's leaves sway (moving, silent). Also street.mp4, the live demo's clip
(`python run_live.py --demo`): clip 1 of `python -m training.synth --seed 2026`
(10 s, 640x360, 24 fps, AAC stereo track rendered to a 20 cm pair, so a direction can be
found in it; two cars and a truck drive and sound, three parked cars are silent, a tree
sways). Deterministic; rerun to regenerate:

    .venv/bin/python scripts/make_demo_assets.py
"""
from pathlib import Path
import wave

import cv2
import numpy as np

OUT = Path(__file__).resolve().parent.parent / "assets" / "demo"
W, H, RATE, SECONDS = 640, 360, 16000, 5.0


def draw_scene(bus_x: int, sway: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = (200, 170, 120)  # sky (BGR)
    img[200:] = (90, 90, 90)  # road
    img[195:200] = (160, 160, 160)  # kerb
    rng = np.random.default_rng(0)  # fixed texture so only the movers change
    img[200:] = np.clip(img[200:].astype(int) + rng.integers(-12, 12, img[200:].shape), 0, 255)
    cv2.rectangle(img, (60, 230), (200, 290), (40, 40, 200), -1)  # parked car
    for cx in (90, 170):
        cv2.circle(img, (cx, 292), 14, (20, 20, 20), -1)
    cv2.rectangle(img, (bus_x, 190), (bus_x + 220, 300), (180, 120, 30), -1)  # bus
    for k in range(5):
        cv2.rectangle(img, (bus_x + 15 + 40 * k, 205), (bus_x + 45 + 40 * k, 235), (230, 220, 200), -1)
    for cx in (bus_x + 40, bus_x + 180):
        cv2.circle(img, (cx, 302), 16, (20, 20, 20), -1)
    cv2.rectangle(img, (560, 80), (575, 200), (30, 60, 90), -1)  # trunk
    for dx, dy in ((-30, 0), (0, -25), (30, 5), (0, 20)):
        cv2.circle(img, (567 + dx + sway, 80 + dy), 30, (40, 140 + dx, 50), -1)
    return img


def engine_audio() -> np.ndarray:
    t = np.arange(int(RATE * SECONDS)) / RATE
    rng = np.random.default_rng(1)
    f0 = 45 + 5 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 12))
    rumble = np.convolve(rng.standard_normal(t.size), np.ones(8) / 8, mode="same")
    x = 0.6 * tone + 0.3 * rumble
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def make_street_clip() -> None:
    """assets/demo/street.mp4 from the synthetic street generator."""
    import shutil
    import tempfile

    from training.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        clips = generate(Path(tmp) / "synth", clips=2, seed=2026)
        shutil.copyfile(clips[1].videos[24], OUT / "street.mp4")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    make_street_clip()
    cv2.imwrite(str(OUT / "frame0.png"), draw_scene(bus_x=300, sway=0))
    cv2.imwrite(str(OUT / "frame1.png"), draw_scene(bus_x=306, sway=2))
    with wave.open(str(OUT / "audio.wav"), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(RATE)
        f.writeframes((engine_audio() * 32767).astype("<i2").tobytes())


if __name__ == "__main__":
    main()
