"""int8 frame graphs for CPUs: static quantisation of an exported frame graph with onnxruntime.

The frame graph's convolutions (the ResNet trunks, about all of its time) are
quantised to int8 in QDQ form: weights per output channel (signed, symmetric),
activations per tensor (unsigned, with a zero point) from MinMax ranges
observed on calibration frames. Everything after the trunks (the closed-form
map with the audio embedding, attention softmax, post-processing) stays
float32, so the embedding needs no calibration. On x86 CPUs with AVX-512 VNNI
this runs the full-width FlowGrad-EN frame path about 3x faster than float32
(docs/BENCHMARKS.md); maps move by a few hundredths (tests/test_export_onnx.py).

The unsigned activations with zero points suit onnxruntime's CPU kernels
(signed symmetric activations ran slower than float32 there); TensorRT's
explicit quantisation wants symmetric int8, so for GPUs use export.trt --fp16.

Calibration frames come from a video (default: the bundled street clip): frames
evenly spaced in time, each with Farneback flow to the frame 0.125 s later, in
full-frame pixels per 0.125 s, the live pipeline's units.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from flowgrad.files import atomic_write
from flowgrad.errors import InputError
from flowgrad.flow import FLOW_INTERVAL_S, opencv_flow
from flowgrad.inputs import model_inputs
from flowgrad.onnx_meta import GraphMeta, write_props


class CalibrationError(InputError):
    """The calibration video cannot give the frames asked for; the message names it."""


def _read_at(capture, index: int, path: Path) -> np.ndarray:
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    if not ok or frame is None:
        raise CalibrationError(f"{path}: cannot decode frame {index}")
    return frame


def calibration_feeds(model, video: Path, frames: int = 16, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Frame-graph inputs for calibration, one dict per frame (batch 1).

    video: any file OpenCV reads. frames: how many, evenly spaced over the clip.
    Each dict: "frame" (1, 3, H, W) float32 RGB in [0, 1], "flow" (1, 2, H, W)
    float32 in full-frame pixels per 0.125 s, and for models using audio
    "audio_embedding" (1, embed_dim): the model's embedding of seeded noise
    (it only reaches float32 ops). (H, W) = model.input_size.
    Raises CalibrationError when the video is unreadable or too short.
    """
    video = Path(video)
    if frames < 1:
        raise CalibrationError(f"calibration needs at least 1 frame, got {frames}")
    capture = cv2.VideoCapture(str(video))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not capture.isOpened() or count < 2 or not fps or fps <= 0:
            raise CalibrationError(f"{video}: not a readable video with at least 2 frames and a frame rate")
        step = max(1, round(FLOW_INTERVAL_S * fps))
        if count <= step:
            raise CalibrationError(f"{video}: {count} frames, too short for a {FLOW_INTERVAL_S} s flow pair")
        starts = np.linspace(0, count - 1 - step, frames).round().astype(int)
        pairs = [(_read_at(capture, i, video), _read_at(capture, i + step, video)) for i in starts]
    finally:
        capture.release()
    scale = FLOW_INTERVAL_S * fps / step  # the pair's real spacing to the nominal 0.125 s
    feeds = []
    embedding = None
    if model.uses_audio:
        wave = torch.from_numpy(np.random.default_rng(seed).standard_normal(
            (1, round(model.audio_rate * model.audio_seconds))).astype(np.float32) * 0.1)
        with torch.no_grad():
            embedding = model.embed_audio(wave).numpy()
    for first, second in pairs:
        frame, flow = model_inputs(first, opencv_flow(first, second) * scale, model.input_size)
        feed = {"frame": frame, "flow": flow}
        if embedding is not None:
            feed["audio_embedding"] = embedding
        feeds.append(feed)
    return feeds


def quantize_frame_graph(fp32_path: Path, out_path: Path, feeds: list[dict[str, np.ndarray]],
                         source: str = "") -> Path | None:
    """Write an int8 (QDQ) copy of the float32 frame graph ``fp32_path`` to ``out_path``.

    feeds: calibration inputs (:func:`calibration_feeds`). source: what they
    came from, recorded in the metadata with ``precision: "int8"``. The
    flowgrad metadata of the float32 graph is kept. Returns ``out_path``, or
    None (nothing written) for a graph without convolutions (flow_only).
    """
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(feeds)

        def get_next(self):
            return next(self._feeds, None)

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    original = onnx.load(str(fp32_path), load_external_data=False)
    if not any(node.op_type == "Conv" for node in original.graph.node):
        return None  # nothing to quantise (flow_only): the float32 graph stays as it is
    meta = GraphMeta.parse({p.key: p.value for p in original.metadata_props}, fp32_path)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quantised = Path(tmp) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        quantize_static(str(prepared), str(quantised), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        op_types_to_quantize=["Conv"], activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        proto = onnx.load(str(quantised))
    calibration = f"{len(feeds)} frames of {source}" if source else f"{len(feeds)} frames"
    write_props(proto, dataclasses.replace(meta, precision="int8", calibration=calibration))
    proto.producer_name = "flowgrad.export.quantize"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_path) as handle:
        handle.write(proto.SerializeToString())
    return out_path
