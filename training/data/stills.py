"""Evaluation sets of still frames with sound (Flickr-SoundNet, VGG-SS): the shared reader.

Each entry is one clip id with an annotated frame, the video frame right after
it (the flow partner), an audio file and a ground-truth map. Layout under ROOT::

    frames/<id>.jpg                 the annotated frame (.jpg, .jpeg or .png)
    next_frames/<id>.jpg            the video frame right after it
      or frames/<id>/*.jpg          one folder per clip: the first two images
                                    (sorted by name) are the frame and the next one
      or flow/flow_x/<id>.jpg and flow/flow_y/<id>.jpg
                                    Hear The Flow's preprocessed flow: u and v
                                    rounded and clipped to [0, 255] (negative motion
                                    is lost; exact for htf's reference encoding only)
    audio/<id>.wav                  any format PyAV reads (.wav, .flac, .mp3, ...)

Audio is prepared as Hear The Flow prepares it, at the model's own rate and
window length: mono (channels clipped to [-1, 1], then averaged), the middle
window (start = max(duration / 2 - window / 2, 0)), tiled when shorter.
Flow is OpenCV's Farneback (the papers' parameters) from the frame to the next
one at the frame's full resolution, in its pixels, resampled onto the input grid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from flowgrad.audio import resample
from flowgrad.flow import compensate, opencv_flow
from flowgrad.inputs import prepare_flow, prepare_frames

from .media import MediaError, probe_audio, read_audio
from .windows import DataConfig, DataError, Sample, SkipCounter

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus")

SKIP_NO_FRAME = "listed clip without a frame"
SKIP_NO_NEXT = "no next frame or flow images for the flow"
SKIP_NO_AUDIO = "listed clip without audio"
SKIP_UNREADABLE = "unreadable frame, flow or audio"


@dataclass(frozen=True)
class StillEntry:
    """One evaluation clip: id, the frame, the flow source, the audio file and the gt.

    next_frame: the following video frame, or None when ``flow_images`` holds
    Hear The Flow's (flow_x, flow_y) JPEGs instead. gt: (S, S) float32 in [0, 1].
    """

    clip: str
    frame: Path
    next_frame: Optional[Path]
    flow_images: Optional[tuple[Path, Path]]
    audio: Path
    gt: np.ndarray


def _first_with_suffix(folder: Path, stem: str, suffixes: tuple[str, ...]) -> Optional[Path]:
    for suffix in suffixes:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def find_frames(root: Path, clip: str) -> tuple[Optional[Path], Optional[Path], Optional[tuple[Path, Path]]]:
    """(frame, next frame, HTF flow images) of ``clip`` under ``root``; absent parts are None."""
    folder = root / "frames" / clip
    if folder.is_dir():
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return (images[0] if images else None), (images[1] if len(images) > 1 else None), None
    frame = _first_with_suffix(root / "frames", clip, IMAGE_SUFFIXES)
    following = _first_with_suffix(root / "next_frames", clip, IMAGE_SUFFIXES)
    fx = _first_with_suffix(root / "flow" / "flow_x", clip, IMAGE_SUFFIXES)
    fy = _first_with_suffix(root / "flow" / "flow_y", clip, IMAGE_SUFFIXES)
    return frame, following, ((fx, fy) if fx and fy else None)


def find_audio(root: Path, clip: str) -> Optional[Path]:
    """audio/<clip>.<any audio suffix> under ``root``, or None."""
    return _first_with_suffix(root / "audio", clip, AUDIO_SUFFIXES)


def resolve_entry(root: Path, clip: str, gt: np.ndarray, skipped: SkipCounter) -> Optional[StillEntry]:
    """The entry of a listed clip, or None (counted in ``skipped``) when a file is missing."""
    frame, following, flow_images = find_frames(root, clip)
    if frame is None:
        skipped.skip(SKIP_NO_FRAME, f"{clip}: no {root / 'frames' / clip}.jpg|.png or folder")
        return None
    if following is None and flow_images is None:
        skipped.skip(SKIP_NO_NEXT, f"{clip}: no next_frames/{clip}.jpg, second image in frames/{clip}/ "
                                   f"or flow/flow_x|flow_y/{clip}.jpg")
        return None
    audio = find_audio(root, clip)
    if audio is None:
        skipped.skip(SKIP_NO_AUDIO, f"{clip}: no {root / 'audio' / clip}.wav (or .flac, .mp3, ...)")
        return None
    return StillEntry(clip, frame, following, None if following else flow_images, audio, gt)


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """An image file as OpenCV reads it ((H, W, 3) uint8 BGR by default); MediaError if unreadable."""
    image = cv2.imread(str(path), flags)
    if image is None or image.size == 0:
        raise MediaError(f"{path}: cannot read the image (missing, empty or not an image)")
    return image


def middle_window(path: Path, config: DataConfig) -> np.ndarray:
    """The audio window of a still clip, as Hear The Flow takes it: (T,) float32 at config.audio_rate.

    T = config.window_samples. Mono = mean of the channels clipped to [-1, 1];
    the window starts at max(duration / 2 - audio_seconds / 2, 0) seconds; a
    shorter recording is repeated end to end (tiled) to fill the window.
    Raises MediaError for an unreadable or empty file.
    """
    info = probe_audio(path)
    if info.n_samples <= 0:
        raise MediaError(f"{path}: the audio stream is empty")
    mono = np.clip(read_audio(info, 0, info.n_samples), -1.0, 1.0).mean(axis=0)
    wave = resample(torch.from_numpy(mono), info.rate, config.audio_rate).numpy()
    n = config.window_samples
    if len(wave) < n:
        return np.tile(wave, math.ceil(n / len(wave)))[:n].astype(np.float32)
    start = (len(wave) - n) // 2
    return np.ascontiguousarray(wave[start:start + n], dtype=np.float32)


def _reference_flow_images(paths: tuple[Path, Path], size: tuple[int, int]) -> np.ndarray:
    """Hear The Flow's flow JPEGs -> (2, H, W) float32 u, v in [0, 255] px of the frame."""
    u, v = (read_image(p, cv2.IMREAD_GRAYSCALE) for p in paths)
    if u.shape != v.shape:
        raise MediaError(f"{paths[0]} and {paths[1]}: flow_x and flow_y sizes differ ({u.shape} vs {v.shape})")
    flow = np.stack([u, v]).astype(np.float32)
    if flow.shape[1:] != size:
        flow = np.stack([cv2.resize(c, size[::-1], interpolation=cv2.INTER_LINEAR) for c in flow])
    return flow


def still_flow(entry: StillEntry, frame_bgr: np.ndarray, config: DataConfig) -> torch.Tensor:
    """Flow of ``entry`` on the input grid: (2, *config.input_size) float32, px of the frame.

    From the next frame: Farneback (config.farneback) at the frame's full
    resolution, camera shake removed when config.stabilise (a single pair: no
    motion memory). From HTF's flow images: their values, resized to the frame if needed.
    """
    height, width = frame_bgr.shape[:2]
    if entry.next_frame is not None:
        following = read_image(entry.next_frame)
        if following.shape != frame_bgr.shape:
            raise MediaError(f"{entry.next_frame}: size {following.shape[1]}x{following.shape[0]} differs from "
                             f"the frame's {width}x{height} ({entry.frame})")
        flow = opencv_flow(frame_bgr, following, config.farneback)
        if config.stabilise:  # a fallback keeps the pair's flow, as for video
            flow, _ = compensate(flow, frame=cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY))
    else:
        flow = _reference_flow_images(entry.flow_images, (height, width))
    return prepare_flow(torch.from_numpy(np.ascontiguousarray(flow)), config.input_size)[0]


class StillEval(Dataset):
    """Samples of still-frame evaluation entries: frame, flow, middle audio window, gt.

    entries: the usable clips (files found at index time). config: DataConfig
    (audio_rate / audio_seconds: the model's; input_size must equal the gt's
    size). skipped: the SkipCounter of the reader that listed them.
    cache: an optional training.data.flowcache.FlowCache (entries keyed by the
    image files), shared across models so flow is computed once.
    Reading a sample that fails (a corrupt image or audio file) raises
    DataError; the evaluation counts it with :meth:`count_unreadable` and goes on.
    """

    def __init__(self, entries: list[StillEntry], config: DataConfig, skipped: SkipCounter, cache=None) -> None:
        if not isinstance(config, DataConfig):
            raise ValueError(f"config must be a DataConfig, got {type(config).__name__}")
        for e in entries:
            if e.gt.shape != tuple(config.input_size):
                raise ValueError(f"{e.clip}: gt is {e.gt.shape}, config.input_size is {config.input_size}")
        self.entries = entries
        self.config = config
        self.cache = cache
        self._skipped = skipped

    @property
    def skipped(self) -> dict[str, int]:
        """Inputs left out, reason -> count (a copy)."""
        return dict(self._skipped.counts)

    def count_unreadable(self, detail: str) -> None:
        """Count one entry whose files could not be read at evaluation time."""
        self._skipped.skip(SKIP_UNREADABLE, detail)

    def __len__(self) -> int:
        return len(self.entries)

    def clip_of(self, index: int) -> str:
        """The clip id of entry ``index`` (nothing is read)."""
        return self.entries[index].clip

    def audio_of(self, index: int) -> np.ndarray:
        """Entry ``index``'s middle audio window (T,) float32 at the config's rate (only the audio
        is read); MediaError when it cannot be read."""
        return middle_window(self.entries[index].audio, self.config)

    def __getitem__(self, index: int) -> Sample:
        entry = self.entries[index]
        try:
            frame_bgr = read_image(entry.frame)
            if self.cache is not None:
                flow = self.cache.still_flow(entry, frame_bgr, self.config, still_flow)
            else:
                flow = still_flow(entry, frame_bgr, self.config)
            wave = torch.from_numpy(middle_window(entry.audio, self.config))
        except MediaError as e:
            raise DataError(f"{entry.clip}: {e}") from e
        frame = prepare_frames(torch.from_numpy(frame_bgr), self.config.input_size)[0]
        return Sample(frame=frame, flow=flow, wave=wave, clip=entry.clip, t=0.0, gt=torch.from_numpy(entry.gt))
