"""Audio of a scene: engine-like voices placed in stereo, plus street noise.

Each sounding vehicle is a voice: a harmonic series whose fundamental follows
its speed (idle at standstill), plus band-passed noise pulsing with the
engine's firing rate, both with a class-dependent timbre. The voice is scaled
by 8 m / distance to the camera and panned with constant power by the sine of
its azimuth, so it is loudest and centred when closest and moves from one
channel to the other as it crosses. Output is float32 stereo in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import scene as sc

_TABLE = 4096  # samples in one wavetable cycle
_MASTER = 0.35  # mix level of a voice at 8 m
_PEAK_LIMIT = 0.9  # the mix is scaled down to this peak when louder
_BACKGROUND_RMS = 0.004
_FADE = 1.0  # s of fade where a voice appears or vanishes


@dataclass(frozen=True)
class Voice:
    """Timbre of one vehicle class: fundamental in Hz at idle and its rise in
    Hz per m/s, harmonic roll-off exponent, odd-harmonic boost, noise band
    (Hz) and level relative to the tone, overall level."""

    f0_idle: float
    f0_per_mps: float
    rolloff: float
    odd_boost: float
    noise_band: tuple[float, float]
    noise_level: float
    level: float


VOICES = {
    "car": Voice(28.0, 4.0, 1.0, 0.3, (300.0, 2000.0), 0.5, 1.0),
    "bus": Voice(18.0, 2.5, 0.8, 0.6, (80.0, 700.0), 0.7, 1.6),
    "truck": Voice(16.0, 2.8, 0.7, 0.8, (100.0, 900.0), 0.8, 1.7),
    "motorbike": Voice(45.0, 9.0, 0.5, 1.0, (1000.0, 4500.0), 0.4, 1.1),
}


@dataclass(frozen=True, eq=False)
class SoundSource:
    """One voice's controls on the scene's simulation grid ``times`` (s):
    ``speed`` m/s, ``gain`` linear amplitude factor (0 while absent), ``pan``
    sine of the azimuth in [-1 (left), 1 (right)]."""

    kind: str
    times: np.ndarray
    speed: np.ndarray
    gain: np.ndarray
    pan: np.ndarray


def sources(scene: sc.Scene) -> list[SoundSource]:
    """A SoundSource for every sounding vehicle of ``scene`` (visible or not)."""
    result = []
    layout = scene.layout
    for v in scene.vehicles:
        if not v.sounding:
            continue
        present = ~np.isnan(v.x)
        lateral = np.where(present, (v.x - layout.width / 2) / layout.ppm(v.depth), 0.0)
        distance = np.hypot(lateral, v.depth)
        # Cosine fades where the vehicle appears/vanishes so nothing clicks.
        n = int(_FADE * sc.SIM_RATE)
        ramp = np.convolve(present.astype(float), np.ones(n) / n, mode="same")
        gain = np.where(present, 8.0 / distance * (0.5 - 0.5 * np.cos(np.pi * ramp)), 0.0)
        result.append(SoundSource(v.kind, v.times, np.nan_to_num(v.speed), gain, lateral / distance))
    return result


def _bandpass(x: np.ndarray, rate: int, low: float, high: float) -> np.ndarray:
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    y = np.fft.irfft(spectrum, len(x))
    return y / (np.std(y) + 1e-12)


def _lowpassed_noise(rng: np.random.Generator, n: int, rate: int, cutoff: float) -> np.ndarray:
    return _bandpass(rng.standard_normal(n), rate, 0.0, cutoff)


def voice_wave(source: SoundSource, t: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Mono float64 signal of one source at sample times ``t`` (s), ``rate`` Hz,
    before distance gain and panning; amplitude roughly within [-2, 2]."""
    voice = VOICES[source.kind]
    speed = np.interp(t, source.times, source.speed)
    wobble = 1.0 + 0.02 * _lowpassed_noise(rng, len(t), rate, 3.0)
    f0 = (voice.f0_idle + voice.f0_per_mps * speed) * wobble
    f0_max = voice.f0_idle + voice.f0_per_mps * 20.0
    count = max(1, min(40, int(0.45 * rate / f0_max)))  # stay below Nyquist
    k = np.arange(1, count + 1)
    amps = k ** -voice.rolloff * (1 + voice.odd_boost * (k % 2))
    phases = rng.uniform(0, 2 * np.pi, count)
    cycle = np.arange(_TABLE) / _TABLE
    table = (amps[:, None] * np.sin(2 * np.pi * k[:, None] * cycle[None] + phases[:, None])).sum(axis=0)
    table /= np.abs(table).max()
    cycles = np.cumsum(f0) / rate
    position = (cycles % 1.0) * _TABLE
    i0 = position.astype(np.int64)
    frac = position - i0
    tone = table[i0] * (1 - frac) + table[(i0 + 1) % _TABLE] * frac
    pulse = 1.0 + 0.6 * np.sin(2 * np.pi * cycles)
    noise = _bandpass(rng.standard_normal(len(t)), rate, *voice.noise_band) * pulse
    pace = np.minimum(speed / 10.0, 1.0)  # engine load and tyre noise grow with speed
    return voice.level * (0.6 + 0.4 * pace) * (tone + voice.noise_level * (0.1 + 0.2 * pace) * noise)


def mix(scene: sc.Scene, rate: int, rng: np.random.Generator, extra: np.ndarray | None = None) -> np.ndarray:
    """The clip's audio: (2, round(seconds * rate)) float32, channels (left,
    right), peak <= 0.9. Street background noise plus every sounding vehicle,
    plus ``extra`` ((2, same length) float, e.g. ambience.py's) when given."""
    n = int(round(scene.seconds * rate))
    t = np.arange(n) / rate
    shared = _lowpassed_noise(rng, n, rate, 500.0)
    out = np.stack([shared + 0.5 * _lowpassed_noise(rng, n, rate, 500.0) for _ in range(2)]) * _BACKGROUND_RMS
    for source in sources(scene):
        wave = voice_wave(source, t, rate, rng) * np.interp(t, source.times, source.gain) * _MASTER
        angle = (np.interp(t, source.times, source.pan) + 1.0) * np.pi / 4  # constant-power pan
        out[0] += wave * np.cos(angle)
        out[1] += wave * np.sin(angle)
    if extra is not None:
        out += extra
    peak = np.abs(out).max()
    if peak > _PEAK_LIMIT:
        out *= _PEAK_LIMIT / peak
    return out.astype(np.float32)
