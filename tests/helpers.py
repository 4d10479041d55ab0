"""Helpers shared by several test files (a test file never imports another: tests/test_imports.py).

* models and exports: :func:`small_config`, :func:`make_inputs`, :func:`tamper` (an
  ONNX export with edited metadata), :func:`fixed_detector` (a hand-built ONNX detector);
* media: tiny synthetic footage and sound (a textured square moving over a texture,
  clicks) written as real H.264 / WAV files, and :func:`write_urbansas`, a tiny
  Urbansas root with hand-worked annotations;
* the live pipeline: :class:`ToneSource`, :func:`video_source`, :func:`pipeline_config`.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import wave
from pathlib import Path

import av
import cv2
import numpy as np
import onnx
import torch

from flowgrad import models
from training.data.urbansas import AUDIO_COLUMNS, VIDEO_COLUMNS

# --------------------------------------------------------------------------- models and exports


def small_config(name: str) -> dict:
    """Config for a fast test-size model of ``name`` (narrow width where the model has one)."""
    fields = {f.name for f in dataclasses.fields(models.config_class(name))}
    return {"width": 0.25} if "width" in fields else {}


def make_inputs(model, batch: int, seed: int = 0):
    """Random (frame, flow, wave) following the contract, deterministic per seed."""
    g = torch.Generator().manual_seed(seed)
    h, w = model.input_size
    frame = torch.rand(batch, 3, h, w, generator=g)
    flow = torch.randn(batch, 2, h, w, generator=g) * 4.0
    n = int(model.audio_rate * model.audio_seconds)
    wave = torch.randn(batch, n, generator=g) * 0.1
    return frame, flow, wave


def tamper(prefix, out, role="frame", **changes):
    """Copy the export at ``prefix`` to ``out`` with metadata entries of the ``role`` graph
    changed (a value: its JSON; None: the entry removed); returns ``out``."""
    for r in ("frame", "audio"):
        if Path(f"{prefix}.{r}.onnx").exists():
            shutil.copy(f"{prefix}.{r}.onnx", f"{out}.{r}.onnx")
    proto = onnx.load(f"{out}.{role}.onnx")
    meta = {p.key: p.value for p in proto.metadata_props}
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = json.dumps(value)
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, f"{out}.{role}.onnx")
    return out


def fixed_detector(path, rows, size=64):
    """An ONNX graph (1, 3, size, size) -> constant rows, touching the input so it is used."""
    from onnx import TensorProto, helper, numpy_helper

    rows = np.asarray(rows, dtype=np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["rows", "nothing"], ["detections"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fixed_detections",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("detections", TensorProto.FLOAT, [None, rows.shape[1]])],
        initializer=[numpy_helper.from_array(rows, "rows"), numpy_helper.from_array(np.float32(0), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


# --------------------------------------------------------------------------- media

W, H = 192, 128  # fixture frame size, pixels
SECONDS = 6.0
SQUARE = 48  # side of the moving square, pixels
CLICKS = (3.2, 5.5)  # seconds of the two clicks in every fixture wav


def texture(h, w, seed):
    """Smooth random uint8 texture (Farneback needs structure to track)."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.5)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return (40 + 170 * noise).astype(np.uint8)


def moving_square_frames(fps, px_per_frame, n):
    """BGR frames: static texture, a textured square moving right ``px_per_frame`` px per frame
    from x = 20 (jumping back by 100 px where it would leave the frame)."""
    bg, sq = texture(H, W, 1), texture(SQUARE, SQUARE, 2)
    frames = []
    for i in range(n):
        img = bg.copy()
        x = square_x(i / fps, fps, px_per_frame)
        img[40:40 + SQUARE, x:x + SQUARE] = sq
        frames.append(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    return frames


def square_x(t, fps, px_per_frame):
    """Left edge, px, of the square at time t in the fixture video."""
    return 20 + (px_per_frame * round(t * fps)) % 100


def moving_texture_video(path, frames=75, size=(160, 96)):
    """A small MJPG AVI of a blurred random texture sliding 2 px right per frame, 25 fps;
    size is (W, H) as cv2.VideoWriter takes it. Returns ``path``."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur((rng.random(size[::-1]) * 200).astype(np.uint8), (0, 0), 2)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    for i in range(frames):
        writer.write(cv2.cvtColor(np.roll(background, 2 * i, axis=1), cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def write_video(path, frames, fps, audio=None, audio_rate=16000):
    """H.264 at ``fps`` in the container the suffix names; with ``audio`` ((N,) float32) also an AAC mono track."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": "8", "preset": "veryfast"})
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        aus = None if audio is None else out.add_stream("aac", rate=audio_rate, layout="mono")
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        if aus is not None:
            for k in range(0, len(audio), 1024):
                chunk = np.zeros((1, 1024), np.float32)
                piece = audio[k:k + 1024]
                chunk[0, :len(piece)] = piece
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                af.sample_rate, af.pts = audio_rate, k
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))


def clicks(rate, seconds=SECONDS, channels=1):
    """(channels, N) float: silence with a 0.5 click at each of CLICKS (same on every channel)."""
    a = np.zeros((channels, int(round(seconds * rate))), np.float32)
    for t in CLICKS:
        if t < seconds:
            a[:, round(t * rate)] = 0.5
    return a


def write_wav(path, audio, rate):
    """(C, N) float in [-1, 1] -> 16-bit PCM wav."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.round(audio.T * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(audio.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def write_csv(path, columns, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(",".join(columns) + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in rows))


def vrow(clip, t, x, y, w, h, vis=1):
    """A video_annotations.csv row in VIDEO_COLUMNS order."""
    return (int(t * 2) if t >= 0 else -1, 1, x, y, w, h, 1, vis, "car", clip, "city", 1, t, 0)


# Hand-worked selection (REFERENCE section 6). Events of c1: car 1.0-2.6 kept; offscreen 2.9-4.1
# dropped; non-identifiable 3.9-5.0 dropped; bus 4.5-5.5 kept. c2: car 0.0-3.0 kept.
AUDIO_ROWS = [
    ("c1", 1, "car", 0, 1.0, 2.6),
    ("c1", 4, "offscreen", 0, 2.9, 4.1),
    ("c1", 1, "car", 1, 3.9, 5.0),
    ("c1.wav", 2, "bus", 0, 4.5, 5.5),  # filename with suffix names the same clip
    ("c2", 1, "car", 0, 0.0, 3.0),
    ("c3", -1, "-1", 1, -1, -1),
]
BOX_A = (16, 8, 32, 24)
VIDEO_ROWS = [
    vrow("c1", -1, -1, -1, -1, -1, -1),  # clip-level row
    vrow("c1", 0.5, 10, 10, 20, 20),  # no event around 0.5 -> out
    vrow("c1", 1.0, 10, 10, 20, 20),  # t == start of the car event -> out
    vrow("c1", 1.5, *BOX_A),  # kept
    vrow("c1", 1.5, -2, 5, 10, 10),  # negative x -> box dropped
    vrow("c1", 1.5, 60, 5, 10, 10, vis=0),  # not fully visible -> box dropped
    vrow("c1", 2.0, 60, 5, 10, 10, vis=0),  # no box left at 2.0 -> no pair
    vrow("c1", 2.5, 0, 0, 8, 8),  # kept (1.0 < 2.5 < 2.6) with the next box
    vrow("c1", 2.5, 100, 40, 30, 20),
    vrow("c1", 3.0, 50, 50, 10, 10),  # only the offscreen event covers 3.0 -> out
    vrow("c1", 4.0, 50, 50, 10, 10),  # covered only by dropped events -> out
    vrow("c1", 4.5, 50, 50, 10, 10),  # t == start of the bus event -> out
    vrow("c1", 5.0, 50, 50, 10, 10),  # kept (4.5 < 5.0 < 5.5)
    vrow("c1", 5.5, 50, 50, 10, 10),  # t == end -> out
    vrow("c2", 1.0, 5, 5, 10, 10),  # kept by the rule, but c2 has no media
    vrow("c3", 1.0, 5, 5, 10, 10),  # c3's only event is dropped -> out
]


def write_urbansas(root: Path) -> Path:
    """A tiny Urbansas root at ``root``. c1: 8 fps square moving +2 px/frame, and a 24 fps copy with
    a STILL square (must not be used); c4: 24 fps only, +1 px/frame. Wavs: 16 kHz mono (c1), 48 kHz
    stereo (c4). Annotations: VIDEO_ROWS and AUDIO_ROWS."""
    n8, n24 = int(SECONDS * 8), int(SECONDS * 24)
    write_video(root / "video/video_8fps/c1.mp4", moving_square_frames(8, 2, n8), 8)
    write_video(root / "video/video_24fps/c1.mp4", moving_square_frames(24, 0, n24), 24)
    write_video(root / "video/video_24fps/c4.mp4", moving_square_frames(24, 1, n24), 24)
    write_wav(root / "audio/c1.wav", clicks(16000), 16000)
    write_wav(root / "audio/c4.wav", clicks(48000, channels=2), 48000)
    write_csv(root / "annotations/video_annotations.csv", VIDEO_COLUMNS, VIDEO_ROWS)
    write_csv(root / "annotations/audio_annotations.csv", AUDIO_COLUMNS, AUDIO_ROWS)
    return root


# --------------------------------------------------------------------------- the live pipeline


class ToneSource:
    """A minimal audio source writing a 440 Hz tone into the ring when started."""

    state = "live"
    stats = {}

    def __init__(self, ring):
        self.ring = ring

    def start(self, start_time=None):
        t = np.arange(self.ring.capacity) / self.ring.sample_rate
        self.ring.write((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))

    def stop(self):
        pass


def video_source(path, loop=True):
    """A VideoSource reading the file at ``path`` (looping by default)."""
    from realtime.video_source import VideoSource, VideoSourceConfig  # live-only: imported when used

    return VideoSource(VideoSourceConfig(str(path), loop=loop))


def pipeline_config(**kw):
    """A PipelineConfig with the tests' defaults (stream "test", status every 0.5 s, JPEG 70), ``kw`` on top."""
    from realtime.pipeline import PipelineConfig  # live-only: imported when used

    base = dict(stream="test", status_every_s=0.5, jpeg_quality=70)
    base.update(kw)
    return PipelineConfig(**base)
