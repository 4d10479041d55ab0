"""Street ambience without vehicles: wind, birds and voices, synthesised (no recordings).

* wind: low-passed noise (< 400 Hz) under a slow gust envelope (0.05-0.4 Hz), the
  two channels partly correlated;
* birds: chirps of 40-160 ms sweeping between 2.5 and 6.5 kHz with a fast vibrato,
  in bursts, each bird at its own place in the stereo image;
* voices: one or two talkers, each a harmonic pulse train (pitch 100-230 Hz with
  intonation) band-passed to 300-3400 Hz, cut into syllables (~4.5 Hz) and talk
  spurts of 1-3 s with pauses.

The result is at most a few hundredths of full scale at level 1: audible under the
street noise, well below a vehicle at 8 m (sound.py). SOURCES_TEXT is what the
generator writes into the set's SOURCES file.
"""
from __future__ import annotations

import numpy as np

from .sound import _bandpass, _lowpassed_noise

SOURCES_TEXT = """\
# Sound sources of this set

Every sound in this set is synthesised by training.synth; no recording is used, so
there is nothing to attribute and no licence beyond the project's own.

- Vehicles: training/synth/sound.py (harmonic engine tones and band-passed noise).
- Street background: low-passed noise (training/synth/sound.py).
- Ambience (wind, birds, voices): training/synth/ambience.py.
"""

_WIND_RMS = 0.006
_BIRD_PEAK = 0.03
_VOICE_RMS = 0.005


def _pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan of ``mono`` to ``position`` in [-1 (left), 1 (right)] -> (2, N)."""
    angle = (position + 1.0) * np.pi / 4
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)])


def wind(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """(2, n) float64 wind at ``rate`` Hz, RMS about _WIND_RMS."""
    gust_hz = rng.uniform(0.05, 0.4)
    t = np.arange(n) / rate
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * gust_hz * t + rng.uniform(0, 2 * np.pi))
    shared = _lowpassed_noise(rng, n, rate, 400.0)
    return np.stack([shared + 0.6 * _lowpassed_noise(rng, n, rate, 400.0) for _ in range(2)]) \
        * envelope * _WIND_RMS / 1.17


def birds(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """(2, n) float64 bird chirps at ``rate`` Hz (1-3 birds, a burst every few seconds each)."""
    out = np.zeros((2, n))
    seconds = n / rate
    for _ in range(int(rng.integers(1, 4))):
        position, base = rng.uniform(-0.9, 0.9), rng.uniform(2500.0, 4500.0)
        t_burst = rng.uniform(-1.0, 2.0)
        while t_burst < seconds:
            for k in range(int(rng.integers(2, 7))):
                length = rng.uniform(0.04, 0.16)
                start = int((t_burst + k * rng.uniform(0.12, 0.25)) * rate)
                m = int(length * rate)
                if start < 0 or start + m > n:
                    continue
                s = np.arange(m) / rate
                sweep = base + rng.uniform(-1500.0, 2000.0) * s / length
                vibrato = 150.0 * np.sin(2 * np.pi * rng.uniform(20.0, 40.0) * s)
                phase = 2 * np.pi * np.cumsum(sweep + vibrato) / rate
                chirp = np.sin(phase) * np.sin(np.pi * s / length) ** 2 * _BIRD_PEAK * rng.uniform(0.4, 1.0)
                out[:, start:start + m] += _pan(chirp, position)
            t_burst += rng.uniform(1.5, 5.0)
    return out


def voices(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """(2, n) float64 babble of 1-2 talkers at ``rate`` Hz, RMS about _VOICE_RMS while talking."""
    out = np.zeros((2, n))
    t = np.arange(n) / rate
    for _ in range(int(rng.integers(1, 3))):
        pitch = rng.uniform(100.0, 230.0) * (1 + 0.08 * _lowpassed_noise(rng, n, rate, 2.0))
        phase = np.cumsum(pitch) / rate
        harmonics = min(30, int(0.45 * rate / pitch.max()))
        source = sum(np.sin(2 * np.pi * k * phase) / k for k in range(1, harmonics + 1))
        speech = _bandpass(source, rate, 300.0, 3400.0)
        syllables = np.abs(np.sin(2 * np.pi * rng.uniform(3.5, 5.5) * t / 2 + rng.uniform(0, np.pi))) ** 1.5
        talking = np.zeros(n)
        cursor = rng.uniform(-1.0, 1.0)
        while cursor < n / rate:
            spurt = rng.uniform(1.0, 3.0)
            talking[(t >= cursor) & (t < cursor + spurt)] = 1.0
            cursor += spurt + rng.uniform(0.5, 2.5)
        talking = np.convolve(talking, np.ones(int(0.05 * rate)) / int(0.05 * rate), mode="same")
        out += _pan(speech * syllables * talking * _VOICE_RMS * 1.6, rng.uniform(-0.8, 0.8))
    return out


def ambience(n: int, rate: int, rng: np.random.Generator, level: float = 1.0) -> np.ndarray:
    """(2, n) float32 wind + birds + voices at ``rate`` Hz scaled by ``level`` (0: silence)."""
    if level == 0:
        return np.zeros((2, n), np.float32)
    return (level * (wind(n, rate, rng) + birds(n, rate, rng) + voices(n, rate, rng))).astype(np.float32)
