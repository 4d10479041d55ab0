"""training.metrics against hand-counted masks and hand-worked curves."""
import numpy as np
import pytest

from training.metrics import AUC_THRESHOLDS, auc, boxes_to_mask, ciou, success_curve, success_rate, summarise


def test_ciou_hand_counted():
    gt = np.zeros((4, 4))
    gt[0:2, 0:2] = 1  # 4 gt pixels: (0,0) (0,1) (1,0) (1,1)
    heat = np.zeros((4, 4))
    heat[0:2, 1:3] = 0.5  # exactly the threshold counts: (0,1) (0,2) (1,1) (1,2)
    heat[3, 3] = 0.49  # just below: not predicted
    # overlap (0,1) (1,1) = 2; predicted outside gt (0,2) (1,2) = 2 -> 2 / (4 + 2)
    assert ciou(heat, gt) == pytest.approx(1 / 3)
    # threshold 0.4 adds (3,3): 2 / (4 + 3)
    assert ciou(heat, gt, threshold=0.4) == pytest.approx(2 / 7)
    assert ciou(heat, gt.astype(bool)) == pytest.approx(1 / 3)


def test_ciou_soft_consensus_gt():
    gt = np.array([[1.0, 0.5], [0.0, 0.0]])
    heat = np.array([[0.9, 0.8], [0.7, 0.1]])  # predicted: (0,0) (0,1) (1,0)
    # numerator 1 + 0.5; denominator sum(gt) 1.5 + predicted where gt == 0: (1,0) -> 1
    assert ciou(heat, gt) == pytest.approx(1.5 / 2.5)


def test_ciou_edge_cases():
    gt = np.zeros((3, 3))
    gt[1, 1] = 1
    assert ciou(np.zeros((3, 3)), gt) == 0.0  # empty prediction
    assert ciou(np.ones((3, 3)), gt) == pytest.approx(1 / 9)  # everything predicted
    assert ciou(gt, gt) == 1.0
    assert ciou(np.ones((3, 3)), np.zeros((3, 3))) == 0.0  # empty gt, false alarms
    with pytest.raises(ValueError, match="empty gt and an empty prediction"):
        ciou(np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="same"):
        ciou(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        ciou(np.full((3, 3), np.nan), gt)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ciou(np.zeros((3, 3)), gt * 2)


def test_success_rate_curve_and_auc_hand_worked():
    cious = [0.0, 0.5, 1.0]
    assert success_rate(cious, 0.5) == pytest.approx(2 / 3)
    assert success_rate(cious, 0.3) == pytest.approx(2 / 3)
    assert success_rate(cious, 0.51) == pytest.approx(1 / 3)
    curve = success_curve(cious)
    assert len(AUC_THRESHOLDS) == 21 and AUC_THRESHOLDS[0] == 0 and AUC_THRESHOLDS[-1] == 1
    # t = 0: all 3; 0.05 .. 0.5: two; 0.55 .. 1.0: one
    assert curve.tolist() == pytest.approx([1.0] + [2 / 3] * 10 + [1 / 3] * 10)
    # trapezoids of width 0.05: (1 + 2/3)/2 + 9 * 2/3 + (2/3 + 1/3)/2 + 9 * 1/3
    assert auc(cious) == pytest.approx(0.05 * (5 / 6 + 6 + 0.5 + 3))
    assert auc([1.0, 1.0]) == pytest.approx(1.0)
    assert auc([0.0]) == pytest.approx(0.025)  # only the t = 0 point is 1
    assert success_curve(cious, [0.25, 0.75]).tolist() == pytest.approx([2 / 3, 1 / 3])


def test_summarise_names_both_papers_figures():
    s = summarise([0.2, 0.35, 0.6, 0.9])
    assert s == {"success@0.5": 0.5, "success@0.3": 0.75, "auc": pytest.approx(auc([0.2, 0.35, 0.6, 0.9])), "n": 4}
    with pytest.raises(ValueError, match="non-empty"):
        summarise([])


def test_boxes_to_mask_hand_counted():
    # frame 16 x 8 onto an 8 x 8 grid: x scales by 1/2, y by 1.
    # (2, 1, 5, 3): x1 = int(1.0) = 1, y1 = 1, w = int(2.5) = 2, h = 3 -> rows 1-3, cols 1-2: 6 px
    # (12, 6, 8, 4): x1 = 6, y1 = 6, w = 4, h = 4 -> clipped to rows 6-7, cols 6-7: 4 px
    # (2, 1, 2, 2): x1 = 1, y1 = 1, w = 1, h = 2 -> inside the first box: union unchanged
    mask = boxes_to_mask([(2, 1, 5, 3), (12, 6, 8, 4), (2, 1, 2, 2)], frame_hw=(8, 16), out=8)
    expected = np.zeros((8, 8), dtype=np.float32)
    expected[1:4, 1:3] = 1
    expected[6:8, 6:8] = 1
    assert mask.dtype == np.float32 and mask.shape == (8, 8)
    np.testing.assert_array_equal(mask, expected)


def test_boxes_to_mask_urbansas_scale():
    # 1280 x 720 -> 224: (640, 360, 128, 72) -> x1 = y1 = 112, w = h = int(22.4) = 22
    mask = boxes_to_mask([(640, 360, 128, 72)], frame_hw=(720, 1280))
    assert mask.shape == (224, 224) and mask.sum() == 22 * 22
    assert mask[112, 112] == 1 and mask[133, 133] == 1 and mask[134, 134] == 0 and mask[111, 112] == 0
    assert boxes_to_mask([], (720, 1280)).sum() == 0
    with pytest.raises(ValueError, match="negative"):
        boxes_to_mask([(-1, 0, 10, 10)], (720, 1280))
