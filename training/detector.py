"""The vision-only + class filter + temporal filter baseline (FlowGrad paper; REFERENCE section 6).

A COCO object detector's boxes are kept if they are vehicles (car, motorcycle,
bus, truck), then every box of frame f whose IoU with a box of frame f + 1 exceeds
0.95 is taken as stationary and both boxes are dropped; the union of what is left
is the map. No weights ship: :class:`OnnxDetector` runs any detector exported to
ONNX in :class:`DetectorOutputFormat`; everything else is pure computation on
detection arrays.

Detections everywhere here: (N, 6) float32 rows [x1, y1, x2, y2, score, class_id],
corners in pixels of the camera frame, class_id in the 0-based 80-class COCO
convention (what YOLO-family exporters emit); :func:`coco91_to_coco80` converts
the 1-based 91-id convention (torchvision, the COCO annotation files).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from flowgrad.errors import InputError

from .metrics import boxes_to_mask

# The 80 ids COCO uses in its 1-based 91-id numbering (11 ids were never annotated);
# position in this tuple = the 0-based 80-class id.
COCO91_IDS = (
    tuple(range(1, 12)) + tuple(range(13, 26)) + (27, 28) + tuple(range(31, 45)) + tuple(range(46, 66))
    + (67, 70) + tuple(range(72, 83)) + tuple(range(84, 91))
)
VEHICLE_CLASSES_COCO91 = {3: "car", 4: "motorcycle", 6: "bus", 8: "truck"}
VEHICLE_CLASSES = {2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}  # 0-based 80-class: the format's convention
CONVENTIONS = ("coco80", "coco91")


class DetectorError(InputError):
    """A detector file or its output does not follow :class:`DetectorOutputFormat`."""


def coco91_to_coco80(ids: np.ndarray) -> np.ndarray:
    """1-based 91-id COCO class ids -> 0-based 80-class ids (int64 array, same shape).

    Raises ValueError for an id COCO never used (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, ...).
    """
    ids = np.asarray(ids).astype(np.int64)
    table = np.full(92, -1, dtype=np.int64)
    table[list(COCO91_IDS)] = np.arange(80)
    bad = (ids < 0) | (ids > 91)
    mapped = table[np.where(bad, 0, ids)]
    if bad.any() or (mapped < 0).any():
        raise ValueError(f"not a COCO 91-id class in use: {sorted(set(ids[bad | (mapped < 0)].tolist()))}")
    return mapped


@dataclass(frozen=True)
class DetectorOutputFormat:
    """What an ONNX detector must take and give to serve as the baseline's detector.

    Input: one tensor (1, 3, S, S) float32, RGB in [0, 1], S = input_size; the
    camera frame is letterboxed: resized by S / max(W, H) keeping its aspect
    (bilinear), centred, and the border filled with pad_value (114 / 255, the
    YOLO convention).
    Output: its first output, (N, 6) float32 rows [x1, y1, x2, y2, score,
    class_id] with corners in pixels of that S x S input, after non-maximum
    suppression (export the detector with NMS inside), class_id in
    ``class_convention`` ("coco80": 0-based 80 classes; "coco91": 1-based ids).
    score_threshold: rows scoring below it are dropped.
    """

    input_size: int = 640
    class_convention: str = "coco80"
    score_threshold: float = 0.25
    pad_value: float = 114.0 / 255.0

    def __post_init__(self):
        if self.input_size < 1:
            raise ValueError(f"input_size must be >= 1, got {self.input_size}")
        if self.class_convention not in CONVENTIONS:
            raise ValueError(f"class_convention must be one of {CONVENTIONS}, got {self.class_convention!r}")


def letterbox(frame_bgr: np.ndarray, fmt: DetectorOutputFormat) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Camera frame (H, W, 3) uint8 BGR -> (input (1, 3, S, S) float32 RGB [0, 1], scale, (pad_x, pad_y)).

    A point (u, v) of the input is the frame's ((u - pad_x) / scale, (v - pad_y) / scale).
    """
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
        raise ValueError(f"letterbox: expected an (H, W, 3) uint8 BGR frame, got {frame_bgr.shape} {frame_bgr.dtype}")
    h, w = frame_bgr.shape[:2]
    s = fmt.input_size
    scale = s / max(w, h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    pad_x, pad_y = (s - new_w) // 2, (s - new_h) // 2
    resized = cv2.resize(frame_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((s, s, 3), fmt.pad_value, dtype=np.float32)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized[:, :, ::-1] / np.float32(255.0)
    return canvas.transpose(2, 0, 1)[None].copy(), scale, (pad_x, pad_y)


class OnnxDetector:
    """Runs an ONNX detector in :class:`DetectorOutputFormat` with onnxruntime (CPU).

    input_size: the square input side S in pixels; None = read from the graph
    (640 when its input size is symbolic).
    ``detector(frame_bgr)`` with an (H, W, 3) uint8 BGR frame returns detections
    (N, 6) float32 [x1, y1, x2, y2, score, class_id] in pixels of that frame
    (clipped to it), class ids 0-based 80-class, rows below score_threshold dropped.
    """

    def __init__(self, path: str | Path, input_size: int | None = None, score_threshold: float = 0.25,
                 class_convention: str = "coco80"):
        import onnxruntime  # imported here: only the wrapper needs it

        self.path = Path(path)
        if not self.path.is_file():
            raise DetectorError(f"{self.path}: no such detector file; export a COCO detector to ONNX first")
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise DetectorError(f"{self.path}: not a loadable ONNX model ({err})") from err
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise DetectorError(f"{self.path}: expected one (1, 3, S, S) input, got {[i.shape for i in inputs]}")
        self.input_name = inputs[0].name
        if input_size is None:  # the graph's own square size when it is fixed, else the usual 640
            side = inputs[0].shape[-1]
            input_size = side if isinstance(side, int) and side > 0 else 640
        self.format = DetectorOutputFormat(input_size, class_convention, score_threshold)

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        image, scale, (pad_x, pad_y) = letterbox(frame_bgr, self.format)
        out = np.asarray(self.session.run(None, {self.input_name: image})[0], dtype=np.float32)
        if out.ndim != 2 or out.shape[1] != 6:
            raise DetectorError(f"{self.path}: output must be (N, 6) [x1, y1, x2, y2, score, class], got {out.shape}")
        dets = out[out[:, 4] >= self.format.score_threshold].copy()
        h, w = frame_bgr.shape[:2]
        dets[:, [0, 2]] = np.clip((dets[:, [0, 2]] - pad_x) / scale, 0, w)
        dets[:, [1, 3]] = np.clip((dets[:, [1, 3]] - pad_y) / scale, 0, h)
        if self.format.class_convention == "coco91":
            dets[:, 5] = coco91_to_coco80(dets[:, 5])
        return dets


def _check_dets(dets: np.ndarray) -> np.ndarray:
    """Detections as an (N, 6) float32 array, or ValueError."""
    dets = np.asarray(dets, dtype=np.float32)
    if dets.size == 0:
        dets = dets.reshape(0, 6)  # an empty list has no columns to check
    if dets.ndim != 2 or dets.shape[1] != 6:
        raise ValueError(f"detections must be (N, 6) [x1, y1, x2, y2, score, class_id], got {dets.shape}")
    return dets


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), corners [x1, y1, x2, y2]
    in the same pixels; areas are (x2 - x1) (y2 - y1). Returns (N, M) float64."""
    a = np.asarray(a, dtype=np.float64)[:, None, :]
    b = np.asarray(b, dtype=np.float64)[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def class_filter(dets: np.ndarray, classes=VEHICLE_CLASSES) -> np.ndarray:
    """Rows of detections (N, 6) whose class_id (0-based 80-class) is in ``classes``."""
    dets = _check_dets(dets)
    return dets[np.isin(dets[:, 5].astype(np.int64), list(classes))]


def temporal_filter(dets_f: np.ndarray, dets_f1: np.ndarray, iou_threshold: float = 0.95
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Drop stationary boxes: a box of frame f with IoU > iou_threshold to a box of
    frame f + 1 is stationary, and both boxes are dropped.

    dets_f, dets_f1: detections (N, 6), (M, 6) of consecutive frames, same pixels.
    Returns (kept of f, kept of f + 1). (The reference code keeps IoU < threshold,
    i.e. also drops IoU exactly equal to it; the paper says "greater than".)
    """
    dets_f, dets_f1 = _check_dets(dets_f), _check_dets(dets_f1)
    stationary = box_iou(dets_f[:, :4], dets_f1[:, :4]) > iou_threshold
    return dets_f[~stationary.any(axis=1)], dets_f1[~stationary.any(axis=0)]


def detections_to_map(dets: np.ndarray, frame_hw: tuple[int, int], out: int = 224) -> np.ndarray:
    """Binary union of the boxes of detections (N, 6) in pixels of the video frame, whose
    (H, W) in pixels is ``frame_hw``, on an out x out grid: (out, out) float32 in {0, 1}.

    Scaled with int() exactly as the ground truth (:func:`training.metrics.boxes_to_mask`)
    so prediction and truth share one rasterisation; corners are clipped at 0 first.
    """
    dets = _check_dets(dets)
    corners = np.clip(dets[:, :4].astype(np.float64), 0, None)
    boxes = [(x1, y1, max(x2 - x1, 0.0), max(y2 - y1, 0.0)) for x1, y1, x2, y2 in corners]
    return boxes_to_mask(boxes, frame_hw, out)


def baseline_map(dets_f: np.ndarray, dets_f1: np.ndarray, frame_hw: tuple[int, int], out: int = 224,
                 iou_threshold: float = 0.95) -> np.ndarray:
    """The vision-only+CF+TF map of frame f: class filter both frames, temporal
    filter, union of frame f's remaining boxes. frame_hw: (H, W) in pixels of the video
    frame. (out, out) float32 in {0, 1}."""
    kept, _ = temporal_filter(class_filter(dets_f), class_filter(dets_f1), iou_threshold)
    return detections_to_map(kept, frame_hw, out)
