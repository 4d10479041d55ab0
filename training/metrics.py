"""The papers' localisation metrics: cIoU, success rate, AUC (REFERENCE section 6).

Maps and ground truth are (H, W) numpy arrays on the same grid (224 x 224 in the
papers). Ground truth may be binary (Urbansas boxes) or soft in [0, 1] (Flickr
SoundNet's consensus maps); the cIoU formula serves both.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

# 0, 0.05, ..., 1.0 as i / 20 (the reference's 0.05 * i differs by an ulp at some
# i, which only matters for a cIoU exactly on a threshold).
AUC_THRESHOLDS = np.arange(21) / 20.0


def ciou(heatmap: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """Consensus IoU of one map.

    heatmap: (H, W) float map (min-max normalised in the papers); bin = heatmap >= threshold.
    gt: (H, W) ground truth, bool or float in [0, 1] (soft consensus maps allowed).
    cIoU = sum(bin * gt) / (sum(gt) + sum(bin * (gt == 0))).

    Empty ground truth with a non-empty prediction gives 0 (the formula). Empty
    ground truth AND empty prediction leaves it undefined (0 / 0): ValueError,
    since evaluation frames must contain a sounding source (REFERENCE section 6).
    """
    heatmap = np.asarray(heatmap, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if heatmap.ndim != 2 or heatmap.shape != gt.shape:
        raise ValueError(f"ciou: heatmap and gt must be the same (H, W), got {heatmap.shape} and {gt.shape}")
    if not np.isfinite(heatmap).all():
        raise ValueError("ciou: heatmap holds NaN or infinite values")
    if gt.min(initial=0.0) < 0 or gt.max(initial=0.0) > 1:
        raise ValueError("ciou: gt must lie in [0, 1]")
    binary = (heatmap >= threshold).astype(np.float64)
    denominator = gt.sum() + (binary * (gt == 0)).sum()
    if denominator == 0:
        raise ValueError("ciou: undefined for an empty gt and an empty prediction; drop frames without ground truth")
    return float((binary * gt).sum() / denominator)


def binarise_median(heatmap: np.ndarray) -> np.ndarray:
    """LVS / Hear The Flow binarisation: the map's top half of pixels -> (H, W) float64 in {0, 1}.

    heatmap: (H, W) float. As their evaluation code: min-max normalise, take
    the value at sorted position int(H * W / 2) as the threshold, keep pixels
    strictly above it and pixels at the maximum (1 after normalising). Ties at
    the threshold are therefore dropped, so a map with many equal values keeps
    fewer than half. A constant map keeps every pixel (their code does too).
    """
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if heatmap.ndim != 2 or heatmap.size == 0:
        raise ValueError(f"binarise_median: expected a non-empty (H, W) map, got {heatmap.shape}")
    if not np.isfinite(heatmap).all():
        raise ValueError("binarise_median: heatmap holds NaN or infinite values")
    low, high = heatmap.min(), heatmap.max()
    if high == low:
        return np.ones_like(heatmap)
    pred = (heatmap - low) / (high - low)
    threshold = np.sort(pred, axis=None)[int(pred.size / 2)]
    return ((pred > threshold) | (pred >= 1.0)).astype(np.float64)


def _as_cious(cious: Iterable[float]) -> np.ndarray:
    values = np.asarray(list(cious), dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("expected a non-empty 1-D sequence of cIoU values")
    return values


def success_rate(cious: Iterable[float], at: float) -> float:
    """Fraction of samples whose cIoU is >= ``at`` (the papers' "cIoU_at")."""
    return float((_as_cious(cious) >= at).mean())


def success_curve(cious: Iterable[float], thresholds: Sequence[float] = AUC_THRESHOLDS) -> np.ndarray:
    """Success rate at each threshold: (len(thresholds),) float64, for plots and the AUC."""
    values = _as_cious(cious)
    return np.array([(values >= t).mean() for t in thresholds], dtype=np.float64)


def auc(cious: Iterable[float]) -> float:
    """Area under the success curve over the 21 thresholds 0, 0.05, ..., 1 (trapezoid, x in [0, 1])."""
    rates = success_curve(cious)
    return float(np.sum((rates[1:] + rates[:-1]) / 2 * np.diff(AUC_THRESHOLDS)))


def summarise(cious: Iterable[float]) -> dict:
    """The figures both papers report, named: success at 0.5 (RCGrad, LVS, HTF),
    success at 0.3 (FlowGrad's evaluation code), AUC, and the sample count n."""
    values = _as_cious(cious)
    return {
        "success@0.5": success_rate(values, 0.5),
        "success@0.3": success_rate(values, 0.3),
        "auc": auc(values),
        "n": int(values.size),
    }


def boxes_to_mask(boxes: Iterable[Sequence[float]], frame_hw: tuple[int, int], out: int = 224) -> np.ndarray:
    """Binary union of boxes, as the reference builds Urbansas ground truth.

    boxes: (x, y, w, h) each, top-left corner and size in pixels of the video frame;
    frame_hw: (H, W) in pixels of that frame ((720, 1280) for Urbansas). Each value is scaled to the
    out x out grid and truncated with int(), in the reference's order
    (int(x / W * out)); the box covers rows y1 .. y1 + h' - 1 and columns
    x1 .. x1 + w' - 1, clipped at the grid's edge. Returns (out, out) float32 in {0, 1}.
    Boxes with negative values raise ValueError (the reference drops such boxes first).
    """
    height, width = frame_hw
    if width <= 0 or height <= 0:
        raise ValueError(f"boxes_to_mask: frame_hw must be positive (H, W), got {frame_hw}")
    mask = np.zeros((out, out), dtype=np.float32)
    for box in boxes:
        if len(box) != 4 or min(box) < 0:
            raise ValueError(f"boxes_to_mask: box must be (x, y, w, h) with no negative value, got {tuple(box)}")
        x, y, w, h = box
        x1, y1 = int(x / width * out), int(y / height * out)
        mask[y1 : y1 + int(h / height * out), x1 : x1 + int(w / width * out)] = 1.0
    return mask


# --- Detection with negatives: SLAVC's AP and max-F1 ------------------------------------------
# Mo & Morgado, "A Closer Look at Weakly-Supervised Audio-Visual Source Localization"
# (NeurIPS 2022), section 4 and their evaluation code. Each pair has a confidence (our
# sounding score) and is either positive (a source sounds in the frame) or negative. At a
# confidence threshold tau a pair is "detected" when its confidence >= tau:
#   positive, detected, cIoU >= ciou_at  -> true positive  (found AND localised)
#   positive, detected, cIoU <  ciou_at  -> false positive (found in the wrong place)
#   positive, not detected               -> false negative
#   negative, detected                   -> false positive
# precision = TP / (TP + FP) (1 when nothing is detected), recall = TP / (TP + FN)
# (1 when TP + FN = 0). Their code sweeps at most 200 of the sorted confidences and skips
# the highest; we use every distinct confidence, so small sets are exact.
SLAVC_CIOU = 0.5
LIVE_THRESHOLD = 0.5  # the live default --min-score: a score below it is "quiet"


def _detection_inputs(positive, cious, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    cious = np.asarray([np.nan if c is None else c for c in cious], dtype=np.float64)
    if not (positive.ndim == scores.ndim == cious.ndim == 1 and len(positive) == len(scores) == len(cious)):
        raise ValueError(f"positive, cious and scores must be 1-D and of one length, got "
                         f"{positive.shape}, {cious.shape}, {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores hold NaN or infinite values")
    if np.isnan(cious[positive]).any():
        raise ValueError("every positive pair needs a cIoU")
    return positive, cious, scores


def pr_curve(positive, cious, scores, ciou_at: float = SLAVC_CIOU) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SLAVC's precision and recall at every distinct confidence, highest first.

    positive: (N,) bool, the pair holds a sounding source. cious: (N,) cIoU of each pair
    (None or NaN allowed for negatives, whose cIoU is not used). scores: (N,) confidences.
    Returns (thresholds, precision, recall), each (M,) float64 for the M distinct scores in
    decreasing order; recall never decreases along them. Counting rule: module comment above.
    """
    positive, cious, scores = _detection_inputs(positive, cious, scores)
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    found = (positive & (np.nan_to_num(cious, nan=-1.0) >= ciou_at))[order]
    tp = np.cumsum(found)
    fp = np.cumsum(~found)  # negatives and mislocalised positives that are detected
    fn = positive.sum() - np.cumsum(positive[order])
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the last item of each run of tied scores
    tp, fp, fn = tp[last], fp[last], fn[last]
    precision = np.where(tp + fp == 0, 1.0, tp / np.maximum(tp + fp, 1))
    recall = np.where(tp + fn == 0, 1.0, tp / np.maximum(tp + fn, 1))
    return s[last], precision.astype(np.float64), recall.astype(np.float64)


def average_precision(positive, cious, scores, ciou_at: float = SLAVC_CIOU) -> float:
    """SLAVC's AP: area under the interpolated precision-recall curve of :func:`pr_curve`.

    AP = sum_k (R_k - R_{k-1}) * max_{j >= k} P_j over the thresholds in decreasing order,
    R_0 = 0 (the envelope is their code's ``precision_max``). Inputs as :func:`pr_curve`;
    NaN when there is no positive pair (recall is undefined).
    """
    positive, cious, scores = _detection_inputs(positive, cious, scores)
    if not positive.any():
        return float("nan")
    _, precision, recall = pr_curve(positive, cious, scores, ciou_at)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * envelope))


def max_f1(positive, cious, scores, ciou_at: float = SLAVC_CIOU) -> float:
    """SLAVC's max-F1: the largest 2PR / (P + R) over the thresholds of :func:`pr_curve`
    (0 where P + R = 0); NaN when there is no positive pair."""
    positive, cious, scores = _detection_inputs(positive, cious, scores)
    if not positive.any():
        return float("nan")
    _, p, r = pr_curve(positive, cious, scores, ciou_at)
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-300), 0.0)
    return float(f1.max())


def loud_rate(scores, threshold: float = LIVE_THRESHOLD) -> float:
    """Fraction of ``scores`` at or above ``threshold``: for negative pairs the false-positive
    rate of the live default (a score below it is shown "quiet"); NaN for no scores."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return float("nan")
    return float((scores >= threshold).mean())
