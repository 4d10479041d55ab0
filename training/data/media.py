"""Reading video frames by time and audio by sample index, with PyAV.

Nothing here keeps a file open between calls: every function opens, reads and
closes, so datasets built on it are safe to fork into DataLoader workers.

Units: times in seconds from the video's first frame: a file's timeline
(pts x time_base) minus VideoInfo.start_s, and for audio minus
AudioInfo.start_s, which is the video's start when the audio track shares its
container (a muxer may delay the video past the audio's encoder priming, e.g.
21 ms in Matroska) and 0 for a separate wav. Audio positions are samples at
the file's own rate, frame sizes (H, W) in pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from flowgrad.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov")

# Full-scale divisors that map each PCM sample format to [-1, 1].
_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


class MediaError(InputError):
    """A media file cannot be read as needed; the message names the file and the problem."""


class NonFiniteError(MediaError):
    """Decoded samples (or a frame or flow made from them) hold NaN or infinity: a float
    WAV can carry them, and one such window turns a training loss into NaN."""


@dataclass(frozen=True)
class VideoInfo:
    """What a dataset needs to know about a video stream.

    path: the file. fps: average frame rate, frames/s. n_frames: frame count
    (from the container, else duration * fps). frame_hw: (H, W) in pixels of its frames.
    start_s: time of the first frame on the file's timeline, seconds.
    """

    path: Path
    fps: float
    n_frames: int
    frame_hw: tuple[int, int]
    start_s: float = 0.0

    @property
    def last_frame_s(self) -> float:
        """Time, seconds, of the last frame (nominal, n_frames - 1 frames after the first)."""
        return (self.n_frames - 1) / self.fps


@dataclass(frozen=True)
class AudioInfo:
    """An audio stream: path, rate (Hz), channels, n_samples (per channel, at rate),
    start_s: the time on the file's timeline that is sample 0, seconds."""

    path: Path
    rate: int
    channels: int
    n_samples: int
    start_s: float = 0.0

    @property
    def seconds(self) -> float:
        """Duration of the stream, seconds."""
        return self.n_samples / self.rate


def _open(path: Path):
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        raise MediaError(f"{path}: cannot open ({e}); check that the file exists and is a media file") from e


def _first_pts(stream) -> int:
    return stream.start_time if stream.start_time is not None else 0


def probe_video(path: Path) -> VideoInfo:
    """Frame rate, frame count and size of the first video stream of ``path``.

    Decodes the first frame to prove the stream is readable. Raises MediaError
    when the file cannot be opened, has no video stream or no decodable frame.
    """
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream")
        stream = container.streams.video[0]
        if not stream.average_rate or stream.average_rate <= 0:
            raise MediaError(f"{path}: unknown frame rate")
        fps = float(stream.average_rate)
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as e:
            raise MediaError(f"{path}: cannot decode video ({e})") from e
        if first is None:
            raise MediaError(f"{path}: video stream has no frames")
        n_frames = stream.frames
        if not n_frames:
            if stream.duration is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / av.time_base
            else:
                raise MediaError(f"{path}: neither frame count nor duration is known")
            n_frames = max(1, round(seconds * fps))
        start_s = float(first.pts * stream.time_base) if first.pts is not None else 0.0
        return VideoInfo(path=path, fps=fps, n_frames=int(n_frames), frame_hw=(first.height, first.width),
                         start_s=start_s)


def read_frames(video: VideoInfo, times: list[float]) -> list[tuple[float, np.ndarray]]:
    """The frames of ``video`` nearest in timestamp to each of ``times`` (seconds from its first frame).

    Returns one (frame time in seconds, (H, W, 3) uint8 BGR frame) per entry of
    ``times``, in the same order; ties go to the earlier frame. One seek and
    one sequential decode cover all the times. Raises MediaError when the
    file cannot be decoded.
    """
    path = video.path
    if not times:
        return []
    best: list[tuple[float, float, object]] = [(math.inf, 0.0, None)] * len(times)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream")
        stream = container.streams.video[0]
        base = stream.time_base
        period = 1.0 / float(stream.average_rate or 1)
        start, stop = min(times), max(times) + period
        frames = _decode_from(container, stream, video.start_s + start - period, path)
        for frame in frames:
            if frame.pts is None:
                raise MediaError(f"{path}: video frames without timestamps")
            ft = float(frame.pts * base) - video.start_s
            for i, t in enumerate(times):
                if abs(ft - t) < best[i][0]:
                    best[i] = (abs(ft - t), ft, frame)
            if ft > stop:
                break
        if any(b[2] is None for b in best):
            raise MediaError(f"{path}: no frame decoded near t = {min(times):.3f} s")
        # Convert once per distinct frame; several times may share one.
        converted: dict[int, np.ndarray] = {}
        out = []
        for _, ft, frame in best:
            if id(frame) not in converted:
                converted[id(frame)] = frame.to_ndarray(format="bgr24")
            out.append((ft, converted[id(frame)]))
        return out


def _decode_from(container, stream, t: float, path: Path):
    """Decoded frames of ``stream`` from the keyframe at or before ``t`` seconds.

    If the seek lands after ``t`` (some containers index coarsely), decoding
    restarts from the beginning so no wanted frame is missed.
    """
    base = stream.time_base
    try:
        if t > 0:
            container.seek(int(t / base), stream=stream, backward=True, any_frame=False)
            frames = container.decode(stream)
            first = next(frames, None)
            if first is not None and first.pts is not None and float(first.pts * base) <= t:
                yield first
                yield from frames
                return
        container.seek(_first_pts(stream), stream=stream, backward=True, any_frame=False)
        yield from container.decode(stream)
    except av.FFmpegError as e:
        raise MediaError(f"{path}: cannot decode ({e})") from e


def probe_audio(path: Path, start_s: float = 0.0) -> AudioInfo:
    """Rate, channel count and length of the first audio stream of ``path``.

    start_s: the time on the file's timeline to count as sample 0 (the
    video's VideoInfo.start_s when both share the file).

    Raises MediaError when the file cannot be opened or has no audio stream.
    The length comes from the stream's duration (for AAC it may include the
    encoder's padding of under one frame); without one the stream is decoded.
    """
    path = Path(path)
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        rate, channels = int(stream.rate or 0), int(stream.channels or 0)
        if rate <= 0 or channels <= 0:
            raise MediaError(f"{path}: audio stream without a sample rate or channels")
        if stream.duration is not None:
            n = round((float((stream.duration + _first_pts(stream)) * stream.time_base) - start_s) * rate)
        else:
            try:
                n = sum(frame.samples for frame in container.decode(stream))
            except av.FFmpegError as e:
                raise MediaError(f"{path}: cannot decode audio ({e})") from e
        return AudioInfo(path=path, rate=rate, channels=channels, n_samples=int(n), start_s=start_s)


def _planar_float(frame) -> np.ndarray:
    """(C, n) float32 in [-1, 1] from a decoded PCM audio frame of any sample format."""
    fmt = frame.format.name.rstrip("p")
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T
    if fmt in _INT_SCALE:
        data = data.astype(np.float64)
        if fmt == "u8":
            data = data - 128.0
        data = data / _INT_SCALE[fmt]
    return data.astype(np.float32, copy=False)


def read_audio(info: AudioInfo, start: int, count: int) -> np.ndarray:
    """Samples ``start`` .. ``start + count - 1`` of the audio stream in ``info.path``.

    Positions are sample indices at ``info.rate`` (sample 0 at the stream's
    start); positions outside the decoded stream read as zeros. Samples are
    placed by their timestamps, so a seek that lands early costs nothing in
    accuracy. Returns (channels, count) float32 in [-1, 1].
    Raises MediaError when the file cannot be decoded, NonFiniteError (a
    MediaError) when the samples read hold NaN or infinity.
    """
    path = info.path
    out = np.zeros((info.channels, count), dtype=np.float32)
    if count <= 0:
        return out
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        base = stream.time_base
        for frame in _decode_from(container, stream, info.start_s + start / info.rate, path):
            if frame.pts is None:
                raise MediaError(f"{path}: audio frames without timestamps")
            pos = round((float(frame.pts * base) - info.start_s) * info.rate)
            if pos >= start + count:
                break
            if pos + frame.samples <= start:
                continue
            data = _planar_float(frame)
            lo, hi = max(start, pos), min(start + count, pos + frame.samples)
            out[: data.shape[0], lo - start:hi - start] = data[: info.channels, lo - pos:hi - pos]
    if not np.isfinite(out).all():
        raise NonFiniteError(f"{path}: audio holds NaN or infinite samples between "
                             f"{start / info.rate:.3f} s and {(start + count) / info.rate:.3f} s")
    return out
