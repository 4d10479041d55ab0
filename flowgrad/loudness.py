"""A-weighted sound level of an audio window (IEC 61672-1 A-weighting, designed with scipy).

Conventions used everywhere here:

* ``wave`` is a float waveform, ``(T,)`` mono or ``(C, T)`` with channels first, samples at
  ``rate`` Hz, full scale = amplitude 1.0.
* Levels are **dBFS(A)**: ``20 * log10(rms)`` of the A-weighted wave, RMS taken over every sample
  of every channel, re an RMS of 1.0. A full-scale 1 kHz sine (amplitude 1.0, RMS 1/sqrt(2)) reads
  -3.01 dBFS(A); a sine of amplitude A at 1 kHz reads ``20 * log10(A / sqrt(2))``.
* With a microphone calibration ``calibration_db`` (the dBFS(A) reading of a 94 dB SPL, 1 kHz
  calibrator), levels are **dB(A) SPL**: ``level_dbfs - calibration_db + 94``.
* Silence (or anything below it) reads ``LEVEL_FLOOR_DBFS`` = -120 dBFS(A) (translated the same
  way in dB(A) SPL), a finite number so that JSON can carry it.

The filter is the analog A-weighting of IEC 61672-1 (zeros at 0 Hz x4; poles at 20.6 Hz x2,
107.7 Hz, 737.9 Hz, 12194 Hz x2) mapped to digital with the bilinear transform and normalised
to 0 dB at 1 kHz. The bilinear transform compresses the response towards Nyquist: at 48 kHz the
response stays within 0.1 dB of the IEC table up to 5 kHz and within the class 1 tolerances up to
20 kHz; at 22.05 kHz (htf) within 0.1 dB up to 3.15 kHz and class 1 up to 6.3 kHz; at 16 kHz
(the flowgrad family) within 0.1 dB up to 2 kHz and class 1 up to 4 kHz, above which it falls
short (6.3 kHz: 5.8 dB low). tests/test_loudness.py checks each.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["AWeighting", "a_weighted_level_db", "LEVEL_FLOOR_DBFS", "CALIBRATOR_SPL_DB", "level_ref"]

# IEC 61672-1 A-weighting pole frequencies in Hz (the zeros are four at 0 Hz)
_POLES_HZ = (20.6, 20.6, 107.7, 737.9, 12194.0, 12194.0)
LEVEL_FLOOR_DBFS = -120.0
CALIBRATOR_SPL_DB = 94.0
_FLOOR_RMS = 10.0 ** (LEVEL_FLOOR_DBFS / 20.0)


def level_ref(calibration_db: float | None) -> str:
    """The unit of levels computed with ``calibration_db``: "dBFS(A)" without one, else "dB(A) SPL"."""
    return "dBFS(A)" if calibration_db is None else "dB(A) SPL"


def _check_calibration(calibration_db) -> float | None:
    if calibration_db is None:
        return None
    if isinstance(calibration_db, bool) or not isinstance(calibration_db, (int, float)):
        raise ValueError(f"calibration_db must be a number (dBFS(A)), got {calibration_db!r}")
    if not math.isfinite(calibration_db):
        raise ValueError(f"calibration_db must be finite, got {calibration_db!r}")
    return float(calibration_db)


class AWeighting:
    """The A-weighting filter for one sample rate, designed once; ``level_db`` measures a wave.

    ``rate``: sample rate in Hz (integer, >= 1000: the filter needs the 1 kHz reference below
    Nyquist). ``calibration_db``: see the module docstring; None gives dBFS(A).
    """

    def __init__(self, rate: int, *, calibration_db: float | None = None):
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 2001:
            raise ValueError(f"rate must be an integer above 2000 Hz, got {rate!r}")
        self.rate = int(rate)
        self.calibration_db = _check_calibration(calibration_db)
        self.unit = level_ref(self.calibration_db)
        # imported here: scipy.signal takes ~0.6 s to import, which run_live's start-up and
        # models without audio (no level) should not pay
        from scipy import signal
        poles = [-2.0 * math.pi * f for f in _POLES_HZ]
        z, p, k = signal.bilinear_zpk([0.0] * 4, poles, 1.0, self.rate)
        # normalise the digital response (not the analog one) to exactly 0 dB at 1 kHz
        _, h = signal.freqz_zpk(z, p, k, worN=[1000.0], fs=self.rate)
        self.sos = signal.zpk2sos(z, p, k / abs(h[0]))

    def response_db(self, freqs_hz) -> np.ndarray:
        """The filter's gain in dB at ``freqs_hz`` (array-like of Hz, each below rate / 2)."""
        from scipy import signal

        _, h = signal.sosfreqz(self.sos, worN=np.asarray(freqs_hz, dtype=np.float64), fs=self.rate)
        return 20.0 * np.log10(np.maximum(np.abs(h), 1e-300))

    def level_db(self, wave) -> float:
        """The A-weighted level of ``wave`` ((T,) or (C, T) float, T >= 1) in ``self.unit``.

        Raises ValueError for NaN or Inf samples, an empty wave or a wrong shape.
        """
        x = np.asarray(wave, dtype=np.float64)
        if x.ndim not in (1, 2) or x.shape[-1] == 0:
            raise ValueError(f"wave must be (T,) or (C, T) with T >= 1, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("wave contains NaN or Inf samples: no level can be measured")
        from scipy import signal

        weighted = signal.sosfilt(self.sos, x, axis=-1)
        rms = math.sqrt(float(np.mean(weighted * weighted)))
        dbfs = 20.0 * math.log10(max(rms, _FLOOR_RMS))
        if self.calibration_db is None:
            return dbfs
        return dbfs - self.calibration_db + CALIBRATOR_SPL_DB


def a_weighted_level_db(wave, rate: int, *, calibration_db: float | None = None) -> float:
    """The A-weighted level of ``wave`` ((T,) or (C, T), at ``rate`` Hz): dBFS(A), or dB(A) SPL
    when ``calibration_db`` (dBFS(A) reading of a 94 dB calibrator) is given. Designs the filter
    on each call: hold an ``AWeighting`` to measure many windows at one rate."""
    return AWeighting(rate, calibration_db=calibration_db).level_db(wave)
