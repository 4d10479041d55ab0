"""Live video frames from a camera, a network stream or a file played like a camera.

    with VideoSource(VideoSourceConfig("udp://127.0.0.1:5000")) as source:
        while (frame := source.read()) is not None or source.state == "reconnecting":
            ...

Every frame carries its capture time in ``time.monotonic()`` seconds (the
pipeline's clock, see :mod:`realtime.clock`). Files are paced to real time
and loop; cameras and streams that drop are reopened with exponential
back-off. Problems at start raise :class:`SourceError` with one line that
names the source and the fix; later problems show in ``state`` and ``stats``.
"""
from __future__ import annotations

import dataclasses
import glob
import math
import re
import stat
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from flowgrad.errors import InputError
from realtime.clock import wait_until

__all__ = ["SourceError", "VideoSourceConfig", "Frame", "VideoStats", "VideoSource", "parse_video_spec"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class SourceError(InputError):
    """A live source (camera, stream, microphone, file) cannot be opened; the message is one line."""


@dataclasses.dataclass(frozen=True)
class VideoSourceConfig:
    """How to open and run a video source.

    spec: camera index (``0`` or ``"0"``), camera device path (``/dev/video0``),
        video file path, or stream URL (``udp://``, ``rtsp://``, ``http://`` ...).
    loop: files restart at their end instead of ending.
    realtime: files are paced at their frame rate (frames late by more than
        one frame period are dropped, as a camera would); False reads them as
        fast as the caller asks.
    reconnect_initial_s, reconnect_max_s: first and largest wait in seconds
        between reopening attempts of a dropped camera or stream (doubling).
    open_timeout_s, read_timeout_s: limits in seconds on opening a stream and
        on waiting for its next frame (FFmpeg backend).
    """

    spec: str | int
    loop: bool = True
    realtime: bool = True
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 8.0
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    pace_fps: float | None = None
    decoder_threads: int | None = None

    def __post_init__(self):
        for name in ("reconnect_initial_s", "reconnect_max_s", "open_timeout_s", "read_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"VideoSourceConfig.{name} must be a positive number of seconds, got {value!r}")
        if self.pace_fps is not None and not (math.isfinite(self.pace_fps) and self.pace_fps > 0):
            raise ValueError(f"VideoSourceConfig.pace_fps must be a positive frame rate, got {self.pace_fps!r}")
        if self.decoder_threads is not None and not (isinstance(self.decoder_threads, int)
                                                     and self.decoder_threads >= 1):
            raise ValueError(f"VideoSourceConfig.decoder_threads must be >= 1, got {self.decoder_threads!r}")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("VideoSourceConfig: reconnect_max_s must be >= reconnect_initial_s")


@dataclasses.dataclass(frozen=True)
class Frame:
    """One video frame.

    image: ``(H, W, 3)`` uint8 BGR at the source's own resolution.
    time: capture time, ``time.monotonic()`` seconds (for paced files: when
        the frame is due; for cameras and streams: when it was received).
    index: frames delivered by this source before this one (across loops and reconnects).
    source_time: position in seconds within the file (None for cameras and streams).
    """

    image: np.ndarray
    time: float
    index: int
    source_time: float | None


@dataclasses.dataclass(frozen=True)
class VideoStats:
    """Counters of a video source: frames delivered, successful reconnects,
    failed reads/reopen attempts, frames dropped to keep a file in real time."""

    frames: int = 0
    reconnects: int = 0
    failures: int = 0
    dropped: int = 0


def parse_video_spec(spec: str | int) -> tuple[str, str | int]:
    """Classify ``spec`` as ``("camera", index or device path)``, ``("file", path)`` or ``("stream", url)``.

    Raises SourceError for a path that does not exist.
    """
    if isinstance(spec, int) and not isinstance(spec, bool):
        return "camera", spec
    if not isinstance(spec, str) or not spec:
        raise SourceError(f"video source {spec!r}: expected a camera index, a file path or a stream URL")
    if spec.isdigit():
        return "camera", int(spec)
    if _URL.match(spec):
        return "stream", spec
    path = Path(spec)
    if path.exists():
        return ("camera", spec) if stat.S_ISCHR(path.stat().st_mode) else ("file", spec)
    raise SourceError(
        f"video source {spec!r}: no such file; give an existing video file, a camera index (e.g. 0) "
        "or a stream URL (e.g. udp://127.0.0.1:5000, rtsp://host/path)"
    )


class VideoSource:
    """Frames from one camera, stream or file; see the module docstring.

    ``start_time`` (monotonic seconds) is when a file's first frame is due;
    give the same value to the file's audio source to play both together.
    Default: the moment of the first :meth:`read`.
    """

    def __init__(self, config: VideoSourceConfig, start_time: float | None = None):
        self.config = config
        self.kind, self._target = parse_video_spec(config.spec)
        self._state = "opening"
        self._stats = VideoStats()
        self._closed = threading.Event()
        self._io = threading.Lock()  # one read() at a time; close() releases the capture outside it
        self._start_time = start_time
        self._backoff = config.reconnect_initial_s
        self._next_attempt = 0.0
        self._loop_offset = 0.0  # seconds of file played in earlier loops
        self._loop_frames = 0  # frames read in the current loop
        self._cap = self._open()
        if self._cap is None:
            raise SourceError(self._open_failure())
        self._fps = self._cap.get(cv2.CAP_PROP_FPS)
        hw = (round(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), round(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
        self._frame_hw = hw if min(hw) > 0 else None
        if self.kind == "file" and config.realtime and not (math.isfinite(self._fps) and self._fps > 0):
            self._cap.release()
            raise SourceError(
                f"video file {self._target}: frame rate unknown, cannot pace it; use realtime=False "
                "or re-encode it with a frame rate (ffmpeg -i in -r 25 out.mp4)"
            )
        self._state = "live"

    # ------------------------------------------------------------------ public

    @property
    def state(self) -> str:
        """"opening", "live", "reconnecting", "ended" (file end, no loop), "failed" or "closed"."""
        # "closed" holds even when a read in progress at close() sets another state on its way out.
        return "closed" if self._closed.is_set() else self._state

    @property
    def stats(self) -> VideoStats:
        """A snapshot of the counters."""
        return self._stats

    @property
    def fps(self) -> float | None:
        """Frame rate the source reports in Hz (None when it reports none)."""
        return self._fps if math.isfinite(self._fps) and self._fps > 0 else None

    @property
    def frame_hw(self) -> tuple[int, int] | None:
        """(H, W) in pixels of the frames as the opened source reports it (None when it does not)."""
        return self._frame_hw

    def read(self) -> Frame | None:
        """The next frame, or None when there is none now.

        None with ``state == "reconnecting"`` means try again (each call waits
        out at most one back-off interval and one reopening attempt);
        "ended", "failed" and "closed" are final.
        """
        with self._io:
            try:
                return self._read_locked()
            finally:
                if self._closed.is_set():
                    self._release()

    def close(self) -> None:
        """Stop the source; safe from any thread, never waits for a read in progress."""
        self._closed.set()
        self._state = "closed"
        if self._io.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._io.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------- reading

    def _read_locked(self) -> Frame | None:
        while not self._closed.is_set() and self._state in ("live", "reconnecting"):
            if self._state == "reconnecting" and not self._reconnect():
                return None
            ok, image = self._cap.read()
            if ok:
                if self.kind != "file":
                    return self._deliver(image, time.monotonic(), None)
                frame = self._paced_file_frame(image)
                if frame is not None:
                    return frame
            elif self.kind == "file":
                self._end_of_file()
            else:
                self._lost()
        return None

    def _paced_file_frame(self, image: np.ndarray) -> Frame | None:
        """Deliver a file frame at its due time; None when it is too late (dropped) or closed."""
        source_time = self._loop_frames / self._fps if self.fps else None
        self._loop_frames += 1
        if not self.config.realtime:
            return self._deliver(image, time.monotonic(), source_time)
        if self._start_time is None:
            self._start_time = time.monotonic()
        rate = self.config.pace_fps or self._fps
        due = self._start_time + self._loop_offset + (self._loop_frames - 1) / rate
        if time.monotonic() - due > 1.0 / rate:
            self._stats = dataclasses.replace(self._stats, dropped=self._stats.dropped + 1)
            return None
        if not wait_until(due, self._closed):
            return None
        return self._deliver(image, due, source_time)

    def _deliver(self, image: np.ndarray, t: float, source_time: float | None) -> Frame:
        frame = Frame(image, t, self._stats.frames, source_time)
        self._stats = dataclasses.replace(self._stats, frames=self._stats.frames + 1)
        return frame

    def _end_of_file(self) -> None:
        if not self.config.loop:
            self._state = "ended"
            return
        if self._loop_frames == 0:  # an empty loop would spin forever
            self._state = "failed"
            return
        self._loop_offset += self._loop_frames / (self.config.pace_fps or self._fps) if self.fps else 0.0
        self._loop_frames = 0
        # Reopening is the one restart every container supports (seeking to 0 is not).
        self._cap.release()
        self._cap = self._open()
        if self._cap is None:
            self._state = "failed"

    def _lost(self) -> None:
        """A camera/stream read failed: drop the capture and schedule a reopening."""
        self._cap.release()
        self._state = "reconnecting"
        self._stats = dataclasses.replace(self._stats, failures=self._stats.failures + 1)
        self._next_attempt = time.monotonic() + self._backoff

    def _reconnect(self) -> bool:
        """One reopening attempt after the back-off wait; True when live again."""
        if not wait_until(self._next_attempt, self._closed):
            return False
        cap = self._open()
        if cap is None:
            self._stats = dataclasses.replace(self._stats, failures=self._stats.failures + 1)
            self._backoff = min(2 * self._backoff, self.config.reconnect_max_s)
            self._next_attempt = time.monotonic() + self._backoff
            return False
        self._cap = cap
        self._state = "live"
        self._backoff = self.config.reconnect_initial_s
        self._stats = dataclasses.replace(self._stats, reconnects=self._stats.reconnects + 1)
        return True

    # ----------------------------------------------------------------- opening

    def _open(self) -> cv2.VideoCapture | None:
        """An opened capture for the target, or None."""
        if self.kind == "camera" and isinstance(self._target, int) and sys.platform.startswith("linux"):
            # OpenCV would only log a warning; a missing device node is a plain "no".
            if not Path(f"/dev/video{self._target}").exists():
                return None
        threads = [] if self.config.decoder_threads is None else [cv2.CAP_PROP_N_THREADS, self.config.decoder_threads]
        if self.kind == "stream":
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(self.config.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(self.config.read_timeout_s * 1000),
            ]  # fmt: skip
            cap = cv2.VideoCapture(self._target, cv2.CAP_FFMPEG, params + threads)
        elif self.kind == "file":
            cap = cv2.VideoCapture(self._target, cv2.CAP_FFMPEG, threads)
        else:
            cap = cv2.VideoCapture(self._target)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _open_failure(self) -> str:
        """One line saying why the target did not open and what to do."""
        if self.kind == "camera":
            found = sorted(glob.glob("/dev/video*"))
            listing = ", ".join(found) if found else "no /dev/video* devices"
            return (
                f"no camera {self._target} (found: {listing}); connect a camera, pick one of those, "
                "or give a video file or stream URL instead"
            )
        if self.kind == "file":
            return f"video file {self._target}: cannot be decoded; check it with `ffprobe {self._target}`"
        return (
            f"stream {self._target}: nothing received within {self.config.open_timeout_s:g} s; check the URL "
            f"and that the sender is running (e.g. `ffprobe {self._target}`)"
        )

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
