"""Record a heatmap stream as a shareable video: the camera frame with the heatmap blended over it
and a caption band (stream, model, capture time, colour scale) under it.

    with OverlayVideoWriter("out.mp4") as video:
        for msg in subscribe("tcp://127.0.0.1:5556", kinds=("heatmap",), latest_only=False):  # every map
            video.add(msg)

Used by ``python -m realtime.subscribe ADDRESS --record out.mp4`` (.mp4 or .mkv).
Frames are timed by each map's capture_time, so the video plays in real time
even when the stream's rate varies. The stream carries no audio today
(docs/PROTOCOL.md has no audio payload), so the video has none.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from flowgrad.errors import InputError
from realtime.picture import OPACITY, band_height, blend, map_opacity, message_caption, with_caption
from realtime.protocol import Heatmap

VIDEO_SUFFIXES = (".mp4", ".mkv")
_TIME_BASE = Fraction(1, 1000)  # presentation times in milliseconds


class OverlayVideoError(InputError):
    """The video cannot be written (one line naming the file and the fix)."""


@dataclasses.dataclass(frozen=True)
class OverlayConfig:
    """How maps are drawn and encoded.

    opacity: weight of the colour-mapped heatmap in the blend, 0..1.
    threshold: map values below it (0..1) are not drawn; the picture shows through.
    codec: FFmpeg encoder name; None = libx264 when PyAV has it, else mpeg4.
    crf: libx264 constant rate factor (lower = better quality, larger file).
    max_width: width in pixels of the black canvas used for maps sent without a frame.
    caption: add a band under each picture with the stream, model, capture time
        (local, with its UTC offset) and the colour scale (realtime.picture).
    """

    opacity: float = OPACITY
    threshold: float = 0.0
    caption: bool = True
    codec: str | None = None
    crf: int = 23
    max_width: int = 640

    def __post_init__(self) -> None:
        if not (0 <= self.opacity <= 1 and 0 <= self.threshold <= 1):
            raise ValueError(f"opacity {self.opacity} and threshold {self.threshold} must be in [0, 1]")
        if self.max_width < 16:
            raise ValueError(f"max_width must be >= 16 pixels, got {self.max_width}")


class OverlayVideoWriter:
    """Writes the Heatmap messages of one stream to a video file (.mp4 or .mkv, no audio).

    path: the output file; its folder must exist.
    stream: the stream to record; None = the first stream seen. Maps of other
        streams are skipped and their names collected in ``skipped_streams``.
    The picture's size is that of the first frame (rounded down to even numbers,
    as yuv420p requires); later frames of another size are resized. With
    ``config.caption`` the video is ``band_height(width)`` rows taller. Attributes:
    ``frames`` written, ``duration_s`` of the video so far.
    """

    def __init__(self, path: str | Path, config: OverlayConfig = OverlayConfig(), stream: str | None = None):
        self.path, self.config, self.stream = Path(path), config, stream
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise OverlayVideoError(f"{self.path}: the video must end in {' or '.join(VIDEO_SUFFIXES)}")
        self.frames = 0
        self.duration_s = 0.0
        self.skipped_streams: set[str] = set()
        self._video = None
        self._picture_hw: tuple[int, int] | None = None  # (H, W) in pixels of the encoded picture, caption aside
        self._t0: float | None = None
        self._last_pts = -1
        if not self.path.parent.is_dir():
            raise OverlayVideoError(f"{self.path}: no such folder {self.path.parent}; create it first")
        try:
            self._container = av.open(str(self.path), "w")
        except (OSError, av.FFmpegError) as e:
            raise OverlayVideoError(f"{self.path}: cannot write the video ({_reason(e)}); "
                                    "check that the folder exists and is writable") from None

    def add(self, msg: Heatmap) -> bool:
        """Draw and encode one map; False when it belongs to another stream (skipped).

        Raises OverlayVideoError when the frame JPEG cannot be decoded.
        """
        if self.stream is None:
            self.stream = msg.stream
        if msg.stream != self.stream:
            self.skipped_streams.add(msg.stream)
            return False
        picture = self._picture(msg)
        if self._video is None:
            self._start(picture.shape[1], picture.shape[0])
        if picture.shape[:2] != self._picture_hw:
            # cv2.resize's dsize is (width, height).
            picture = cv2.resize(picture, self._picture_hw[::-1], interpolation=cv2.INTER_AREA)
        image = blend(picture, msg.heatmap, map_opacity(msg.quiet, self.config.opacity), self.config.threshold)
        if self.config.caption:
            image = with_caption(image, message_caption(msg))
        if self._t0 is None:
            self._t0 = msg.capture_time
        # Presentation times must rise: a publisher restart may send older capture times.
        pts = max(self._last_pts + 1, round((msg.capture_time - self._t0) / _TIME_BASE))
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = pts, _TIME_BASE
        try:
            self._container.mux(self._video.encode(frame))
        except (OSError, av.FFmpegError) as e:
            raise OverlayVideoError(f"{self.path}: cannot write the video ({_reason(e)})") from None
        self._last_pts = pts
        self.frames += 1
        self.duration_s = float(pts * _TIME_BASE)
        return True

    def _picture(self, msg: Heatmap) -> np.ndarray:
        """The map's camera frame as BGR, or a black canvas of the frame's aspect when none was sent."""
        if msg.frame_jpeg is None:
            w, h = msg.frame_size  # the protocol's [W, H]
            width = min(w, self.config.max_width)
            return np.zeros((max(2, round(h * width / w)), width, 3), np.uint8)
        image = cv2.imdecode(np.frombuffer(msg.frame_jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise OverlayVideoError(f"{msg.stream} seq {msg.seq}: the frame JPEG does not decode")
        return image

    def _start(self, width: int, height: int) -> None:
        """Add the video stream, sized from the first picture."""
        codec = self.config.codec or ("libx264" if "libx264" in av.codecs_available else "mpeg4")
        self._picture_hw = (max(2, height - height % 2), max(2, width - width % 2))
        options = {"crf": str(self.config.crf), "preset": "veryfast"} if codec == "libx264" else {}
        try:
            video = self._container.add_stream(codec, options=options)
        except (ValueError, av.FFmpegError) as e:
            raise OverlayVideoError(f"{self.path}: cannot encode with {codec} ({_reason(e)}); "
                                    "choose another codec") from None
        height, width = self._picture_hw
        band = band_height(width) if self.config.caption else 0
        video.width, video.height = width, height + band
        video.pix_fmt = "yuv420p"
        video.time_base = video.codec_context.time_base = _TIME_BASE
        self._video = video

    def close(self) -> None:
        """Flush the encoder and finish the file; a recording without any map is deleted."""
        if self._container is None:
            return
        if self._video is not None:
            self._container.mux(self._video.encode(None))
        self._container.close()
        self._container = None
        if self._video is None:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "OverlayVideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reason(error: Exception) -> str:
    """A short, one-line description of an OS or FFmpeg error."""
    return " ".join((getattr(error, "strerror", None) or str(error)).split())
