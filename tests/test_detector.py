"""training.detector on recorded (hand-written) detections and a hand-built ONNX graph."""
import numpy as np
import pytest

from helpers import fixed_detector
from training.detector import (
    COCO91_IDS,
    VEHICLE_CLASSES,
    VEHICLE_CLASSES_COCO91,
    DetectorError,
    DetectorOutputFormat,
    OnnxDetector,
    baseline_map,
    box_iou,
    class_filter,
    coco91_to_coco80,
    detections_to_map,
    letterbox,
    temporal_filter,
)

# Recorded detections of two consecutive frames, pixels of a 1280 x 720 frame,
# class ids 0-based 80-class (0 person, 2 car, 5 bus).
PARKED_CAR = [100, 100, 200, 150, 0.9, 2]
BUS_F = [300, 200, 500, 300, 0.8, 5]
BUS_F1 = [320, 200, 520, 300, 0.8, 5]  # moved 20 px right
PERSON = [50, 50, 70, 100, 0.95, 0]  # standing still, but not a vehicle
FRAME_F = np.array([PARKED_CAR, BUS_F, PERSON], dtype=np.float32)
FRAME_F1 = np.array([PARKED_CAR, BUS_F1, PERSON], dtype=np.float32)


def test_coco_class_conventions():
    assert len(COCO91_IDS) == 80 and len(set(COCO91_IDS)) == 80
    assert VEHICLE_CLASSES == {2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
    converted = coco91_to_coco80(np.array(list(VEHICLE_CLASSES_COCO91)))
    assert converted.tolist() == list(VEHICLE_CLASSES)
    assert coco91_to_coco80(np.array([1, 13, 90])).tolist() == [0, 11, 79]  # person, stop sign, toothbrush
    with pytest.raises(ValueError, match="12"):
        coco91_to_coco80(np.array([12]))


def test_box_iou_hand_computed():
    # bus: intersection 180 x 100 = 18000; union 20000 + 20000 - 18000 = 22000
    iou = box_iou(np.array([BUS_F[:4], PARKED_CAR[:4]]), np.array([BUS_F1[:4]]))
    assert iou[0, 0] == pytest.approx(18000 / 22000)
    assert iou[1, 0] == 0.0
    assert box_iou(np.array([PARKED_CAR[:4]]), np.array([PARKED_CAR[:4]]))[0, 0] == 1.0


def test_class_filter_keeps_vehicles_only():
    kept = class_filter(FRAME_F)
    np.testing.assert_array_equal(kept, FRAME_F[:2])
    assert class_filter([]).shape == (0, 6)
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        class_filter(np.zeros((2, 5)))


def test_temporal_filter_drops_the_parked_car_in_both_frames():
    kept_f, kept_f1 = temporal_filter(class_filter(FRAME_F), class_filter(FRAME_F1))
    np.testing.assert_array_equal(kept_f, np.float32([BUS_F]))
    np.testing.assert_array_equal(kept_f1, np.float32([BUS_F1]))


def test_temporal_filter_threshold_hand_computed():
    box = [0, 0, 100, 100, 0.9, 2]
    # shift 1 px: 99 * 100 / (20000 - 9900) = 0.980 > 0.95 -> stationary
    # shift 3 px: 97 * 100 / (20000 - 9700) = 0.942 < 0.95 -> moving
    one = [1, 0, 101, 100, 0.9, 2]
    three = [3, 0, 103, 100, 0.9, 2]
    f, f1 = temporal_filter([box], [one])
    assert len(f) == 0 and len(f1) == 0
    f, f1 = temporal_filter([box], [three])
    assert len(f) == 1 and len(f1) == 1
    f, f1 = temporal_filter([box], [])  # nothing in f + 1: nothing is stationary
    assert len(f) == 1 and f1.shape == (0, 6)


def test_detections_to_map_and_baseline_hand_counted():
    # bus at (300, 200)-(500, 300) of 1280 x 720 -> x1 = int(52.5) = 52, y1 = int(62.2) = 62,
    # w = int(35.0) = 35, h = int(31.1) = 31: 1085 pixels
    m = baseline_map(FRAME_F, FRAME_F1, frame_hw=(720, 1280))
    assert m.shape == (224, 224) and m.dtype == np.float32 and m.sum() == 35 * 31
    assert m[62, 52] == 1 and m[92, 86] == 1 and m[93, 86] == 0 and m[62, 87] == 0
    np.testing.assert_array_equal(detections_to_map([BUS_F], (720, 1280)), m)
    # a corner slightly outside the frame is clipped, not rejected
    assert detections_to_map([[-0.5, -2, 64, 36, 0.9, 2]], (720, 1280)).sum() == 11 * 11


def test_letterbox_places_rgb_and_padding():
    frame = np.zeros((64, 128, 3), dtype=np.uint8)
    frame[..., 0] = 255  # pure blue in BGR
    image, scale, (pad_x, pad_y) = letterbox(frame, DetectorOutputFormat(input_size=64))
    assert image.shape == (1, 3, 64, 64) and image.dtype == np.float32
    assert scale == 0.5 and (pad_x, pad_y) == (0, 16)
    np.testing.assert_allclose(image[0, :, 16:48], np.array([0, 0, 1.0])[:, None, None] * np.ones((3, 32, 64)))
    np.testing.assert_allclose(image[0, :, :16], 114 / 255)
    np.testing.assert_allclose(image[0, :, 48:], 114 / 255)


def test_onnx_detector_maps_back_to_frame_pixels(tmp_path):
    pytest.importorskip("onnxruntime")
    # input pixels of the 64 x 64 letterbox of a 128 x 64 frame: scale 0.5, pad_y 16
    rows = [
        [10, 20, 30, 40, 0.9, 2],  # -> frame (20, 8)-(60, 48)
        [0, 10, 70, 60, 0.5, 7],  # beyond the picture: clipped to the frame
        [5, 20, 15, 30, 0.1, 2],  # below the score threshold
    ]
    detector = OnnxDetector(fixed_detector(tmp_path / "d.onnx", rows), input_size=64, score_threshold=0.25)
    dets = detector(np.zeros((64, 128, 3), dtype=np.uint8))
    np.testing.assert_allclose(dets, [[20, 8, 60, 48, 0.9, 2], [0, 0, 128, 64, 0.5, 7]], rtol=1e-6)

    coco91 = OnnxDetector(fixed_detector(tmp_path / "e.onnx", [[10, 20, 30, 40, 0.9, 8]]), 64, 0.25, "coco91")
    assert coco91(np.zeros((64, 128, 3), dtype=np.uint8))[0, 5] == 7  # truck


def test_onnx_detector_clear_errors(tmp_path):
    pytest.importorskip("onnxruntime")
    with pytest.raises(DetectorError, match="no such detector file"):
        OnnxDetector(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(DetectorError, match="not a loadable ONNX model"):
        OnnxDetector(tmp_path / "junk.onnx")
    five = OnnxDetector(fixed_detector(tmp_path / "five.onnx", [[1, 2, 3, 4, 0.9]]), input_size=64)
    with pytest.raises(DetectorError, match=r"\(N, 6\)"):
        five(np.zeros((64, 64, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="class_convention"):
        DetectorOutputFormat(class_convention="voc")
