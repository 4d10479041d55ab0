"""Street ambience without vehicles: wind, birds and voices, synthesised (no recordings).

* wind: low-passed noise (< 400 Hz) under a slow gust envelope (0.05-0.4 Hz), a
  diffuse field (it blows from everywhere at once);
* birds: chirps of 40-160 ms sweeping between 2.5 and 6.5 kHz with a fast vibrato,
  in bursts, each bird in a tree at its own place (15 m away, 20 degrees up);
* voices: one or two talkers, each a harmonic pulse train (pitch 100-230 Hz with
  intonation) band-passed to 300-3400 Hz, cut into syllables (~4.5 Hz) and talk
  spurts of 1-3 s with pauses, each at its own place on the pavement (6 m away).

Birds and talkers are point sources rendered with their propagation delays like the
vehicles (spatial.py): real sounds from real places, so a direction finder hears them
for what they are, faint and (talkers) mostly off the road, rather than as a pan law's
level difference with no delay. The result is at most a few hundredths of full scale
at level 1 at each microphone: audible under the street noise, well below a vehicle at
8 m (sound.py). SOURCES_TEXT is what the generator writes into the set's SOURCES file.
"""
from __future__ import annotations

import numpy as np

from .sound import _bandpass, _lowpassed_noise
from .spatial import diffuse_noise, render_moving_source

SOURCES_TEXT = """\
# Sound sources of this set

Every sound in this set is synthesised by training.synth; no recording is used, so
there is nothing to attribute and no licence beyond the project's own.

- Vehicles: training/synth/sound.py (harmonic engine tones and band-passed noise).
- Street background: low-passed diffuse noise (training/synth/sound.py, spatial.py).
- Ambience (wind, birds, voices): training/synth/ambience.py.
"""

_WIND_RMS = 0.006
_BIRD_PEAK = 0.03
_VOICE_RMS = 0.005
# Where birds and talkers are: metres away and degrees up from the camera (the level
# constants above are at the distance; the array hears them 1 / distance from there).
_BIRD_AT = (15.0, 20.0)
_TALKER_AT = (6.0, 0.0)


def place(sine_azimuth: float, distance_m: float, elevation_deg: float) -> np.ndarray:
    """``(3,)`` metres in camera coordinates of a point ``distance_m`` away at the azimuth
    whose sine is ``sine_azimuth`` (in [-1, 1], positive right) and ``elevation_deg`` up."""
    az, el = np.arcsin(sine_azimuth), np.radians(elevation_deg)
    return distance_m * np.array([np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)])


def wind(n: int, rate: int, rng: np.random.Generator, mic_positions_m: np.ndarray) -> np.ndarray:
    """(M, n) float64 wind at ``rate`` Hz at each microphone, RMS about _WIND_RMS."""
    gust_hz = rng.uniform(0.05, 0.4)
    t = np.arange(n) / rate
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * gust_hz * t + rng.uniform(0, 2 * np.pi))
    field = diffuse_noise(n, rate, mic_positions_m, _WIND_RMS, rng, band_hz=(0.0, 400.0))
    return field.astype(np.float64) * envelope


def birds(n: int, rate: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Bird chirps at ``rate`` Hz (1-3 birds, a burst every few seconds each):
    ``(signal (n,) float64 as heard 15 m away, position (3,) m)`` per bird."""
    result = []
    seconds = n / rate
    for _ in range(int(rng.integers(1, 4))):
        out = np.zeros(n)
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
                out[start:start + m] += chirp
            t_burst += rng.uniform(1.5, 5.0)
        result.append((out, place(position, *_BIRD_AT)))
    return result


def voices(n: int, rate: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Babble of 1-2 talkers at ``rate`` Hz, RMS about _VOICE_RMS while talking, 6 m away:
    ``(signal (n,) float64, position (3,) m)`` per talker."""
    result = []
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
        result.append((speech * syllables * talking * _VOICE_RMS * 1.6, place(rng.uniform(-0.8, 0.8), *_TALKER_AT)))
    return result


def ambience(n: int, rate: int, rng: np.random.Generator, mic_positions_m: np.ndarray,
             level: float = 1.0) -> np.ndarray:
    """(M, n) float32 wind + birds + voices at ``rate`` Hz at each of the ``(M, 3)``
    microphones (metres, camera coordinates), scaled by ``level`` (0: silence)."""
    mics = np.asarray(mic_positions_m, np.float64)
    if level == 0:
        return np.zeros((mics.shape[0], n), np.float32)
    out = wind(n, rate, rng, mics)
    for signal, where in birds(n, rate, rng) + voices(n, rate, rng):
        out += render_moving_source(signal, rate, where, mics, reference_m=float(np.linalg.norm(where)))
    return (level * out).astype(np.float32)
