"""SRP-PHAT: the steered response power of an array over a set of far-field directions.

Two implementations of the same quantity, the mean over microphone pairs, frequency
bins and frames of the phase-transformed cross-spectrum steered to each direction
(1 where every pair agrees on the direction, about 0 for diffuse noise):

* :class:`SrpPhat`: ours. The steering matrix for the directions (an image's columns
  or pixels, fixed while the camera is) is computed once; each window then costs one
  STFT, one cross-spectrum per pair and one matrix product. Written because
  pyroomacoustics' ``SRP`` loops in Python over the directions and rebuilds each
  direction's steering vectors on every call: bench/doa.py measured it at 11 to 17 ms
  for a stereo pair over an image's 320 columns and about 150 ms for 4 microphones over
  1920 pixel directions (the live budget is 5 ms per map), ours at 0.8 and 2.3 ms.
* :func:`pyroomacoustics_srp`: the same through ``pyroomacoustics.doa.SRP``, the
  independent reference the tests and the bench compare ours with.

Directions are unit vectors in camera coordinates (flowgrad.spatial.geometry);
``signals`` are ``(M, T)`` float samples, channel m from microphone m.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

__all__ = ["SrpPhat", "stft", "default_nfft", "pyroomacoustics_srp", "SPEED_OF_SOUND", "DEFAULT_BAND_HZ"]

SPEED_OF_SOUND = 343.0  # m/s
# STFT frames of about this many seconds (1024 samples at 48 kHz, 256 at 16 kHz): the
# same frequency bins, and so the same cost, whatever the rate.
FRAME_S = 0.02
# Road and voice sound lies mostly here; below, a short array has no phase
# difference to measure; above, the band adds cost and little information.
DEFAULT_BAND_HZ = (300.0, 6000.0)
_EPS = 1e-12


def stft(signals: np.ndarray, nfft: int) -> np.ndarray:
    """``(M, T)`` samples -> ``(M, nfft // 2 + 1, S)`` complex64 spectra of Hann-windowed
    frames, hop ``nfft // 2`` (S = the whole frames that fit; at least one, zero-padded)."""
    signals = np.asarray(signals, np.float32)
    if signals.shape[1] < nfft:
        signals = np.pad(signals, ((0, 0), (0, nfft - signals.shape[1])))
    # Strided frames (no copy) and scipy's single-precision FFT: about half the time of
    # numpy's float64 FFT of copied frames (bench/doa.py: 0.5 against 0.9 ms for 0.5 s of 48 kHz stereo).
    frames = np.lib.stride_tricks.sliding_window_view(signals, nfft, axis=-1)[:, :: nfft // 2]
    return scipy.fft.rfft(frames * np.hanning(nfft).astype(np.float32), axis=-1).transpose(0, 2, 1)


def default_nfft(sample_rate: int) -> int:
    """The STFT length for ``sample_rate`` Hz: the power of two nearest :data:`FRAME_S` seconds."""
    return 2 ** max(1, round(np.log2(FRAME_S * sample_rate)))


class SrpPhat:
    """SRP-PHAT of one array at fixed directions; call it on each window.

    mic_positions_m: ``(M, 3)`` metres, camera coordinates.
    directions: ``(G, 3)`` unit vectors (where the sound comes from).
    sample_rate: Hz of the signals. nfft: STFT length (even; None: :func:`default_nfft`).
    band_hz: the frequencies (Hz) that take part.
    """

    def __init__(self, mic_positions_m: np.ndarray, directions: np.ndarray, sample_rate: int,
                 nfft: int | None = None, band_hz: tuple[float, float] = DEFAULT_BAND_HZ,
                 speed_of_sound: float = SPEED_OF_SOUND):
        nfft = default_nfft(sample_rate) if nfft is None else nfft
        positions = np.asarray(mic_positions_m, np.float64)
        directions = np.asarray(directions, np.float64)
        if nfft < 2 or nfft % 2:
            raise ValueError(f"SrpPhat: nfft must be an even number >= 2, got {nfft}")
        self.nfft, self.sample_rate = nfft, sample_rate
        m = positions.shape[0]
        self.pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
        self.bins = _band_bins(band_hz, sample_rate, nfft)
        omega = 2 * np.pi * self.bins * sample_rate / nfft  # rad/s, (F,)
        # A far-field source in direction d reaches microphone i (d . r_i) / c earlier than the origin.
        lead = directions @ positions.T / speed_of_sound  # (G, M)
        first, second = np.array(self.pairs).T
        phase = omega[None, None, :] * (lead[:, first] - lead[:, second])[:, :, None]  # (G, P, F)
        # Re(R e^{-j phase}) = Re(R) cos(phase) + Im(R) sin(phase), all directions in one product.
        norm = len(self.pairs) * len(self.bins)
        self._steer = np.concatenate([np.cos(phase), np.sin(phase)], axis=1).reshape(len(directions), -1).T / norm

    def __call__(self, signals: np.ndarray) -> np.ndarray:
        """``(M, T)`` samples -> ``(G,)`` SRP-PHAT values in [-1, 1] (the mean pair coherence
        steered to each direction)."""
        spectra = stft(signals, self.nfft)[:, self.bins, :]  # (M, F, S)
        white = spectra / np.maximum(np.abs(spectra), _EPS)
        first, second = np.array(self.pairs).T
        cross = np.mean(white[first] * np.conj(white[second]), axis=-1)  # (P, F)
        # einsum's own loop, not BLAS: OpenBLAS wakes its sleeping thread pool for this small
        # product, which cost 23 ms instead of 0.2 ms on a busy 2-core machine (bench/doa.py).
        return np.einsum("k,kg->g", np.concatenate([cross.real, cross.imag]).reshape(-1), self._steer)


def pyroomacoustics_srp(signals: np.ndarray, mic_positions_m: np.ndarray, directions: np.ndarray,
                        sample_rate: int, nfft: int | None = None,
                        band_hz: tuple[float, float] = DEFAULT_BAND_HZ) -> np.ndarray:
    """The same values as :class:`SrpPhat` computed by ``pyroomacoustics.doa.SRP``
    (its own normalisation undone), for tests and the bench."""
    import pyroomacoustics as pra
    from pyroomacoustics.doa.doa import ModeVector
    from pyroomacoustics.doa.grid import GridSphere

    nfft = default_nfft(sample_rate) if nfft is None else nfft
    directions = np.asarray(directions, np.float64)
    # Camera (x right, y down, z forward) -> pyroomacoustics (X forward, Y right, Z up): a
    # reflection, which keeps every dot product and so every delay.
    to_pra = np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], np.float64)
    mics = (np.asarray(mic_positions_m, np.float64) @ to_pra.T).T
    d = directions @ to_pra.T
    azimuth = np.arctan2(d[:, 1], d[:, 0])
    colatitude = np.arccos(np.clip(d[:, 2], -1, 1))
    srp = pra.doa.algorithms["SRP"](mics, sample_rate, nfft, c=SPEED_OF_SOUND, num_src=1, azimuth=azimuth[:1],
                                    colatitude=colatitude[:1], dim=3)
    # Our directions as they are, not the (azimuth x colatitude) product pra's constructor makes.
    srp.grid = GridSphere(spherical_points=np.stack([azimuth, colatitude]))
    srp.mode_vec = ModeVector(srp.L, sample_rate, nfft, SPEED_OF_SOUND, srp.grid)
    # locate_sources' own set-up, then its SRP step; not its peak search, which needs a
    # grid covering the sphere (ours is a picture's worth of directions).
    spectra = stft(signals, nfft)
    srp.freq_bins = _band_bins(band_hz, sample_rate, nfft)
    srp.num_snap, srp.num_freq = spectra.shape[2], len(srp.freq_bins)
    srp._process(spectra)
    m = mics.shape[1]
    pairs = m * (m - 1) / 2
    # pra: (2 * sum over pairs of Re(...) + S * M * F) / (S * F * pairs).
    return (np.asarray(srp.grid.values) - m / pairs) / 2


def _band_bins(band_hz: tuple[float, float], sample_rate: int, nfft: int) -> np.ndarray:
    low, high = band_hz
    bins = np.arange(max(1, round(low * nfft / sample_rate)), min(nfft // 2, round(high * nfft / sample_rate)) + 1)
    if not len(bins):
        raise ValueError(f"SRP-PHAT: no frequency bin in {band_hz} Hz at {sample_rate} Hz, nfft {nfft}")
    return bins
