"""Audio of a scene as a microphone array hears it: engine-like voices plus street noise.

Each sounding vehicle is a voice: a harmonic series whose fundamental follows
its speed (idle at standstill), plus band-passed noise pulsing with the
engine's firing rate, both with a class-dependent timbre. The voice is emitted
from the centre of the vehicle's box (camera.py) and reaches each microphone
with its own propagation delay and a 1 / distance level (spatial.py), so the
arrival-time differences between microphones are real; the street background is
a diffuse field. Output is float32 (M, N) in [-1, 1], one channel per microphone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.signal

from flowgrad.spatial.srp import SPEED_OF_SOUND

from . import camera
from . import scene as sc
from .spatial import diffuse_noise, render_moving_source

_TABLE = 4096  # samples in one wavetable cycle
# Level of a voice at each microphone at _REFERENCE_M: what each channel of the constant-power
# stereo pan of versions <= 1.1 carried for a vehicle straight ahead (0.35 * cos 45 degrees),
# so the models trained on those levels hear the same loudness (and the same power summed
# over a stereo pair wherever the vehicle is).
_LEVEL = 0.35 / np.sqrt(2)
_REFERENCE_M = 8.0
_PEAK_LIMIT = 0.9  # the mix is scaled down to this peak when louder
_BACKGROUND_RMS = 0.0045  # per microphone, as the two channels of versions <= 1.1 had
_BACKGROUND_BAND_HZ = (0.0, 500.0)
_FADE = 1.0  # s of fade where a voice appears or vanishes
_RENDER_RATE = 16000  # Hz at least, at which the voices' propagation is rendered
# Each microphone's own noise floor (independent white noise, -80 dBFS RMS). Without it the
# frequencies a voice leaves empty hold only rounding errors, the same at every microphone,
# which phase-transform direction finding (GCC-PHAT, SRP-PHAT) reads as a source straight ahead.
_SELF_NOISE_RMS = 1e-4


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
    """One voice's controls on the scene's simulation grid ``times`` (s): ``speed`` m/s,
    ``gain`` linear amplitude factor (0 while absent; fades in and out), ``position_m``
    ``(len(times), 3)`` where it sounds from, metres in camera coordinates."""

    kind: str
    times: np.ndarray
    speed: np.ndarray
    gain: np.ndarray
    position_m: np.ndarray


def sources(scene: sc.Scene) -> list[SoundSource]:
    """A SoundSource for every sounding vehicle of ``scene`` (visible or not)."""
    result = []
    for v in scene.vehicles:
        if not v.sounding:
            continue
        present = ~np.isnan(v.x)
        # Cosine fades where the vehicle appears/vanishes so nothing clicks.
        n = int(_FADE * sc.SIM_RATE)
        ramp = np.convolve(present.astype(float), np.ones(n) / n, mode="same")
        gain = np.where(present, 0.5 - 0.5 * np.cos(np.pi * ramp), 0.0)
        result.append(SoundSource(v.kind, v.times, np.nan_to_num(v.speed), gain,
                                  camera.vehicle_positions_m(scene.layout, v, v.times)))
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


def mix(scene: sc.Scene, rate: int, rng: np.random.Generator, mic_positions_m: np.ndarray,
        extra: np.ndarray | None = None) -> np.ndarray:
    """The clip's audio at each microphone: (M, round(seconds * rate)) float32, peak <= 0.9.

    mic_positions_m: ``(M, 3)`` metres in camera coordinates. Street background (a
    diffuse field) plus every sounding vehicle rendered from its place with its
    propagation delays, plus ``extra`` ((M, same length) float, e.g. ambience.py's) when
    given, plus each microphone's own faint noise. The voices start before t = 0 by the
    longest travel time, so a vehicle far away is heard from the first sample, not after
    its sound has had time to arrive."""
    mics = np.asarray(mic_positions_m, np.float64)
    n = int(round(scene.seconds * rate))
    out = diffuse_noise(n, rate, mics, _BACKGROUND_RMS, rng, band_hz=_BACKGROUND_BAND_HZ)
    voices = sources(scene)
    if voices:
        out += _voices(voices, n, rate, rng, mics)
    out += rng.standard_normal(out.shape) * _SELF_NOISE_RMS
    if extra is not None:
        out += extra
    peak = np.abs(out).max()
    if peak > _PEAK_LIMIT:
        out *= _PEAK_LIMIT / peak
    return out.astype(np.float32)


def _voices(voices: list[SoundSource], n: int, rate: int, rng: np.random.Generator, mics: np.ndarray) -> np.ndarray:
    """(M, n) float64: every voice at every microphone (see :func:`mix`)."""
    # The voices have nothing above ~7 kHz: their delays are rendered at a third of 48 kHz
    # (exact for that band, three times fewer interpolated samples) and the sum resampled once.
    down = max(1, rate // _RENDER_RATE)
    if rate % down:
        down = 1
    low_rate = rate // down
    reach = max(float(np.linalg.norm(s.position_m - mics[:, None, :], axis=-1).max()) for s in voices)
    # The voices' FFTs (voice_wave) are quick only for lengths without large prime factors.
    total = scipy.fft.next_fast_len(n + down * (int(np.ceil(reach / SPEED_OF_SOUND * low_rate)) + 64), real=True)
    while total % down:
        total = scipy.fft.next_fast_len(total + 1, real=True)
    lead = total - n
    t = np.arange(-lead, n) / rate
    low_t = t[::down]
    low = np.zeros((mics.shape[0], len(low_t)))
    for source in voices:
        gain = np.interp(t, source.times, source.gain)
        wave = voice_wave(source, t, rate, rng) * gain * _LEVEL
        if down > 1:
            wave = scipy.signal.resample_poly(wave, 1, down)[: len(low_t)]
        heard = np.nonzero(np.interp(low_t, source.times, source.gain) > 0)[0]
        if not len(heard):
            continue
        path = np.stack([np.interp(low_t, source.times, source.position_m[:, k]) for k in range(3)], axis=1)
        # Only where the voice sounds (and its sound still travels): silence elsewhere.
        first, last = max(0, heard[0] - 64), min(len(low_t), heard[-1] + lead // down + 1)
        low[:, first:last] += render_moving_source(wave[first:last], low_rate, path[first:last], mics,
                                                   reference_m=_REFERENCE_M)
    if down > 1:
        low = scipy.signal.resample_poly(low, down, 1, axis=1)
    return low[:, lead:lead + n]
