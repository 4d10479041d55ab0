"""A-weighting and level (flowgrad.loudness) against the IEC 61672-1 table and sines of known level."""

import math

import numpy as np
import pytest

from flowgrad.loudness import LEVEL_FLOOR_DBFS, AWeighting, a_weighted_level_db, level_ref

# IEC 61672-1 nominal A-weightings (dB) at the nominal third-octave frequencies; the exact
# frequencies are 1000 * 10 ** (n / 10) for n = -20 .. 13.
IEC_A = [
    -70.4, -63.4, -56.7, -50.5, -44.7, -39.4, -34.6, -30.2, -26.2, -22.5, -19.1, -16.1,
    -13.4, -10.9, -8.6, -6.6, -4.8, -3.2, -1.9, -0.8, 0.0, 0.6, 1.0, 1.2, 1.3, 1.2, 1.0,
    0.5, -0.1, -1.1, -2.5, -4.3, -6.6, -9.3,
]
# IEC 61672-1:2013 class 1 acceptance limits (+, -) in dB at the same frequencies
CLASS1 = [
    (3.5, math.inf), (3.0, math.inf), (2.5, 4.5), (2.5, 2.5), (2.5, 2.0), (2.0, 2.0), (1.5, 1.5),
    (1.5, 1.5), (1.5, 1.5), (1.5, 1.5), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0),
    (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (0.7, 0.7), (1.0, 1.0), (1.0, 1.0),
    (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1.5, 1.5), (1.5, 2.0), (1.5, 2.5), (2.0, 3.0),
    (2.0, 5.0), (2.5, 16.0), (3.0, math.inf),
]
FREQS = [1000.0 * 10 ** (n / 10) for n in range(-20, 14)]


def _errors(rate, up_to_hz):
    aw = AWeighting(rate)
    rows = [(f, a, tol) for f, a, tol in zip(FREQS, IEC_A, CLASS1) if f <= up_to_hz * 1.01]
    got = aw.response_db([f for f, _, _ in rows])
    return [(f, g - a, tol) for (f, a, tol), g in zip(rows, got)]


@pytest.mark.parametrize("rate, tight_hz, class1_hz", [(48000, 5000, 20000), (44100, 5000, 20000),
                                                     (22050, 3150, 6300), (16000, 2000, 4000)])
def test_response_matches_the_iec_table(rate, tight_hz, class1_hz):
    for f, err, _ in _errors(rate, tight_hz):
        assert abs(err) <= 0.1, (rate, f, err)
    for f, err, (plus, minus) in _errors(rate, class1_hz):
        assert -minus <= err <= plus, (rate, f, err)


def test_bilinear_warping_near_nyquist_at_16k_is_what_the_docs_say():
    # beyond 4 kHz at 16 kHz sampling the response falls off class 1 (6.3 kHz: about -5.8 dB off)
    (f, err, (plus, minus)), = [e for e in _errors(16000, 6300) if e[0] > 6000]
    assert err < -minus


def _sine(freq, amp, rate=48000, seconds=1.0, channels=None):
    t = np.arange(int(rate * seconds)) / rate
    x = amp * np.sin(2 * np.pi * freq * t)
    return x if channels is None else np.tile(x, (channels, 1))


@pytest.mark.parametrize("amp", [1.0, 0.3, 0.01])
@pytest.mark.parametrize("rate", [48000, 16000])
def test_1khz_sine_reads_its_rms_in_dbfs(amp, rate):
    assert a_weighted_level_db(_sine(1000, amp, rate), rate) == pytest.approx(20 * math.log10(amp / math.sqrt(2)), abs=0.1)


def test_full_scale_sine_is_minus_3_dbfs_and_channels_average():
    assert a_weighted_level_db(_sine(1000, 1.0, channels=2), 48000) == pytest.approx(-3.01, abs=0.1)
    stereo = np.stack([_sine(1000, 0.5), np.zeros(48000)])
    # one silent channel of two halves the mean power: 3 dB below the mono reading
    assert a_weighted_level_db(stereo, 48000) == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)) - 3.01, abs=0.1)


def test_100hz_reads_19_1_db_below_1khz():
    aw = AWeighting(48000)
    assert aw.level_db(_sine(100, 0.5)) - aw.level_db(_sine(1000, 0.5)) == pytest.approx(-19.1, abs=0.2)


def test_calibration_turns_dbfs_into_spl():
    wave = _sine(1000, 0.1)
    dbfs = a_weighted_level_db(wave, 48000)
    # a microphone whose 94 dB calibrator reads -20 dBFS(A): this wave is at dbfs + 114 dB SPL
    assert a_weighted_level_db(wave, 48000, calibration_db=-20.0) == pytest.approx(dbfs + 114.0, abs=1e-9)
    # the calibrator tone itself reads 94 dB(A) SPL
    cal = a_weighted_level_db(_sine(1000, 0.25), 48000)
    assert a_weighted_level_db(_sine(1000, 0.25), 48000, calibration_db=cal) == pytest.approx(94.0, abs=1e-9)
    assert level_ref(None) == "dBFS(A)" and level_ref(-20.0) == "dB(A) SPL"


def test_silence_reads_the_finite_floor():
    assert a_weighted_level_db(np.zeros(4800), 48000) == LEVEL_FLOOR_DBFS
    assert a_weighted_level_db(np.zeros((2, 10)), 48000, calibration_db=-30.0) == LEVEL_FLOOR_DBFS + 124.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_samples_raise(bad):
    wave = _sine(1000, 0.5)
    wave[100] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        a_weighted_level_db(wave, 48000)


@pytest.mark.parametrize("kw", [dict(rate=0), dict(rate=44100.0), dict(rate=True), dict(rate=48000, calibration_db="94"),
                                dict(rate=48000, calibration_db=float("nan"))])
def test_bad_settings_raise(kw):
    with pytest.raises(ValueError):
        AWeighting(**kw)


@pytest.mark.parametrize("shape", [(0,), (2, 0), (1, 2, 3), ()])
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError, match="shape"):
        a_weighted_level_db(np.zeros(shape), 48000)
