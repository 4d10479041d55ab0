"""Where the microphones are, relative to the camera, and how directions map to pixels.

Camera coordinates, in metres: x to the image's right, y down, z forward along the
optical axis; the origin is the camera's centre of projection. A direction is given
by its azimuth (degrees, positive to the right of the optical axis) and elevation
(degrees, positive upwards). The picture is a pinhole projection with square pixels:
focal length ``f = (W / 2) / tan(hfov / 2)`` pixels, principal point at the image
centre, pixel ``(row i, column j)`` spanning ``[j, j + 1) x [i, i + 1)``.

Geometry comes from ``--mics FILE.json`` (``{"mic_positions_m": [[x, y, z], ...],
"hfov_deg": 90.0}``) or a preset (``stereo:D``: a pair D metres apart along x,
centred on the camera; ``square:D``: four microphones on the corners of a D-metre
square in the image plane, centred on the camera). Every check raises a
:class:`GeometryError` (one line; exit status 2 from the command-line tools).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Optional

import numpy as np

from flowgrad.errors import InputError

__all__ = [
    "ArrayGeometry",
    "GeometryError",
    "ChannelCountError",
    "DEFAULT_HFOV_DEG",
    "check_positions",
    "check_hfov",
    "check_channels",
    "load_geometry",
    "preset_geometry",
    "parse_mics",
    "focal_px",
    "column_of_azimuth",
    "row_of_direction",
    "pixel_directions",
]

DEFAULT_HFOV_DEG = 90.0
# Microphones closer than this (metres) are one microphone: their delays cannot differ.
MIN_SPACING_M = 1e-3
# Vertical (y) extent in metres below which an array cannot tell rows apart.
MIN_VERTICAL_EXTENT_M = 0.02
PRESETS = ("stereo", "square")
# Bounds on what a --mics file may ask for: the pair checks and the SRP steering grow
# with the square of the microphones; a geometry file is a few hundred bytes.
MAX_MICROPHONES = 64
MAX_FILE_BYTES = 1 << 20


class GeometryError(InputError):
    """The microphone geometry cannot be used (one line naming what to fix)."""


class ChannelCountError(GeometryError):
    """The audio's channel count differs from the geometry's microphone count."""


@dataclasses.dataclass(frozen=True)
class ArrayGeometry:
    """Microphones in camera coordinates and the camera's horizontal field of view.

    mic_positions_m: ``(M, 3)`` float64 metres (x right, y down, z forward), M >= 2;
        channel ``m`` of the audio is microphone ``m``.
    hfov_deg: the camera's horizontal field of view in degrees, in (0, 180).
    Build it with :func:`load_geometry`, :func:`preset_geometry` or :func:`parse_mics`
    (or directly: the positions and field of view are checked here too).
    """

    mic_positions_m: np.ndarray
    hfov_deg: float = DEFAULT_HFOV_DEG

    def __post_init__(self) -> None:
        positions = check_positions(self.mic_positions_m)
        positions.setflags(write=False)
        object.__setattr__(self, "mic_positions_m", positions)
        object.__setattr__(self, "hfov_deg", check_hfov(self.hfov_deg))

    @property
    def channels(self) -> int:
        """The number of microphones (= audio channels expected)."""
        return self.mic_positions_m.shape[0]

    @property
    def has_vertical_extent(self) -> bool:
        """True when the microphones spread at least 2 cm along y: rows can be told apart."""
        y = self.mic_positions_m[:, 1]
        return float(y.max() - y.min()) >= MIN_VERTICAL_EXTENT_M

    def to_json(self) -> str:
        """The ``--mics`` file format (also ``ROOT/annotations/array.json`` of a dataset)."""
        return json.dumps({"mic_positions_m": self.mic_positions_m.tolist(), "hfov_deg": self.hfov_deg})


def check_positions(positions) -> np.ndarray:
    """``positions`` as ``(M, 3)`` float64 metres; GeometryError for another shape, fewer
    than two microphones, non-finite numbers, coincident microphones or microphones with
    no left-right (x) spread (they cannot tell image columns apart)."""
    try:
        p = np.array(positions, dtype=np.float64)
    except (TypeError, ValueError):
        raise GeometryError("mic_positions_m must be a list of [x, y, z] numbers in metres, "
                            f"got {positions!r:.80}") from None
    if p.ndim != 2 or p.shape[1] != 3:
        raise GeometryError(f"mic_positions_m must be a list of [x, y, z] in metres, got shape {p.shape}")
    if p.shape[0] < 2:
        raise GeometryError(f"direction finding needs at least 2 microphones, got {p.shape[0]}")
    if p.shape[0] > MAX_MICROPHONES:
        raise GeometryError(f"at most {MAX_MICROPHONES} microphones, got {p.shape[0]}")
    if not np.isfinite(p).all():
        bad = int(np.argwhere(~np.isfinite(p))[0, 0])
        raise GeometryError(f"microphone {bad} has a non-finite position {p[bad].tolist()}; give metres")
    gaps = np.linalg.norm(p[:, None] - p[None], axis=-1)
    np.fill_diagonal(gaps, np.inf)
    i, j = np.unravel_index(np.argmin(gaps), gaps.shape)
    if gaps[i, j] < MIN_SPACING_M:
        raise GeometryError(f"microphones {min(i, j)} and {max(i, j)} coincide ({gaps[i, j] * 1000:.2g} mm apart); "
                            "give each its own position")
    if np.ptp(p[:, 0]) < MIN_SPACING_M:
        raise GeometryError("the microphones have no left-right (x) spread, so they cannot tell image columns "
                            "apart; spread them along x")
    return p


def check_hfov(hfov_deg) -> float:
    """``hfov_deg`` as a float in (0, 180) degrees; GeometryError otherwise."""
    if isinstance(hfov_deg, bool) or not isinstance(hfov_deg, (int, float)) or not 0 < hfov_deg < 180:
        raise GeometryError(f"hfov_deg must be a number of degrees in (0, 180), got {hfov_deg!r}")
    return float(hfov_deg)


def check_channels(microphones: int, channels: int, source: str = "the audio") -> None:
    """ChannelCountError (naming both counts) unless ``source``, with ``channels`` channels,
    delivers one channel per microphone of the ``microphones`` of the geometry."""
    if channels != microphones:
        raise ChannelCountError(f"{source} has {channels} channel{'s' * (channels != 1)} but --mics has "
                                f"{microphones} microphones; give one channel per microphone "
                                "(nothing is downmixed for direction finding)")


def load_geometry(path: str | Path, hfov_deg: float | None = None) -> ArrayGeometry:
    """The geometry of a ``--mics`` JSON file; ``hfov_deg`` (``--hfov``) overrides the file's."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise GeometryError(f"--mics {path}: larger than {MAX_FILE_BYTES >> 20} MiB; a geometry file is a few "
                                "hundred bytes")
        data = json.loads(raw)
    except OSError as e:
        raise GeometryError(f"--mics {path}: cannot be read ({e.strerror or e})") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise GeometryError(f"--mics {path}: not JSON ({e})") from None
    if not isinstance(data, dict) or "mic_positions_m" not in data:
        raise GeometryError(f'--mics {path}: expected {{"mic_positions_m": [[x, y, z], ...], "hfov_deg": 90.0}}')
    try:
        return ArrayGeometry(data["mic_positions_m"], data.get("hfov_deg", DEFAULT_HFOV_DEG) if hfov_deg is None
                             else hfov_deg)
    except GeometryError as e:
        raise GeometryError(f"--mics {path}: {e}") from None


def preset_geometry(spec: str, hfov_deg: float = DEFAULT_HFOV_DEG) -> ArrayGeometry:
    """``stereo:D`` (a pair D metres apart along x) or ``square:D`` (four microphones on a
    D-metre square in the x-y plane), centred on the camera."""
    name, _, size = spec.partition(":")
    try:
        d = float(size)
    except ValueError:
        d = math.nan
    if name not in PRESETS or not (math.isfinite(d) and d > 0):
        raise GeometryError(f"--mics {spec}: expected a JSON file or a preset {', '.join(p + ':D' for p in PRESETS)} "
                            "with D the spacing in metres (e.g. stereo:0.2)")
    h = d / 2
    if name == "stereo":
        return ArrayGeometry([[-h, 0, 0], [h, 0, 0]], hfov_deg)
    return ArrayGeometry([[-h, -h, 0], [h, -h, 0], [-h, h, 0], [h, h, 0]], hfov_deg)


def parse_mics(spec: str, hfov_deg: float | None = None) -> ArrayGeometry:
    """``--mics`` (a preset ``NAME:D`` or a JSON file) with ``--hfov`` (None: the file's, else 90)."""
    if spec.partition(":")[0] in PRESETS and not Path(spec).exists():
        return preset_geometry(spec, DEFAULT_HFOV_DEG if hfov_deg is None else hfov_deg)
    return load_geometry(spec, hfov_deg)


def focal_px(width: int, hfov_deg: float) -> float:
    """The pinhole focal length in pixels of an image ``width`` pixels wide."""
    return width / 2 / math.tan(math.radians(hfov_deg) / 2)


def column_of_azimuth(azimuth_deg, width: int, hfov_deg: float):
    """The horizontal pixel coordinate (columns, continuous: column j spans [j, j + 1))
    where a direction at ``azimuth_deg`` (and elevation 0) lands; arrays broadcast."""
    return width / 2 + focal_px(width, hfov_deg) * np.tan(np.radians(azimuth_deg))


def row_of_direction(azimuth_deg, elevation_deg, hw: tuple[int, int], hfov_deg: float):
    """The vertical pixel coordinate (rows, continuous) of a direction; arrays broadcast."""
    h, w = hw
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    return h / 2 - focal_px(w, hfov_deg) * np.tan(el) / np.cos(az)


def pixel_directions(rows, cols, hw: tuple[int, int], hfov_deg: float,
                     frame_hw: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Unit vectors ``(len(rows), len(cols), 3)`` in camera coordinates of the rays through
    the centres of pixels ``(rows[i], cols[j])`` (float indices allowed) of an (H, W) image.

    frame_hw: (H, W) pixels of the camera frame the image stretches over (a model's 224x224
    map covers a 16:9 frame: its pixels are not square); None: the image is the frame.
    """
    h, w = hw
    fh, fw = hw if frame_hw is None else frame_hw
    f = focal_px(fw, hfov_deg)  # in frame pixels, square there
    x = ((np.asarray(cols, np.float64) + 0.5) * fw / w - fw / 2) / f
    y = ((np.asarray(rows, np.float64) + 0.5) * fh / h - fh / 2) / f
    rays = np.stack(np.broadcast_arrays(x[None, :], y[:, None], np.ones((1, 1))), axis=-1)
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)
