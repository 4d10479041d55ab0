"""Direction of arrival as a likelihood over the picture.

:class:`DirectionFinder` evaluates SRP-PHAT (flowgrad.spatial.srp) on the rays
through the image's pixels (the pinhole model of flowgrad.spatial.geometry) and
turns it into a likelihood: over columns, on the horizon row, when the array has no
vertical extent (a left-right array measures a cone around its axis, which crosses
the horizon at the source's azimuth), over rows and columns otherwise.

Two shapes of likelihood (``likelihood=``): ``"peak"``, exp(concentration * (SRP - its
peak)), steep around the strongest direction (the finder's default); and ``"range"``,
(SRP - its median) / (peak - median) clipped to [0, 1], which keeps every direction in
proportion to how far it stands above the map's typical level, whatever the absolute SRP
level (a second loud source keeps a bump of its own height; what the fusion uses).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .fusion import sharpness
from .geometry import ArrayGeometry, check_channels, pixel_directions
from .srp import DEFAULT_BAND_HZ, SrpPhat

__all__ = ["DirectionFinder", "DoaEstimate", "DEFAULT_WINDOW_S", "DEFAULT_CONCENTRATION", "LIKELIHOODS",
           "range_likelihood"]

DEFAULT_WINDOW_S = 0.5
# Likelihood = exp(concentration * (SRP - its peak)): an SRP-PHAT drop of 0.1 (a sidelobe
# of a clear source; the spread of diffuse noise) divides the likelihood by e^2.
DEFAULT_CONCENTRATION = 20.0
LIKELIHOODS = ("peak", "range")
# An SRP map whose peak stands less than this above its median has no direction (silence,
# digital zeros): the range likelihood is then flat.
_FLAT_RANGE = 1e-6
# Directions evaluated at most, per image axis, for a likelihood over columns and over pixels
# (about 1 ms each on one core); the likelihood is interpolated between them.
MAX_GRID_COLUMNS = 320
MAX_GRID_HW = (24, 80)


@dataclasses.dataclass(frozen=True)
class DoaEstimate:
    """The direction heard in one window.

    likelihood: ``(W,)`` over image columns, or ``(H, W)`` over pixels when the array
        has vertical extent; float32 in [0, 1], 1 at the peak.
    azimuth_deg: the peak's azimuth (degrees, positive to the right).
    elevation_deg: the peak's elevation (degrees, positive up); None for a likelihood
        over columns.
    coherence: the SRP-PHAT peak in [-1, 1]: near 1 when one source dominates, near 0
        for diffuse noise or silence.
    sharpness: :func:`flowgrad.spatial.fusion.sharpness` of the likelihood, in [0, 1].
    """

    likelihood: np.ndarray
    azimuth_deg: float
    elevation_deg: float | None
    coherence: float
    sharpness: float


class DirectionFinder:
    """SRP-PHAT direction finding for one array and one image size.

    geometry: the array (its ``hfov_deg`` is the camera's).
    image_hw: (H, W) pixels of the map the likelihood is fused with.
    sample_rate: Hz of the ``(M, T)`` windows given to :meth:`__call__`.
    nfft, band_hz: STFT length (None: about 20 ms) and frequencies (Hz) that take part.
    likelihood: ``"peak"`` or ``"range"`` (module docstring).
    concentration: how steeply the ``"peak"`` likelihood falls away from the SRP peak.
    window_s: seconds of audio a map is made from, for the caller to read (live: the
        newest; offline: centred on the evaluated frame).
    frame_hw: (H, W) pixels of the camera frame the image stretches over (its rows' angles
        follow the frame's aspect, not the image's); None: the image is the frame.
    """

    def __init__(self, geometry: ArrayGeometry, image_hw: tuple[int, int], sample_rate: int,
                 nfft: int | None = None, band_hz: tuple[float, float] = DEFAULT_BAND_HZ,
                 concentration: float = DEFAULT_CONCENTRATION, window_s: float = DEFAULT_WINDOW_S,
                 likelihood: str = "peak", frame_hw: tuple[int, int] | None = None):
        h, w = image_hw
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"DirectionFinder: likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if h < 1 or w < 1:
            raise ValueError(f"DirectionFinder: image_hw must be positive, got {image_hw}")
        if not (math.isfinite(concentration) and concentration > 0):
            raise ValueError(f"DirectionFinder: concentration must be a positive number, got {concentration!r}")
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"DirectionFinder: window_s must be a positive number of seconds, got {window_s!r}")
        self.geometry, self.image_hw, self.concentration, self.window_s = geometry, (h, w), concentration, window_s
        self.likelihood = likelihood
        flat = not geometry.has_vertical_extent
        self._cols = np.linspace(0, w - 1, min(w, MAX_GRID_COLUMNS if flat else MAX_GRID_HW[1]))
        rows = None if flat else np.linspace(0, h - 1, min(h, MAX_GRID_HW[0]))
        self._rows = rows
        grid = pixel_directions(np.array([(h - 1) / 2]) if rows is None else rows, self._cols, (h, w),
                                geometry.hfov_deg, frame_hw)
        self._directions = grid.reshape(-1, 3)
        self._srp = SrpPhat(geometry.mic_positions_m, self._directions, sample_rate, nfft, band_hz)
        self._col_taps = _taps(self._cols, w)
        self._row_taps = None if rows is None else _taps(rows, h)

    @property
    def directions(self) -> np.ndarray:
        """``(G, 3)`` the unit vectors (camera coordinates) SRP-PHAT is evaluated at: the
        horizon row's columns, or a rows x columns grid, row by row."""
        return self._directions

    def __call__(self, signals: np.ndarray) -> DoaEstimate:
        """``(M, T)`` float samples (one channel per microphone; ``window_s`` of them)
        -> the :class:`DoaEstimate` of that window. ChannelCountError for another M."""
        signals = np.asarray(signals)
        if signals.ndim != 2:
            raise ValueError(f"DirectionFinder: expected (M, T) samples, got shape {signals.shape}")
        check_channels(self.geometry.channels, signals.shape[0], "the audio window")
        if not np.isfinite(signals).all():  # one NaN would make every direction NaN
            raise ValueError("DirectionFinder: the audio window contains NaN or inf samples")
        power = self._srp(signals)
        best = int(np.argmax(power))
        d = self._directions[best]
        azimuth = math.degrees(math.atan2(d[0], d[2]))
        elevation = None if self._rows is None else math.degrees(math.atan2(-d[1], math.hypot(d[0], d[2])))
        if self.likelihood == "range":
            grid = range_likelihood(power)
        else:
            grid = np.exp(self.concentration * (power - power[best]))
        likelihood = self._to_image(grid).astype(np.float32)
        return DoaEstimate(likelihood, azimuth, elevation, float(power[best]), sharpness(likelihood))

    def _to_image(self, grid: np.ndarray) -> np.ndarray:
        """The grid's values interpolated linearly to every column (and row) of the image."""
        c0, c1, tc = self._col_taps
        if self._rows is None:
            return grid[c0] * (1 - tc) + grid[c1] * tc
        grid = grid.reshape(len(self._rows), len(self._cols))
        r0, r1, tr = self._row_taps
        down = grid[r0] * (1 - tr)[:, None] + grid[r1] * tr[:, None]  # (H, grid columns)
        return down[:, c0] * (1 - tc) + down[:, c1] * tc


def range_likelihood(power: np.ndarray) -> np.ndarray:
    """SRP values ``(G,)`` -> ``(G,)`` in [0, 1]: (power - median) / (peak - median), clipped;
    1 at the peak, 0 at and below the median; all ones (no direction) when the peak stands
    less than 1e-6 above the median."""
    power = np.asarray(power, np.float64)
    median = float(np.median(power))
    span = float(power.max()) - median
    if span < _FLAT_RANGE:
        return np.ones_like(power)
    return np.clip((power - median) / span, 0.0, 1.0)


def _taps(points: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation from values at increasing ``points`` (covering 0 .. n - 1) to
    0 .. n - 1: (left index, right index, right weight), each ``(n,)``."""
    at = np.arange(n)
    if len(points) == 1:
        return np.zeros(n, int), np.zeros(n, int), np.zeros(n)
    right = np.clip(np.searchsorted(points, at, side="right"), 1, len(points) - 1)
    left = right - 1
    span = points[right] - points[left]
    weight = np.clip((at - points[left]) / np.where(span > 0, span, 1), 0, 1)
    return left, right, weight
