"""Model-ready samples from clips: the data config, the Sample type, audio
windows, frame + flow at a time, and the Dataset that turns (clip, t) items
into Samples.

Conventions (REFERENCE sections 3-4): flow is Farneback from the frame at t to
the frame ~flow_interval_s later, in pixels of the FULL video frame per
flow_interval_s, resampled onto the input grid; frames are RGB in [0, 1] on the
same grid; audio is mono float32 at ``audio_rate`` Hz, centred on t.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from flowgrad.audio import resample, resampled_length
from flowgrad.errors import InputError
from flowgrad.flow import FLOW_INTERVAL_S, FarnebackParams, RollingFlow, RollingFlowConfig
from flowgrad.flow.memory import MotionMemory
from flowgrad.flow.stabilise import METHOD as STABILISE_METHOD
from flowgrad.inputs import prepare_flow, prepare_frames
from training.metrics import boxes_to_mask

from .media import AudioInfo, MediaError, NonFiniteError, VideoInfo, read_audio, read_frames

log = logging.getLogger(__name__)

# Resampling a piece of a clip equals resampling the whole clip only away from
# the piece's ends; this many rate-ratio blocks on each side cover the sinc
# kernel of flowgrad.audio.resample (at most ~33 blocks with its defaults).
_RESAMPLE_MARGIN_BLOCKS = 40
# A read failing in __getitem__ is replaced by the next item this many times at most.
_MAX_SUBSTITUTES = 3

SKIP_READ_FAILED = "read failed in __getitem__ (substituted)"
SKIP_NON_FINITE = "NaN or infinite audio, frame or flow (substituted)"


class DataError(InputError):
    """A dataset cannot produce a sample; the message says which and why."""


def _positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"DataConfig.{name} must be a finite number > 0, got {value!r}")


def _size_hw(name: str, value) -> None:
    if (not isinstance(value, tuple) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"DataConfig.{name} must be a tuple of two positive ints, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """How samples are cut and encoded.

    audio_rate: Hz of the returned waves. audio_seconds: window length, s.
    flow_interval_s: time between the two frames of a flow pair, s.
    stride_s: spacing of training window centres, s.
    flow_work_hw: (H, W) in pixels of the grid Farneback runs on (video frames resized
        with INTER_AREA, flow rescaled to full-frame px); None = the full frame.
    input_size: (H, W) in pixels of the model's frame/flow/gt grid.
    farneback: Farneback parameters (the papers' by default).
    stabilise: remove camera shake from each flow pair (flowgrad.flow.stabilise; on by
        default); a pair whose background cannot be fitted keeps its flow (counted in
        :class:`FlowCounts`).
    motion_memory_s: when > 0, the sample's flow is the motion memory
        (flowgrad.flow.memory) at t of the pairs at t, t - flow_interval_s, ... over
        the preceding motion_memory_s seconds (from the clip's start at most),
        instead of the one pair at t; 0 = the pair.
    """

    audio_rate: int = 16000
    audio_seconds: float = 5.0
    flow_interval_s: float = FLOW_INTERVAL_S
    stride_s: float = 1.0
    flow_work_hw: Optional[tuple[int, int]] = None
    input_size: tuple[int, int] = (224, 224)
    farneback: FarnebackParams = FarnebackParams()
    stabilise: bool = True
    motion_memory_s: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.audio_rate, bool) or not isinstance(self.audio_rate, int) or self.audio_rate <= 0:
            raise ValueError(f"DataConfig.audio_rate must be a positive int (Hz), got {self.audio_rate!r}")
        for name in ("audio_seconds", "flow_interval_s", "stride_s"):
            _positive(name, getattr(self, name))
        if self.flow_work_hw is not None:
            _size_hw("flow_work_hw", self.flow_work_hw)
        _size_hw("input_size", self.input_size)
        if not isinstance(self.farneback, FarnebackParams):
            raise ValueError(f"DataConfig.farneback must be a FarnebackParams, got {type(self.farneback).__name__}")
        if not isinstance(self.stabilise, bool):
            raise ValueError(f"DataConfig.stabilise must be a bool, got {self.stabilise!r}")
        if self.motion_memory_s != 0:
            _positive("motion_memory_s", self.motion_memory_s)

    @property
    def window_samples(self) -> int:
        """Samples per audio window: round(audio_seconds * audio_rate)."""
        return round(self.audio_seconds * self.audio_rate)


@dataclass(frozen=True)
class Sample:
    """One model-ready example (a batch of them after :func:`collate`).

    frame: (3, H, W) float32 RGB in [0, 1], (H, W) = config.input_size.
    flow: (2, H, W) float32 (dx, dy) in pixels of the full video frame per
        flow_interval_s, from the frame at t onwards.
    wave: (T,) float32 mono at config.audio_rate, T = config.window_samples,
        centred on t (sample T // 2 is at time t).
    clip: clip id. t: time of the frame in the clip, seconds.
    gt: (H, W) float32 binary ground-truth mask for evaluation pairs, else None.
    skipped: the skip reason of every input passed over to make this sample
        (substitutions); carried so that counts made in DataLoader workers reach
        the training loop through :func:`collate`.
    """

    frame: torch.Tensor
    flow: torch.Tensor
    wave: torch.Tensor
    clip: str
    t: float
    gt: Optional[torch.Tensor] = None
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Batch:
    """Samples stacked by :func:`collate`: frame (B, 3, H, W), flow (B, 2, H, W),
    wave (B, T), clip (B names), t (B,) float64 seconds, gt (B, H, W) or None,
    skipped: reason -> count of the inputs passed over to make these samples."""

    frame: torch.Tensor
    flow: torch.Tensor
    wave: torch.Tensor
    clip: tuple[str, ...]
    t: torch.Tensor
    gt: Optional[torch.Tensor]
    skipped: dict[str, int] = field(default_factory=dict)


def collate(samples: Sequence[Sample]) -> Batch:
    """DataLoader ``collate_fn``: stack Samples into a :class:`Batch`.

    Raises ValueError for an empty list or a mix of samples with and without gt.
    """
    if not samples:
        raise ValueError("collate: no samples")
    with_gt = [s.gt is not None for s in samples]
    if any(with_gt) and not all(with_gt):
        raise ValueError("collate: some samples have gt and some do not; batch them separately")
    return Batch(
        frame=torch.stack([s.frame for s in samples]),
        flow=torch.stack([s.flow for s in samples]),
        wave=torch.stack([s.wave for s in samples]),
        clip=tuple(s.clip for s in samples),
        t=torch.tensor([s.t for s in samples], dtype=torch.float64),
        gt=torch.stack([s.gt for s in samples]) if all(with_gt) else None,
        skipped=dict(Counter(reason for s in samples for reason in s.skipped)),
    )


class SkipCounter:
    """Counts skipped inputs per reason; logs one warning per reason (the first case)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def skip(self, reason: str, detail: str) -> None:
        """Count one skipped input under ``reason``; ``detail`` names it in the first warning."""
        if reason not in self.counts:
            log.warning("skipped: %s: %s (further cases are only counted, see .skipped)", reason, detail)
        self.counts[reason] = self.counts.get(reason, 0) + 1


def window_centres(video: VideoInfo, audio: AudioInfo, config: DataConfig) -> list[float]:
    """Training window centres, seconds: (k + 1/2) * stride_s for k = 0, 1, ...

    while the centre is within the audio and a frame flow_interval_s later
    exists (centre + flow_interval_s <= the last frame's time).
    """
    limit = min(video.last_frame_s - config.flow_interval_s, audio.seconds)
    count = math.floor(limit / config.stride_s - 0.5 + 1e-9) + 1
    return [(k + 0.5) * config.stride_s for k in range(max(0, count))]


def _resampled_piece(audio: AudioInfo, rate: int, start: int, count: int) -> np.ndarray:
    """Output samples start .. start + count - 1 of the whole clip, mono, resampled to ``rate``.

    Reads only the input samples these depend on: a piece starting at input
    sample q * a (a : b the reduced rate ratio) maps to output sample q * b, so
    the result equals resampling the whole clip and slicing.
    """
    g = math.gcd(audio.rate, rate)
    a, b = audio.rate // g, rate // g
    q0 = start // b - _RESAMPLE_MARGIN_BLOCKS
    q1 = -(-(start + count) // b) + _RESAMPLE_MARGIN_BLOCKS
    mono = read_audio(audio, q0 * a, (q1 - q0) * a).mean(axis=0)
    out = resample(torch.from_numpy(mono), audio.rate, rate).numpy()
    return out[start - q0 * b:start - q0 * b + count]


def audio_window(audio: AudioInfo, centre_s: float, config: DataConfig) -> np.ndarray:
    """The mono audio window centred on ``centre_s`` seconds: (T,) float32 at audio_rate.

    Sample T // 2 is at round(centre_s * audio_rate). Parts before the clip's
    start or after its end are TILED: filled with the clip's own audio taken
    cyclically (the clip's end before its start), so a window at a clip edge
    is full of real sound at the clip's level rather than silence that would
    skew the spectrogram's statistics. Needs a clip at least one window long.
    """
    n = config.window_samples
    total = resampled_length(audio.n_samples, audio.rate, config.audio_rate)
    if total < n:
        raise MediaError(f"{audio.path}: audio is {audio.seconds:.3f} s, shorter than the "
                         f"{config.audio_seconds} s window")
    pos = round(centre_s * config.audio_rate) - n // 2
    pieces = []
    while n > 0:
        s = pos % total
        take = min(n, total - s)
        pieces.append(_resampled_piece(audio, config.audio_rate, s, take))
        pos, n = pos + take, n - take
    return np.concatenate(pieces).astype(np.float32, copy=False)


def flow_frame_times(video: VideoInfo, t: float, config: DataConfig) -> tuple[float, float]:
    """Nominal times, seconds, of the two frames of the flow pair at ``t``.

    The frame nearest t and the one nearest t + flow_interval_s, at least one
    frame later; at the clip's end the pair moves back to the last two frames.
    """
    if video.n_frames < 2:
        raise MediaError(f"{video.path}: a flow pair needs at least 2 frames, the video has {video.n_frames}")
    last = video.n_frames - 1
    ia = min(round(t * video.fps), last)
    ib = min(max(ia + 1, round((t + config.flow_interval_s) * video.fps)), last)
    ia = min(ia, ib - 1)
    return ia / video.fps, ib / video.fps


@dataclass
class FlowCounts:
    """Flow pairs computed (not read from a cache) and how many of them kept their camera
    shake because the background could not be fitted (stabilise fallbacks)."""

    pairs: int = 0
    stabilise_fallbacks: int = 0


class FlowPair(NamedTuple):
    """One flow pair of a clip.

    frame: (H, W, 3) uint8 BGR frame of the full video nearest the pair's time (None where
        it was not asked for). flow: (2, *input_size) float32 in full-frame pixels per
        flow_interval_s (the pair's real spacing scaled to the nominal interval).
    camera: (dx, dy) the camera's displacement of the picture over the pair, full-frame
        pixels (the stabiliser's fit, unscaled); None without stabilisation or where it fell back.
    """

    frame: Optional[np.ndarray]
    flow: torch.Tensor
    camera: Optional[tuple[float, float]]


def compute_flow(video: VideoInfo, t: float, config: DataConfig,
                 counts: Optional[FlowCounts] = None) -> FlowPair:
    """Frame at t and Farneback flow from it (OpenCV, config.farneback), camera
    shake removed when config.stabilise (config.motion_memory_s is not applied here:
    see :func:`memory_flow`).

    The pair is :func:`flow_frame_times`'s; the returned frame is always the
    one nearest t. Returns a :class:`FlowPair`. counts, when given, counts the pair
    and its fallback. Raises MediaError.
    """
    ta, tb = flow_frame_times(video, t, config)
    (fa_t, fa), (fb_t, fb) = read_frames(video, [ta, tb])
    frame = fa
    if fb_t <= fa_t:
        # Past the real last frame (a frame count estimated from the duration
        # can be one too many): the flow pair is the frame before it and it.
        (fa_t, fa), (fb_t, fb) = read_frames(video, [fa_t - 1.0 / video.fps, fa_t])
    if fb_t <= fa_t:
        raise MediaError(f"{video.path}: no two distinct frames near {ta:.3f} s and {tb:.3f} s")
    rolling = RollingFlow(RollingFlowConfig(
        interval_s=config.flow_interval_s, working_hw=config.flow_work_hw, farneback=config.farneback,
        history_s=fb_t - fa_t + config.flow_interval_s, stabilise=config.stabilise))
    rolling.push(fa, fa_t)
    result = rolling.push(fb, fb_t)
    if result is None:
        raise MediaError(f"{video.path}: frames {fa_t:.3f} s and {fb_t:.3f} s are too close for a flow pair")
    if counts is not None:
        counts.pairs += 1
        counts.stabilise_fallbacks += rolling.stats.stabilise_fallbacks
    flow = prepare_flow(torch.from_numpy(result.per_interval()), config.input_size)[0]
    return FlowPair(frame, flow, result.camera)


def memory_times(t: float, config: DataConfig) -> list[float]:
    """Times, seconds, of the flow pairs the motion memory at t is made of, oldest first:
    t - k * flow_interval_s for the k >= 0 younger than motion_memory_s, not before 0."""
    ks = range(math.ceil(config.motion_memory_s / config.flow_interval_s - 1e-9) - 1, -1, -1)
    return [t - k * config.flow_interval_s for k in ks if t - k * config.flow_interval_s >= -1e-9]


def memory_flow(t: float, config: DataConfig, pair_flow, video: VideoInfo) -> torch.Tensor:
    """The motion memory at t: (2, *input_size) float32 in full-frame pixels per flow_interval_s.

    pair_flow(t_k) -> the :class:`FlowPair` at t_k (:func:`compute_flow`'s, usually through a
    cache; its frame is not used); it is called for each of :func:`memory_times`, oldest first, and
    fed to the memory with the pair's older frame (the frame the flow is sampled on, as live), all
    read from ``video`` in one decode, and with the previous pair's camera displacement (that pair
    ends on this one's older frame). Raises MediaError.
    """
    times = memory_times(t, config)
    frames = read_frames(video, [flow_frame_times(video, t_k, config)[0] for t_k in times])
    memory = MotionMemory(config.motion_memory_s)
    field, camera = None, None
    for t_k, (_, frame) in zip(times, frames):
        pair = pair_flow(t_k)
        field = memory.update(pair.flow.numpy(), t_k, frame, camera=camera)
        camera = pair.camera
    return torch.from_numpy(field)


@dataclass(frozen=True)
class ClipSource:
    """A usable clip: id, the video its frames and flow come from, and its audio."""

    clip: str
    video: VideoInfo
    audio: AudioInfo


@dataclass(frozen=True)
class Item:
    """One sample to make: clip index into the dataset's sources, time t (s),
    and for evaluation the gt boxes (x, y, w, h in px of the video frame)."""

    source: int
    t: float
    boxes: Optional[tuple[tuple[float, float, float, float], ...]] = None


class WindowDataset(Dataset):
    """Samples at (clip, t) items; the base of the training and evaluation datasets.

    sources: usable clips (decided at index time). items: what to make.
    config: :class:`DataConfig`. cache: an optional flow cache with
    ``flow(video, t, config, compute)`` (see training.data.flowcache).
    skipped: the counter of inputs left out at index time.
    substitute: what a read failing in __getitem__ does (a file changed or
    broke after indexing, or audio, frame or flow holding NaN or infinity):
    True replaces it by the first item of the next clip (up to 3 tries, so a
    broken clip costs one try; counted under SKIP_READ_FAILED or
    SKIP_NON_FINITE, so a training epoch goes on); False raises DataError
    (evaluation must not score a different pair). Counts made inside
    DataLoader worker processes stay in those processes, but each reaches the
    training loop through ``Sample.skipped`` and ``Batch.skipped``.
    Files are opened per read, so the dataset forks safely into workers.
    """

    def __init__(self, sources: list[ClipSource], items: list[Item], config: DataConfig,
                 cache=None, skipped: Optional[SkipCounter] = None, substitute: bool = True) -> None:
        if not isinstance(config, DataConfig):
            raise ValueError(f"config must be a DataConfig, got {type(config).__name__}")
        self.sources = sources
        self.items = items
        self.config = config
        self.cache = cache
        self._skipped = skipped if skipped is not None else SkipCounter()
        self._substitute = substitute
        self.flow_counts = FlowCounts()

    @property
    def skipped(self) -> dict[str, int]:
        """Inputs left out, reason -> count (a copy)."""
        return dict(self._skipped.counts)

    def __len__(self) -> int:
        return len(self.items)

    def clip_of(self, index: int) -> str:
        """The clip id of item ``index`` (nothing is read)."""
        return self.sources[self.items[index].source].clip

    def audio_of(self, index: int) -> np.ndarray:
        """Item ``index``'s mono audio window (T,) float32 at the config's rate (only the audio
        is read); MediaError when it cannot be read."""
        item = self.items[index]
        return audio_window(self.sources[item.source].audio, item.t, self.config)

    def subset(self, indices: Sequence[int]) -> "WindowDataset":
        """A dataset of the items at ``indices`` (same sources, config, cache and skip
        counter), so that substitutes are drawn from the subset only (a validation
        window is never replaced by a training window)."""
        return WindowDataset(self.sources, [self.items[i] for i in indices], self.config, cache=self.cache,
                             skipped=self._skipped, substitute=self._substitute)

    def _next_clip(self, pos: int) -> int:
        """Position of the first item after ``pos`` (cyclically) from another clip, or pos + 1."""
        source = self.items[pos].source
        for step in range(1, len(self)):
            if self.items[(pos + step) % len(self)].source != source:
                return (pos + step) % len(self)
        return (pos + 1) % len(self)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        pos, passed = index, []
        for _ in range(_MAX_SUBSTITUTES + 1):
            try:
                sample = self._make(self.items[pos])
            except MediaError as e:
                if not self._substitute:
                    raise DataError(f"sample {index}: {e}") from e
                reason = SKIP_NON_FINITE if isinstance(e, NonFiniteError) else SKIP_READ_FAILED
                self._skipped.skip(reason, str(e))
                passed.append(reason)
                pos = self._next_clip(pos)
                continue
            return dataclasses.replace(sample, skipped=tuple(passed)) if passed else sample
        raise DataError(f"sample {index} and {_MAX_SUBSTITUTES} substitutes from other clips could not be read; "
                        "see the warnings")

    def _make(self, item: Item) -> Sample:
        src, cfg = self.sources[item.source], self.config
        frame_bgr, flow, _ = self._pair(src, item.t)
        if cfg.motion_memory_s > 0:
            flow = memory_flow(item.t, cfg, lambda t_k: self._pair(src, t_k, frame=False), src.video)
        frame = prepare_frames(torch.from_numpy(frame_bgr), cfg.input_size)[0]
        wave = torch.from_numpy(audio_window(src.audio, item.t, cfg))
        for what, tensor in (("flow", flow), ("frame", frame), ("audio window", wave)):
            if not bool(torch.isfinite(tensor).all()):  # a flow cache entry, or audio resampled past float32
                raise NonFiniteError(f"{src.clip}: the {what} at {item.t:.3f} s holds NaN or infinite values")
        gt = None
        if item.boxes is not None:
            gt = torch.from_numpy(boxes_to_mask(item.boxes, src.video.frame_hw, cfg.input_size[0]))
        return Sample(frame=frame, flow=flow, wave=wave, clip=src.clip, t=item.t, gt=gt)

    def _pair(self, src: ClipSource, t: float, frame: bool = True) -> FlowPair:
        """The flow pair at t of a clip, through the cache when there is one;
        frame=False may give None for the frame (a cache hit then decodes none)."""
        cfg = dataclasses.replace(self.config, motion_memory_s=0.0)

        def compute(video, t, config):
            return compute_flow(video, t, config, self.flow_counts)
        if self.cache is None:
            return compute(src.video, t, cfg)
        if frame:
            return self.cache.flow(src.video, t, cfg, compute)
        return self.cache.flow_field(src.video, t, cfg, compute)


def config_fingerprint(config: DataConfig) -> dict:
    """The config fields that determine a flow field, as JSON-ready values. Stabilisation is
    always part of it, so that caches from before it existed (uncompensated) are not reused."""
    work_hw = config.flow_work_hw
    # Stored as the (W, H) "flow_work_size" it always was.
    return {"flow_interval_s": config.flow_interval_s, "flow_work_size": work_hw[::-1] if work_hw else None,
            "input_size": config.input_size, "farneback": asdict(config.farneback),
            "stabilise": STABILISE_METHOD if config.stabilise else False, "motion_memory_s": config.motion_memory_s}
