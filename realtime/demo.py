"""Run one localiser on the bundled demo scene and write a heatmap overlay image.

    python -m realtime.demo                      # the shipped demo model on assets/demo
    python -m realtime.demo --model run/best.ckpt --out demo_out/en.png

The scene (assets/demo, made by scripts/make_demo_assets.py): a bus driving and
sounding, a parked car (silent) and a swaying tree (moving, silent). Input:
frame0.png and frame1.png (FLOW_INTERVAL_S = 0.125 s apart) and audio.wav (any rate, resampled).
Output: a PNG with the camera frame, the heatmap and their overlay side by side.
"""
from __future__ import annotations

import argparse
import sys
import time
import wave
from pathlib import Path

import cv2
import numpy as np
import torch

from flowgrad import checkpoint, models
from flowgrad.audio import newest_window, resample
from flowgrad.errors import InputError
from flowgrad.flow import FLOW_INTERVAL_S, RollingFlow, RollingFlowConfig
from flowgrad.inputs import model_inputs

from .assets import DEMO_DIR, default_model
from .picture import blend, colourise, with_caption


class DemoError(InputError):
    """A problem with the demo's inputs, reported as one line."""


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV -> (mono float32 samples in [-1, 1], sample rate in Hz)."""
    try:
        with wave.open(str(path), "rb") as f:
            if f.getsampwidth() != 2:
                raise DemoError(f"{path}: only 16-bit PCM WAV is supported")
            data = np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32) / 32768
            return data.reshape(-1, f.getnchannels()).mean(axis=1), f.getframerate()
    except (wave.Error, EOFError, FileNotFoundError) as e:
        raise DemoError(f"{path}: cannot read audio ({e})") from None


def read_frame(path: Path) -> np.ndarray:
    """Image file -> (H, W, 3) uint8 BGR."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if img is None:
        raise DemoError(f"{path}: missing or not an image")
    return img


def load_model(spec: str):
    """A registry name (weights as initialised) or a FlowGrad checkpoint path."""
    try:
        model, trained = checkpoint.load_or_create(spec, allow_untrained=True)  # a note below says so
    except checkpoint.CheckpointError as e:
        raise DemoError(str(e)) from None
    if not trained and model.uses_audio:
        print(f"demo: note: {spec} is untrained here (random weights); pass a checkpoint for real maps")
    return model


def audio_window(samples: np.ndarray, rate: int, model) -> torch.Tensor:
    """The newest ``audio_seconds`` of audio at the model's rate, (1, T), zero-padded in front."""
    wave_t = resample(torch.from_numpy(samples)[None], rate, model.audio_rate)
    return newest_window(wave_t, round(model.audio_rate * model.audio_seconds))


def panels(frame_bgr: np.ndarray, heat: np.ndarray, caption: list[str]) -> np.ndarray:
    """Frame | heatmap | overlay side by side at the frame's size, captioned; heat: (h, w) in [0, 1]."""
    colour = colourise(heat, frame_bgr.shape[:2])
    row = np.concatenate([frame_bgr, colour, blend(frame_bgr, heat)], axis=1)
    return with_caption(row, caption)


def localise_scene(model, data_dir: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Run ``model`` on the scene in data_dir.

    Returns (frame0 as (H, W, 3) uint8 BGR, heatmap (224, 224) float32 in [0, 1]
    on the model's input grid, timings in ms).
    """
    f0, f1 = read_frame(data_dir / "frame0.png"), read_frame(data_dir / "frame1.png")
    if f0.shape != f1.shape:
        raise DemoError(f"{data_dir}: frame0 and frame1 differ in size ({f0.shape} vs {f1.shape})")
    samples, rate = read_wav(data_dir / "audio.wav")
    start = time.perf_counter()
    # The papers' pairing, as live: Farneback (OpenCV) from frame0 to frame1, sampled on frame0.
    rolling = RollingFlow(RollingFlowConfig())
    rolling.push(f0, 0.0)
    flow = rolling.push(f1, FLOW_INTERVAL_S).per_interval()
    timings = {"flow": 1000 * (time.perf_counter() - start)}
    frame_in, flow_in = model_inputs(f0, flow, model.input_size)
    with torch.no_grad():
        start = time.perf_counter()
        maps, _score = model.localise(torch.from_numpy(frame_in), torch.from_numpy(flow_in),
                                      audio_window(samples, rate, model))
        heat = maps[0].numpy()
        timings["model"] = 1000 * (time.perf_counter() - start)
    return f0, heat, timings


def run(model_spec: str, data_dir: Path, out: Path) -> Path:
    """Localise the sound in the demo scene and write the overlay; returns its path."""
    model = load_model(model_spec)
    f0, heat, ms = localise_scene(model, data_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    caption = [f"scene {data_dir}   model {model.name}",
               "left: frame   middle: heatmap   right: heatmap over the frame"]
    if not cv2.imwrite(str(out), panels(f0, heat, caption)):
        raise DemoError(f"{out}: cannot write the image")
    sy, sx = f0.shape[0] / heat.shape[0], f0.shape[1] / heat.shape[1]
    iy, ix = np.unravel_index(np.argmax(heat), heat.shape)
    print(
        f"demo: {model.name}: peak at x={ix * sx:.0f}, y={iy * sy:.0f} px of the {f0.shape[1]}x{f0.shape[0]} frame; "
        f"flow {ms['flow']:.0f} ms, model {ms['model']:.0f} ms; wrote {out}"
    )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m realtime.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=default_model(),
        help=f"registry name ({', '.join(models.names())}) or a FlowGrad .ckpt file "
             f"(default: the shipped demo model, or flow_only without it)",
    )
    parser.add_argument("--data", type=Path, default=DEMO_DIR, help="folder with frame0.png, frame1.png, audio.wav")
    parser.add_argument("--out", type=Path, default=Path("demo_out/heatmap.png"), help="output PNG")
    args = parser.parse_args(argv)
    try:
        run(args.model, args.data, args.out)
    except InputError as e:  # bad input: one line; anything else is a bug and shows as one
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
