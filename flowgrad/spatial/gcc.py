"""GCC-PHAT: the time difference of arrival between two microphones.

Our own rather than ``pyroomacoustics.experimental.localization.tdoa``: that one
searches every lag (so a spurious peak beyond the pair's physical reach ``d / c``
can win), takes ``|cc|`` (a polarity flip wins too), and its ``interp`` upsampling
reorders the correlation with the un-upsampled length; here the search is limited to
the lags the pair can produce and the peak is refined by band-limited interpolation
near it only (bench/doa.py: faster than pyroomacoustics' whole upsampled correlation).
"""
from __future__ import annotations

import math

import numpy as np
import scipy.fft

from .fractional import sample_at

__all__ = ["gcc_phat"]

# Below this magnitude a cross-spectrum bin carries no phase worth whitening.
_EPS = 1e-12
# Samples each side of the peak the refinement reads (the interpolation kernel's reach).
_SINC_REACH = 40


def gcc_phat(x: np.ndarray, y: np.ndarray, sample_rate: int, max_delay_s: float | None = None,
             upsample: int = 16) -> tuple[float, float]:
    """The delay of ``y`` relative to ``x``, by GCC-PHAT.

    x, y: ``(n,)`` and ``(m,)`` float samples at ``sample_rate`` Hz.
    max_delay_s: search only delays in ``[-max_delay_s, max_delay_s]`` seconds (the
        microphone spacing / 343 m/s); None: any delay the signals' lengths allow.
    upsample: near its peak the correlation is evaluated on a grid ``upsample`` times
        finer than the sampling period (windowed-sinc interpolation), then refined by a parabola.
    Returns ``(delay_s, peak)``: ``delay_s > 0`` when ``y`` hears the sound later
    than ``x`` (``y(t) = x(t - delay_s)``), and the peak of the phase-transformed
    correlation (1 for identical signals up to the delay, about 0 for unrelated ones).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 1 or y.ndim != 1 or not len(x) or not len(y):
        raise ValueError(f"gcc_phat: expected two non-empty 1-D signals, got shapes {x.shape} and {y.shape}")
    if isinstance(upsample, bool) or not isinstance(upsample, int) or upsample < 1:
        raise ValueError(f"gcc_phat: upsample must be a positive int, got {upsample!r}")
    n = scipy.fft.next_fast_len(len(x) + len(y), real=True)  # no circular wrap of any lag
    cross = scipy.fft.rfft(y, n) * np.conj(scipy.fft.rfft(x, n))
    cross /= np.maximum(np.abs(cross), _EPS)
    cc = scipy.fft.irfft(cross, n)  # 1 at the peak of a pure (circular) delay
    ahead = len(y) - 1 if max_delay_s is None else min(len(y) - 1, math.ceil(max_delay_s * sample_rate))
    behind = len(x) - 1 if max_delay_s is None else min(len(x) - 1, math.ceil(max_delay_s * sample_rate))
    lags = np.concatenate([cc[n - behind :], cc[: ahead + 1]]) if behind else cc[: ahead + 1]
    coarse = int(np.argmax(lags)) - behind
    # Band-limited refinement on a grid 1 / upsample of a sample fine, within one sample of
    # the coarse peak only (cheaper than upsampling the whole correlation).
    fine = coarse + np.arange(-upsample, upsample + 1) / upsample
    fine = fine[(fine >= -behind) & (fine <= ahead)]
    # The circular correlation around the peak (it goes on beyond the allowed lags).
    reach = math.ceil(_SINC_REACH)
    around = cc[np.arange(coarse - reach, coarse + reach + 1) % n]
    values = sample_at(around, fine - coarse + reach)
    best = int(np.argmax(values))
    frac = 0.0
    if 0 < best < len(values) - 1:  # parabolic refinement between the fine steps
        a, b, c = values[best - 1], values[best], values[best + 1]
        denominator = a - 2 * b + c
        frac = 0.5 * (a - c) / denominator / upsample if denominator < 0 else 0.0
    return float((fine[best] + frac) / sample_rate), float(values[best])
