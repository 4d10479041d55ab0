"""Sound as an array of microphones hears it: propagation delays, distance, diffuse noise.

Unlike a pan law (which places a voice by level only), each
microphone here receives the source signal delayed by its own distance / 343 m/s,
with fractional delays that change as the source moves (so GCC-PHAT and SRP-PHAT
on the result measure real arrival-time differences, and moving sources carry
their Doppler shift), scaled by 1 / distance, plus a diffuse field: noise arriving
from many directions at once, coherent between close microphones at low
frequencies as a real street's is. Positions are metres in camera coordinates
(flowgrad.spatial.geometry: x right, y down, z forward). training.synth.sound and
training.synth.ambience render every clip's sources through here.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from flowgrad.spatial.fractional import sample_at
from flowgrad.spatial.srp import SPEED_OF_SOUND

__all__ = ["render_array", "render_moving_source", "diffuse_noise", "linear_path", "azimuth_elevation_deg"]

# Samples of silence after a still source's signal in its FFT delay (its sinc tails and
# the wrap-around of the circular shift fall there, not on the signal).
_STATIC_PAD = 256


def linear_path(start_m, end_m, n_samples: int) -> np.ndarray:
    """``(n_samples, 3)`` positions in metres moving at constant speed from ``start_m`` to ``end_m``."""
    t = np.linspace(0.0, 1.0, n_samples)[:, None]
    return (1 - t) * np.asarray(start_m, np.float64) + t * np.asarray(end_m, np.float64)


def azimuth_elevation_deg(points_m) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth (positive right) and elevation (positive up) in degrees of ``(..., 3)`` points
    seen from the camera's origin: what a dataset annotates as a source's true direction."""
    p = np.asarray(points_m, np.float64)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    return np.degrees(np.arctan2(x, z)), np.degrees(np.arctan2(-y, np.hypot(x, z)))


def render_array(sources, sample_rate: int, mic_positions_m: np.ndarray, noise_rms: float,
                 rng: np.random.Generator) -> np.ndarray:
    """What an array hears of a scene: every source on its path plus diffuse noise.

    sources: ``(signal (T,), path_m (T, 3) or (3,))`` pairs, as :func:`render_moving_source`
        takes them, all T samples long.
    noise_rms: the diffuse noise's RMS at each microphone (0: none).
    Returns ``(M, T)`` float32.
    """
    mics = np.asarray(mic_positions_m, np.float64)
    sources = list(sources)
    if not sources:
        raise ValueError("render_array: give at least one (signal, path) source")
    n = len(sources[0][0])
    if any(len(signal) != n for signal, _ in sources):
        raise ValueError(f"render_array: every source signal must be {n} samples long, got "
                         f"{[len(signal) for signal, _ in sources]}")
    out = np.zeros((mics.shape[0], n), np.float32)
    for signal, path in sources:
        out += render_moving_source(signal, sample_rate, path, mics)
    if noise_rms > 0:
        out += diffuse_noise(n, sample_rate, mics, noise_rms, rng)
    return out


def render_moving_source(signal: np.ndarray, sample_rate: int, path_m: np.ndarray, mic_positions_m: np.ndarray,
                         reference_m: float = 1.0, min_distance_m: float = 0.5,
                         speed_of_sound: float = SPEED_OF_SOUND) -> np.ndarray:
    """What each microphone hears of one source.

    signal: ``(T,)`` float, the source as heard at ``reference_m`` metres.
    path_m: ``(T, 3)`` the source's position in metres at each sample time, or ``(3,)``
        for a source that stays put.
    mic_positions_m: ``(M, 3)`` metres.
    Returns ``(M, T)`` float32: microphone m at sample n hears the signal emitted at the
    time ``t_e`` when ``n / sample_rate - t_e`` = distance(source at ``t_e``, mic) / c
    (solved by two fixed-point steps: exact to well under a sample for road speeds),
    scaled by ``reference_m / max(distance, min_distance_m)``; before the signal starts
    it is silence.
    """
    signal = np.asarray(signal, np.float64)
    n = signal.shape[0]
    mics = np.asarray(mic_positions_m, np.float64)
    if signal.ndim != 1 or mics.ndim != 2 or mics.shape[1] != 3 or np.shape(path_m) not in ((3,), (n, 3)):
        raise ValueError(f"render_moving_source: expected signal (T,), path (T, 3) or (3,) and mics (M, 3), got "
                         f"{signal.shape}, {np.shape(path_m)}, {mics.shape}")
    if np.shape(path_m) == (3,):
        return _render_still(signal, sample_rate, np.asarray(path_m, np.float64), mics, reference_m,
                             min_distance_m, speed_of_sound)
    path = np.asarray(path_m, np.float64)
    times = np.arange(n, dtype=np.float64)
    out = np.zeros((mics.shape[0], n), np.float32)
    for m, mic in enumerate(mics):
        delay = np.linalg.norm(path - mic, axis=1) * sample_rate / speed_of_sound  # samples
        for _ in range(2):  # where the source was when it emitted what arrives now
            emitted = _positions_at(path, times - delay)
            delay = np.linalg.norm(emitted - mic, axis=1) * sample_rate / speed_of_sound
        gain = reference_m / np.maximum(delay * speed_of_sound / sample_rate, min_distance_m)
        out[m] = gain * sample_at(signal, times - delay)
    return out


def _render_still(signal: np.ndarray, sample_rate: int, where: np.ndarray, mics: np.ndarray, reference_m: float,
                  min_distance_m: float, speed_of_sound: float) -> np.ndarray:
    """:func:`render_moving_source` for a source that stays put: one constant delay per
    microphone, applied as a phase shift of the zero-padded spectrum (exact for band-limited
    sound, and one FFT per microphone instead of a windowed sinc per sample)."""
    n = signal.shape[0]
    distance = np.linalg.norm(mics - where, axis=1)
    delay = distance * sample_rate / speed_of_sound  # samples
    size = scipy.fft.next_fast_len(n + int(np.ceil(delay.max())) + _STATIC_PAD, real=True)
    spectrum = scipy.fft.rfft(signal, size)
    phase = -2j * np.pi * np.fft.rfftfreq(size)
    gain = reference_m / np.maximum(distance, min_distance_m)
    out = np.empty((mics.shape[0], n), np.float32)
    for m in range(mics.shape[0]):
        out[m] = gain[m] * scipy.fft.irfft(spectrum * np.exp(phase * delay[m]), size)[:n]
    return out


def diffuse_noise(n_samples: int, sample_rate: int, mic_positions_m: np.ndarray, rms: float,
                  rng: np.random.Generator, speed_of_sound: float = SPEED_OF_SOUND,
                  band_hz: tuple[float, float] | None = None) -> np.ndarray:
    """``(M, n_samples)`` float32 noise of ``rms`` per microphone arriving from all directions
    at once (a spherically isotropic field), limited to ``band_hz`` (Hz; None: all).

    Generated per frequency with the field's coherence between microphones ``i`` and ``j``,
    ``sin(k d_ij) / (k d_ij)`` (k = 2 pi f / c): the limit of infinitely many plane waves,
    for M inverse FFTs (summing plane waves one by one costs one FFT per direction).
    """
    mics = np.asarray(mic_positions_m, np.float64)
    freqs = np.fft.rfftfreq(n_samples, 1 / sample_rate)
    gaps = np.linalg.norm(mics[:, None] - mics[None], axis=-1)  # (M, M) metres
    coherence = np.sinc(2 * freqs[:, None, None] * gaps[None] / speed_of_sound)  # (F, M, M); np.sinc has the pi
    values, vectors = np.linalg.eigh(coherence)
    mixing = vectors * np.sqrt(np.clip(values, 0, None))[:, None, :]  # (F, M, M): mixing @ mixing^T = coherence
    white = scipy.fft.rfft(rng.standard_normal((mics.shape[0], n_samples)), axis=-1)  # (M, F) independent
    heard = np.einsum("fmk,kf->mf", mixing, white)
    if band_hz is not None:
        heard[:, (freqs < band_hz[0]) | (freqs > band_hz[1])] = 0
    noise = scipy.fft.irfft(heard, n_samples, axis=-1)
    return (noise * rms / np.sqrt(np.mean(noise ** 2, axis=1, keepdims=True) + 1e-30)).astype(np.float32)


def _positions_at(path: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The path ``(T, 3)`` (one row per sample) linearly interpolated at fractional sample times."""
    if path.shape[0] == 1:
        return np.repeat(path, at.shape[0], axis=0)
    at = np.clip(at, 0, path.shape[0] - 1)
    left = np.minimum(np.floor(at).astype(np.int64), path.shape[0] - 2)
    frac = (at - left)[:, None]
    return path[left] * (1 - frac) + path[left + 1] * frac
