"""GCC-PHAT: the time difference of arrival between two microphones.

Our own rather than ``pyroomacoustics.experimental.localization.tdoa``: that one
searches every lag (so a spurious peak beyond the pair's physical reach ``d / c``
can win), takes ``|cc|`` (a polarity flip wins too), and its ``interp`` upsampling
reorders the correlation with the un-upsampled length; here the search is limited to
the lags the pair can produce and the peak is refined by band-limited upsampling.
"""
from __future__ import annotations

import numpy as np

__all__ = ["gcc_phat"]

# Below this magnitude a cross-spectrum bin carries no phase worth whitening.
_EPS = 1e-12


def gcc_phat(x: np.ndarray, y: np.ndarray, sample_rate: int, max_delay_s: float | None = None,
             upsample: int = 16) -> tuple[float, float]:
    """The delay of ``y`` relative to ``x``, by GCC-PHAT.

    x, y: ``(n,)`` and ``(m,)`` float samples at ``sample_rate`` Hz.
    max_delay_s: search only delays in ``[-max_delay_s, max_delay_s]`` seconds (the
        microphone spacing / 343 m/s); None: any delay the signals' lengths allow.
    upsample: the correlation is evaluated on a grid ``upsample`` times finer than
        the sampling period (band-limited interpolation by zero-padding the spectrum).
    Returns ``(delay_s, peak)``: ``delay_s > 0`` when ``y`` hears the sound later
    than ``x`` (``y(t) = x(t - delay_s)``), and the peak of the phase-transformed
    correlation (1 for identical signals up to the delay, about 0 for unrelated ones).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 1 or y.ndim != 1 or not len(x) or not len(y):
        raise ValueError(f"gcc_phat: expected two non-empty 1-D signals, got shapes {x.shape} and {y.shape}")
    if isinstance(upsample, bool) or not isinstance(upsample, int) or upsample < 1:
        raise ValueError(f"gcc_phat: upsample must be a positive int, got {upsample!r}")
    n = len(x) + len(y)  # no circular wrap of any lag
    cross = np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n))
    cross /= np.maximum(np.abs(cross), _EPS)
    cc = np.fft.irfft(cross, n * upsample) * upsample  # peak 1 for a pure delay
    reach = len(y) * upsample - 1 if max_delay_s is None else min(
        len(y) * upsample - 1, int(np.ceil(max_delay_s * sample_rate * upsample)))
    back = min(len(x) * upsample - 1, reach if max_delay_s is not None else len(x) * upsample - 1)
    # Lags -back .. reach in upsampled steps; negative lags sit at the end of the circular result.
    lags = np.concatenate([cc[len(cc) - back:], cc[: reach + 1]])
    best = int(np.argmax(lags))
    # Parabolic refinement of the upsampled peak (a fraction of one upsampled step).
    frac = 0.0
    if 0 < best < len(lags) - 1:
        a, b, c = lags[best - 1], lags[best], lags[best + 1]
        denominator = a - 2 * b + c
        frac = 0.5 * (a - c) / denominator if denominator < 0 else 0.0
    delay = (best - back + frac) / (sample_rate * upsample)
    return float(delay), float(lags[best])
