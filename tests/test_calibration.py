"""flowgrad.calibration: Platt scaling against a known logistic truth and an independent fit,
its degenerate inputs, and the Brier score and AUROC it reports with."""
import numpy as np
import pytest
from scipy.optimize import minimize

from flowgrad.calibration import auroc, balanced_weights, brier, fit_platt, log_loss, platt_targets


def _logistic_sample(scale, bias, n, seed=0, loc=0.0, spread=1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(loc, spread, n)
    y = rng.random(n) < 1 / (1 + np.exp(-(scale * x + bias)))
    return x, y


@pytest.mark.parametrize("scale, bias, loc, spread", [(3.0, -1.0, 0.0, 1.0), (40.0, -30.0, 0.75, 0.05),
                                                      (-2.0, 20.0, 10.0, 2.0)])
def test_recovers_a_known_logistic_truth(scale, bias, loc, spread):
    """With many samples drawn from sigmoid(scale * x + bias), the fit finds scale and bias
    (also on evidence far from 0 with a small spread, as cosines are)."""
    x, y = _logistic_sample(scale, bias, 200_000, loc=loc, spread=spread)
    got_scale, got_bias = fit_platt(x, y)
    assert got_scale == pytest.approx(scale, rel=0.05)
    # the bias is only known as well as the decision point -bias/scale
    assert -got_bias / got_scale == pytest.approx(-bias / scale, abs=0.02 * spread)


@pytest.mark.parametrize("weighted", [False, True])
def test_matches_an_independent_minimisation_of_the_log_loss(weighted):
    x, y = _logistic_sample(5.0, 2.0, 300, seed=3)
    y[:40] = False  # an unbalanced set
    w = balanced_weights(y) if weighted else None
    t = platt_targets(y)
    ref = minimize(lambda p: log_loss(p[0], p[1], x, t, w), x0=[0.0, 0.0], method="Nelder-Mead",
                   options={"xatol": 1e-9, "fatol": 1e-13, "maxiter": 20000}).x
    got = fit_platt(x, y, w)
    assert np.allclose(got, ref, atol=1e-4), (got, ref)
    assert log_loss(*got, x, t, w) <= log_loss(*ref, x, t, w) + 1e-12


def test_separable_data_gives_a_finite_fit():
    """Without Platt's smoothed targets the likelihood of separated classes grows for ever."""
    x = np.r_[np.linspace(0, 1, 50), np.linspace(2, 3, 50)]
    y = np.r_[np.zeros(50, bool), np.ones(50, bool)]
    scale, bias = fit_platt(x, y)
    assert np.isfinite([scale, bias]).all() and scale > 0
    p = 1 / (1 + np.exp(-(scale * x + bias)))
    assert p[y].min() > 0.85 and p[~y].max() < 0.15


def test_targets_and_balanced_weights():
    y = np.array([True, True, True, False])
    assert np.allclose(platt_targets(y), [0.8, 0.8, 0.8, 1 / 3])
    w = balanced_weights(y)
    assert w[y].sum() == pytest.approx(w[~y].sum()) == pytest.approx(2.0)


@pytest.mark.parametrize("evidence, labels, match", [
    ([0.1, 0.2, 0.3], [True, True, True], "positives and negatives, got 3 positives and 0"),
    ([0.1, 0.2], [False, False], "got 0 positives and 2 negatives"),
    ([0.5, 0.5, 0.5, 0.5], [True, False, True, False], "constant"),
    ([0.1, np.nan], [True, False], "NaN or infinite"),
    ([0.1, 0.2], [True], "same length"),
    ([0.1, 0.2], [1, 0], "booleans"),
])
def test_degenerate_inputs_are_clear_errors(evidence, labels, match):
    with pytest.raises(ValueError, match=match) as excinfo:
        fit_platt(np.array(evidence), np.array(labels))
    assert "\n" not in str(excinfo.value)


def test_brier_and_auroc():
    y = np.array([True, False, True, False])
    assert brier([1, 0, 1, 0], y) == 0.0 and brier([0.5] * 4, y) == 0.25
    assert auroc([3, 4], [1, 2]) == 1.0 and auroc([1, 2], [3, 4]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5  # ties count one half
    assert auroc([2, 0], [1]) == 0.5
    with pytest.raises(ValueError):
        auroc([], [1])
