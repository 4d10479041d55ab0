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


# SLAVC detection metrics. Five pairs, confidence highest first:
#   A positive cIoU 0.8 (0.9), B negative (0.8), C positive cIoU 0.2 (0.7: found in the wrong
#   place), D positive cIoU 0.6 (0.4), E negative (0.3). Three positives.
#   tau 0.9: TP 1 FP 0 FN 2 -> P 1,   R 1/3
#   tau 0.8: TP 1 FP 1 FN 2 -> P 1/2, R 1/3
#   tau 0.7: TP 1 FP 2 FN 1 -> P 1/3, R 1/2   (C moves from FN to FP)
#   tau 0.4: TP 2 FP 2 FN 0 -> P 1/2, R 1
#   tau 0.3: TP 2 FP 3 FN 0 -> P 2/5, R 1
# envelope 1, 1/2, 1/2, 1/2, 2/5 -> AP = 1/3 * 1 + 1/6 * 1/2 + 1/2 * 1/2 = 2/3
# F1: 1/2, 2/5, 2/5, 2/3, 4/7 -> max 2/3
HAND = dict(positive=[True, False, True, True, False], cious=[0.8, None, 0.2, 0.6, None],
            scores=[0.9, 0.8, 0.7, 0.4, 0.3])


def test_slavc_curve_ap_and_max_f1_hand_worked():
    from training.metrics import average_precision, max_f1, pr_curve

    thresholds, p, r = pr_curve(**HAND)
    assert thresholds.tolist() == [0.9, 0.8, 0.7, 0.4, 0.3]
    assert p.tolist() == pytest.approx([1, 1 / 2, 1 / 3, 1 / 2, 2 / 5])
    assert r.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 2, 1, 1])
    assert average_precision(**HAND) == pytest.approx(2 / 3)
    assert max_f1(**HAND) == pytest.approx(2 / 3)
    # Localisation matters: with C localised it is a true positive at 0.7.
    good = dict(HAND, cious=[0.8, None, 0.9, 0.6, None])
    assert average_precision(**good) > average_precision(**HAND)
    # A stricter cIoU rule drops D (0.6): only A is ever found, R = 1/3 .. 1/2 .. 1 with P from TP 1.
    assert average_precision(**HAND, ciou_at=0.7) < average_precision(**HAND)


def test_slavc_ties_share_one_threshold_and_degenerate_sets():
    from training.metrics import average_precision, loud_rate, max_f1, pr_curve

    # Both at 0.5: one point, TP 1 FP 1 FN 0 -> P 1/2, R 1; AP = 1/2.
    thresholds, p, r = pr_curve([True, False], [0.9, None], [0.5, 0.5])
    assert thresholds.tolist() == [0.5] and p.tolist() == [0.5] and r.tolist() == [1.0]
    assert average_precision([True, False], [0.9, None], [0.5, 0.5]) == pytest.approx(0.5)
    # A constant score (flow_only's 1) cannot rank: AP = the share of localised positives.
    assert average_precision([True, True, False, False], [0.9, 0.1, None, None], [1.0] * 4) == pytest.approx(0.25)
    assert np.isnan(average_precision([False, False], [None, None], [0.1, 0.2]))
    assert np.isnan(max_f1([False], [None], [0.3]))
    assert average_precision([True], [0.1], [0.3]) == 0.0  # found, never localised
    assert loud_rate([0.1, 0.5, 0.7, 0.2]) == 0.5 and np.isnan(loud_rate([]))
    with pytest.raises(ValueError, match="cIoU"):
        pr_curve([True], [None], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        pr_curve([True], [0.5], [float("nan")])
    with pytest.raises(ValueError, match="one length"):
        pr_curve([True, False], [0.5], [0.5, 0.1])


def _brute_force_ap_f1(positive, cious, scores, at=0.5):
    """SLAVC's rule counted pair by pair at every distinct threshold (no vectorising)."""
    points = []
    for tau in sorted(set(scores), reverse=True):
        tp = fp = fn = 0
        for pos, c, s in zip(positive, cious, scores):
            if s >= tau:
                if pos and c >= at:
                    tp += 1
                else:
                    fp += 1
            elif pos:
                fn += 1
        points.append((tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0))
    ap, prev = 0.0, 0.0
    for k, (_, r) in enumerate(points):
        ap += (r - prev) * max(p for p, _ in points[k:])
        prev = r
    f1 = max((2 * p * r / (p + r) if p + r else 0.0) for p, r in points)
    return ap, f1


def test_slavc_matches_a_brute_force_count_on_random_sets():
    from training.metrics import average_precision, max_f1

    rng = np.random.default_rng(0)
    for trial in range(30):
        n = int(rng.integers(1, 40))
        positive = rng.random(n) < 0.6
        positive[0] = True
        cious = [float(c) if p else None for p, c in zip(positive, rng.random(n))]
        scores = np.round(rng.random(n), 1 if trial % 2 else 6).tolist()  # odd trials have many ties
        ap, f1 = _brute_force_ap_f1(positive.tolist(), [c if c is not None else 0.0 for c in cious], scores)
        assert average_precision(positive, cious, scores) == pytest.approx(ap)
        assert max_f1(positive, cious, scores) == pytest.approx(f1)
