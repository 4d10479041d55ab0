"""Files: H.264 mp4 (optionally with an AAC stereo track), 16-bit multichannel wav, CSV."""
from __future__ import annotations

import csv
import wave
from pathlib import Path
from typing import Iterable

import av
import numpy as np

_AAC_FRAME = 1024  # samples per AAC frame
# Fixed encoder settings: same input -> same stream (x264 is deterministic unless told otherwise).
_X264_OPTIONS = {"crf": "20", "preset": "veryfast"}


def _audio_frame(audio: np.ndarray, start: int, rate: int) -> av.AudioFrame:
    chunk = np.ascontiguousarray(audio[:, start:start + _AAC_FRAME], dtype=np.float32)
    frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
    frame.sample_rate = rate
    frame.pts = start
    return frame


def write_video(path: Path, frames: Iterable[np.ndarray], fps: int, width: int, height: int,
                audio: np.ndarray | None = None, audio_rate: int = 48000) -> None:
    """Encode BGR uint8 frames of (height, width, 3) at ``fps`` frames/s into an
    H.264 yuv420p mp4; with ``audio`` ((2, N) float32 in [-1, 1] at
    ``audio_rate`` Hz) also an AAC stereo track, interleaved by time."""
    if audio is not None and (audio.ndim != 2 or audio.shape[0] != 2):
        raise ValueError(f"{path}: the AAC track is stereo: audio must be (2, N), got {audio.shape}")
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps, options=dict(_X264_OPTIONS))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=audio_rate, layout="stereo")
            sound.bit_rate = 192000
        sent = 0
        for i, img in enumerate(frames):
            if img.shape != (height, width, 3) or img.dtype != np.uint8:
                raise ValueError(f"{path}: frame {i} is {img.shape} {img.dtype}, expected ({height}, {width}, 3) uint8")
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            container.mux(video.encode(frame))
            # Audio up to the end of this frame, so the muxer never buffers much.
            while sound is not None and sent < audio.shape[1] and sent < (i + 1) * audio_rate / fps:
                container.mux(sound.encode(_audio_frame(audio, sent, audio_rate)))
                sent += _AAC_FRAME
        while sound is not None and sent < audio.shape[1]:
            container.mux(sound.encode(_audio_frame(audio, sent, audio_rate)))
            sent += _AAC_FRAME
        container.mux(video.encode(None))
        if sound is not None:
            container.mux(sound.encode(None))


def write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    """Write (C, N) float audio in [-1, 1] (C >= 1 channels, one per microphone) as
    16-bit PCM at ``rate`` Hz, channel c of every frame being row c."""
    if audio.ndim != 2 or audio.shape[0] < 1:
        raise ValueError(f"{path}: audio must be (channels, N), got {audio.shape}")
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(audio.shape[0])
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.T.tobytes())


def write_csv(path: Path, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
    """Write a header of ``columns`` and ``rows`` as comma-separated text, LF line ends."""
    with open(path, "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(columns)
        out.writerows(rows)
