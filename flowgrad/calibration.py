"""Calibrating the sounding score: Platt scaling of a model's raw evidence.

A model's score is ``sigmoid(scale * evidence + bias)``
(:meth:`flowgrad.models.base.Localiser.score_from_evidence`). :func:`fit_platt`
finds ``scale`` and ``bias`` from evidence of known positives (a sounding source
in view) and negatives by maximum likelihood, with Platt's smoothed targets
(positives (N+ + 1) / (N+ + 2), negatives 1 / (N- + 2)) so that perfectly
separated data still gives a finite fit. ``weights`` let each class weigh the
same however many examples it has. :func:`brier` and :func:`auroc` describe
how well a score does. Plain numpy; no torch.
"""
from __future__ import annotations

import numpy as np

__all__ = ["fit_platt", "fit_platt_balanced", "platt_targets", "log_loss", "brier", "auroc", "balanced_weights"]

_MAX_STEPS = 100


def _check(evidence, labels, weights=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(evidence, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"evidence and labels must be 1-D of the same length, got {x.shape} and {y.shape}")
    if y.dtype != bool:
        raise ValueError(f"labels must be booleans (True: positive), got dtype {y.dtype}")
    if not np.isfinite(x).all():
        raise ValueError(f"evidence holds {int((~np.isfinite(x)).sum())} NaN or infinite values")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != x.shape or not np.isfinite(w).all() or (w <= 0).any():
        raise ValueError("weights must be finite, positive and one per example")
    return x, y, w


def platt_targets(labels) -> np.ndarray:
    """(N,) bool -> (N,) float64 Platt targets: (N+ + 1) / (N+ + 2) for positives, 1 / (N- + 2) else."""
    y = np.asarray(labels, dtype=bool)
    pos, neg = int(y.sum()), int((~y).sum())
    return np.where(y, (pos + 1) / (pos + 2), 1 / (neg + 2))


def platt_probability(evidence, scale: float, bias: float) -> np.ndarray:
    """(N,) evidence -> (N,) float64 probabilities sigmoid(scale * evidence + bias) of a Platt fit."""
    return 1 / (1 + np.exp(-(scale * np.asarray(evidence, dtype=np.float64) + bias)))


def log_loss(scale: float, bias: float, evidence, targets, weights=None) -> float:
    """Weighted mean cross-entropy of sigmoid(scale * evidence + bias) against ``targets`` in [0, 1]."""
    x = np.asarray(evidence, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    z = scale * x + bias
    # -[t log s(z) + (1 - t) log(1 - s(z))] = log(1 + e^z) - t z, computed without overflow
    return float(np.sum(w * (np.logaddexp(0.0, z) - t * z)) / np.sum(w))


def balanced_weights(labels) -> np.ndarray:
    """(N,) bool -> (N,) weights that give both classes the same total weight (N / 2 each)."""
    y = np.asarray(labels, dtype=bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        raise ValueError(f"balanced weights need both classes, got {pos} positives and {neg} negatives")
    return np.where(y, len(y) / (2 * pos), len(y) / (2 * neg))


def fit_platt(evidence, labels, weights=None) -> tuple[float, float]:
    """Platt scaling: (scale, bias) maximising the likelihood of sigmoid(scale * evidence + bias).

    evidence: (N,) finite floats (a model's ``sounding_evidence``); labels: (N,) bool,
    True for positives; weights: optional (N,) positive weights (:func:`balanced_weights`).
    Newton's method on the weighted log loss against Platt's smoothed targets, from
    scale 0 and the bias of the base rate, halving any step that does not lower the loss.

    Raises ValueError, in one line, for mismatched or non-finite inputs, a set with one
    class only, or evidence that does not vary (nothing to scale).
    """
    x, y, w = _check(evidence, labels, weights)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        raise ValueError(f"calibration needs positives and negatives, got {pos} positives and {neg} negatives")
    spread = float(x.max() - x.min())
    if not spread > 1e-12 * max(1.0, float(np.abs(x).max())):
        raise ValueError(f"the evidence is constant ({x[0]:.6g} for all {len(x)} examples): nothing tells "
                         "positives from negatives")
    t = platt_targets(y)
    # work on standardised evidence (well-conditioned Newton steps), map back at the end
    centre, width = float(np.average(x, weights=w)), spread
    u = (x - centre) / width
    base = float(np.average(t, weights=w))
    params = np.array([0.0, np.log(base / (1 - base))])
    loss = log_loss(params[0], params[1], u, t, w)
    for _ in range(_MAX_STEPS):
        p = platt_probability(u, params[0], params[1])
        r = w * (p - t)
        grad = np.array([np.sum(r * u), np.sum(r)]) / np.sum(w)
        s = w * p * (1 - p)
        hess = np.array([[np.sum(s * u * u), np.sum(s * u)], [np.sum(s * u), np.sum(s)]]) / np.sum(w)
        step = np.linalg.solve(hess + 1e-12 * np.eye(2), grad)
        shrink = 1.0
        while True:
            trial = params - shrink * step
            trial_loss = log_loss(trial[0], trial[1], u, t, w)
            if trial_loss <= loss or shrink < 1e-8:
                break
            shrink /= 2
        converged = abs(loss - trial_loss) < 1e-14 and np.abs(shrink * step).max() < 1e-10
        params, loss = trial, trial_loss
        if converged:
            break
    scale = params[0] / width
    return float(scale), float(params[1] - scale * centre)


def fit_platt_balanced(evidence, labels) -> tuple[float, float]:
    """:func:`fit_platt` with both classes weighted equally (:func:`balanced_weights`): the
    calibrated score is then the probability of sounding under an even prior, whatever the mix
    of positives and negatives it was fitted on. How the project calibrates every score."""
    return fit_platt(evidence, labels, balanced_weights(labels))


def brier(probabilities, labels) -> float:
    """Mean squared difference of (N,) probabilities and (N,) bool labels (0 is perfect, 0.25 a coin)."""
    p = np.asarray(probabilities, dtype=np.float64)
    return float(np.mean((p - np.asarray(labels, dtype=np.float64)) ** 2))


def auroc(positives, negatives) -> float:
    """Area under the ROC curve: P(a positive's value > a negative's), ties counting 1/2.
    (P,) and (N,) floats, both non-empty; ValueError otherwise."""
    a, b = np.asarray(positives, dtype=np.float64).ravel(), np.asarray(negatives, dtype=np.float64).ravel()
    if not len(a) or not len(b):
        raise ValueError("auroc needs at least one positive and one negative")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([a, b]))  # ties get their average rank: they count 1/2
    return float((ranks[: len(a)].sum() - len(a) * (len(a) + 1) / 2) / (len(a) * len(b)))
