"""What a live run is made of, as plain data: :class:`LiveConfig` and its parts.

No argparse here: ``run_live``'s options are parsed into a LiveConfig by
realtime/cli.py, the benchmarks and tests build one directly. The defaults that
depend on the machine or on other fields (the model, the device, the flow backend,
each camera's audio) are filled in when a config is made, and values that cannot
work are refused then with :class:`StartError` (one line naming the ``run_live``
option), so that :func:`realtime.live.build_live` meets only the world's problems
(a missing camera, a busy port). Sizes are (H, W) in pixels (flowgrad.sizes), times seconds.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from flowgrad.errors import InputError
from flowgrad.sizes import format_wxh
from flowgrad.spatial.doa import DEFAULT_WINDOW_S
from flowgrad.spatial.geometry import ArrayGeometry

from ..assets import default_model
from ..audio_source import AudioSourceConfig
from ..pipeline import LIVE_FLOW_HW, MIN_FRAME_SIDE
from ..protocol import STREAM_NAME_RULE, is_stream_name
from ..publisher import CurveServer

FLOW_BACKENDS = ("opencv", "torch")


class StartError(InputError):
    """Bad input found before the pipelines start (run_live: one line, exit status 2)."""


def default_device() -> str:
    """"cuda" when torch sees a GPU, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_threads() -> int:
    """The cores this process may run on (its CPU affinity; the CPU count where unknown), >= 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadBudget:
    """How a live process spends its thread budget (run_live --threads, LiveConfig.threads).

    Every stream already runs its own capture, flow, inference and publish threads, so
    the parallelism of several cameras comes from the streams; threads INSIDE one call
    only pay off where calls are few and large (the model). Measured on 2 cores
    (docs/BENCHMARKS.md, issue 20): with the libraries' defaults each stream's small
    calls woke spinning thread teams that took the cores from the others.

    total: the budget, >= 1 (default: the cores this process may use).
    cameras: how many cameras share it. device: where the model runs ("cpu", "cuda").
    engine_workers: engine calls made at the same time: with several cameras on a CPU,
        one per thread of the budget (up to one per camera), each single-threaded, which
        costs less CPU per map than one call split over the cores; else 1.
    inference: each engine call's intra-op threads: total / engine_workers (onnxruntime's
        sleep when idle instead of spinning).
    engine_batch: most cameras' requests in one engine call: on a CPU 1 (waiting for
        company idles the cores, and a batch gains nothing there), on a GPU every camera.
    maps_at_once: several cameras' flow-and-map jobs that run at the same time
        (:mod:`realtime.turns`): on a CPU the engine workers, so each job has whole cores;
        on a GPU every camera, their calls batched.
    opencv: OpenCV's threads (flow, resizing, JPEG): 1, each stream's flow is one thread.
    decoder: FFmpeg decoding threads per camera: 1 (a 640x360 frame decodes in ~0.3 ms).
    """

    total: int
    cameras: int = 1
    device: str = "cpu"
    engine_workers: int = field(init=False)
    inference: int = field(init=False)
    engine_batch: int = field(init=False)
    maps_at_once: int = field(init=False)
    opencv: int = field(init=False, default=1)
    decoder: int = field(init=False, default=1)

    def __post_init__(self) -> None:
        if isinstance(self.total, bool) or not isinstance(self.total, int) or self.total < 1:
            raise StartError(f"--threads must be a whole number >= 1, got {self.total!r}")
        workers = min(self.total, self.cameras) if self.cameras > 1 and self.device == "cpu" else 1
        object.__setattr__(self, "engine_workers", workers)
        object.__setattr__(self, "inference", max(1, self.total // workers))
        object.__setattr__(self, "engine_batch", 1 if self.device == "cpu" else self.cameras)
        object.__setattr__(self, "maps_at_once", workers if self.device == "cpu" else self.cameras)

    def torch_threads(self, backend: str) -> int:
        """torch's intra-op threads (a process-wide setting) for an engine of ``backend``:
        the inference threads when torch runs the model, else 1 (torch then only prepares each
        stream's inputs: small ops, 13 ms of CPU a frame with 2 threads against 3.4 ms with 1)."""
        return self.inference if backend == "torch" else 1


def default_flow_backend(device: str) -> str:
    """Our torch Farneback on a GPU; OpenCV's, the fastest on a CPU, otherwise."""
    return "torch" if device.startswith("cuda") else "opencv"


@dataclass(frozen=True)
class SourceSettings:
    """One camera and what it hears.

    camera: camera index ("0"), stream URL (udp://, rtsp://, http://) or video file
        (looped, played in real time).
    audio: "mic" (the default input), a microphone name or PortAudio index (e.g.
        "pulse"), an audio file (looped, real time) or "video" (the camera file's own
        sound track). None: "video" for a camera file, else "mic".
    channels: microphone channels to capture (run_live --channels); None: one per microphone of
        the array (LiveConfig.spatial), else the device's first two.
    mic_calibration_db: what this audio reads, in dBFS(A), for a 94 dB SPL 1 kHz calibrator
        (run_live --mic-calibration): levels are then dB(A) SPL; None: dBFS(A).
    pace_fps: a camera FILE is played at this many frames/s instead of its own rate (a
        benchmark's camera faster than the clip, bench/streams.py --fps); None: its own.
    """

    camera: str
    audio: Optional[str] = None
    mic_calibration_db: Optional[float] = None
    channels: Optional[int] = None
    pace_fps: Optional[float] = None

    def __post_init__(self) -> None:
        cal = self.mic_calibration_db
        if cal is not None and (isinstance(cal, bool) or not isinstance(cal, (int, float)) or not math.isfinite(cal)):
            raise StartError(f"--mic-calibration must be a finite number of dBFS(A), got {cal!r}")
        if self.pace_fps is not None and not (math.isfinite(self.pace_fps) and self.pace_fps > 0):
            raise StartError(f"pace_fps must be a positive frame rate, got {self.pace_fps!r}")
        if self.audio is None:
            object.__setattr__(self, "audio", "video" if Path(self.camera).is_file() else "mic")
        if self.channels is not None and self.channels < 1:
            raise StartError(f"--channels must be at least 1, got {self.channels}")

    def audio_source(self, sample_rate: int, array_channels: Optional[int] = None) -> AudioSourceConfig:
        """What to open for ``audio`` at the model's ``sample_rate`` Hz; StartError for a
        "video" without a video file or a path that does not exist. ``array_channels``: the
        microphone array's channel count, a microphone's default channels."""
        spec, device = self.audio, None
        if spec == "video":
            if not Path(self.camera).is_file():
                raise StartError(f"--audio video needs a video FILE as --camera, got {self.camera!r}")
            spec = self.camera
        elif spec != "mic" and not Path(spec).is_file():
            if "/" in spec or Path(spec).suffix:
                raise StartError(f"--audio {spec}: no such audio file; give an existing file, 'video', 'mic' "
                                 "or a microphone name/index")
            spec, device = "mic", (int(spec) if spec.isdigit() else spec)
        if self.channels is not None and spec != "mic":
            raise StartError(f"--channels is for a microphone; --audio {self.audio} has the file's own channels")
        channels = self.channels if self.channels is not None or spec != "mic" else array_channels
        return AudioSourceConfig(spec, sample_rate, device=device, channels=channels)


@dataclass(frozen=True)
class ModelSettings:
    """The model and where it runs.

    spec: a .ckpt checkpoint, an .onnx export (or its prefix) or a registry name;
        None: the shipped demo model, or flow_only without it.
    backend: inference backend (flowgrad.engine.BACKENDS); None: from the model file.
    device: "cpu" or "cuda"; None: cuda when available.
    untrained: allow a registry name of a model with weights (random weights: timing only).
    """

    spec: Optional[str] = None
    backend: Optional[str] = None
    device: Optional[str] = None
    untrained: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec", str(self.spec or default_model()))
        object.__setattr__(self, "device", self.device or default_device())


@dataclass(frozen=True)
class FlowSettings:
    """Optical flow.

    working_hw: (H, W) in pixels of the grid the flow is computed on (camera frames are
        resized to it); magnitudes stay in camera pixels.
    backend: "opencv" (CPU) or "torch" (our Farneback on the model's device); None:
        torch on cuda, else opencv (LiveConfig fills it in).
    compile: fuse the torch Farneback with torch.compile, compiled before the cameras open.
    stabilise: remove camera shake from each flow field (False: --no-stabilise).
    motion_memory: feed the model the 5 s motion memory instead of one flow field (True),
        not (False), or as the model's default (None: flowgrad.flow.memory.default_for).
    """

    working_hw: tuple[int, int] = LIVE_FLOW_HW
    backend: Optional[str] = None
    compile: bool = False
    stabilise: bool = True
    motion_memory: Optional[bool] = None

    def __post_init__(self) -> None:
        if self.backend is not None and self.backend not in FLOW_BACKENDS:
            raise StartError(f"--flow-backend must be one of {', '.join(FLOW_BACKENDS)}, got {self.backend!r}")
        if min(self.working_hw) < MIN_FRAME_SIDE:
            raise StartError(f"flow size must be at least {MIN_FRAME_SIDE}x{MIN_FRAME_SIDE}, "
                             f"got {format_wxh(self.working_hw)}")


@dataclass(frozen=True)
class SpatialSettings:
    """The microphone array and what its direction of arrival does (docs/SPATIAL.md).

    geometry: the array and the camera's field of view (run_live --mics, --hfov); None: no
        array, no direction. With one, every camera's audio has one channel per microphone,
        and each map's message carries the direction heard (``doa``).
    fuse: multiply each map by the direction's likelihood, renormalised (a ``+doa`` model
        spec); needs a geometry. An export written from a "+doa" spec fuses whatever this
        says (Engine.wants_doa; build_live decides).
    window_s: seconds of the newest audio each direction is found from.
    """

    geometry: Optional[ArrayGeometry] = None
    fuse: bool = False
    window_s: float = DEFAULT_WINDOW_S

    def __post_init__(self) -> None:
        if self.fuse and self.geometry is None:
            raise StartError("a +doa model fuses the map with the direction heard by a microphone array: "
                             "give --mics FILE.json|stereo:D|square:D")
        if not (isinstance(self.window_s, (int, float)) and math.isfinite(self.window_s) and 0 < self.window_s <= 5):
            raise StartError(f"the direction window must be in (0, 5] seconds, got {self.window_s!r}")

    @property
    def channels(self) -> Optional[int]:
        """The audio channels the array needs (one per microphone), None without one."""
        return None if self.geometry is None else self.geometry.channels


@dataclass(frozen=True)
class PublishSettings:
    """Where the maps go.

    address: ZeroMQ PUB endpoint to bind ("tcp://127.0.0.1:*" binds a free port).
    stream: the stream name; with several cameras the streams are stream0, stream1, ...
    heatmap_dtype: wire type of the heatmap, "uint8" or "float16".
    jpeg_quality: quality (1-100) of the JPEG camera frame sent with each map; None sends none.
    curve: CURVE encryption and the allowed clients; None: plain TCP.
    min_score: maps whose sounding score is below this, in [0, 1], are published quiet
        (run_live --min-score; 0.5: even odds on a calibrated score).
    """

    address: str = "tcp://127.0.0.1:5556"
    stream: str = "camera"
    heatmap_dtype: str = "uint8"
    jpeg_quality: Optional[int] = 80
    curve: Optional[CurveServer] = None
    min_score: float = 0.5

    def __post_init__(self) -> None:
        score = self.min_score
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
            raise StartError(f"--min-score must be a number from 0 to 1, got {score!r}")


@dataclass(frozen=True)
class DashboardSettings:
    """The web dashboard of the published streams: port None for none, 0 for any free port."""

    port: Optional[int] = None

    def __post_init__(self) -> None:
        if self.port is not None and not 0 <= self.port <= 65535:
            raise StartError(f"dashboard: port {self.port} is not in 0..65535")


@dataclass(frozen=True)
class RunSettings:
    """How long and what is kept.

    duration: seconds to run; None: until Ctrl-C (or LiveSystem.request_stop).
    snapshot: PNG path of the run's snapshot (one per stream with several cameras); None: none.
    quiet: no progress lines and no live status line.
    stats_window_s: window of the fps and latency figures, seconds.
    """

    duration: Optional[float] = None
    snapshot: Optional[Path] = None
    quiet: bool = False
    stats_window_s: float = 5.0

    def __post_init__(self) -> None:
        if self.duration is not None and not self.duration > 0:
            raise StartError(f"--duration must be > 0 seconds, got {self.duration:g}")


@dataclass(frozen=True)
class LiveConfig:
    """One live run: cameras with their audio, one model, flow, publishing, dashboard, run.

    threads: the process's thread budget (run_live --threads), see :class:`ThreadBudget`;
        None: the cores this process may use.
    spatial: the microphone array and whether maps are fused with its direction.

    Made, it holds no None left to resolve but those that mean "none" (audio of a
    model without audio is simply not opened). :attr:`streams` names each camera's stream.
    """

    sources: tuple[SourceSettings, ...]
    model: ModelSettings = field(default_factory=ModelSettings)
    flow: FlowSettings = FlowSettings()
    publishing: PublishSettings = PublishSettings()
    dashboard: DashboardSettings = DashboardSettings()
    run: RunSettings = RunSettings()
    threads: Optional[int] = None
    spatial: SpatialSettings = SpatialSettings()

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "threads", ThreadBudget(default_threads() if self.threads is None
                                                         else self.threads).total)
        if not self.sources:
            raise StartError("no video source: give --camera INDEX|URL|FILE, or --demo for the bundled clip")
        if self.flow.backend is None:
            object.__setattr__(self, "flow", dataclasses.replace(
                self.flow, backend=default_flow_backend(self.model.device)))
        if self.flow.compile and self.flow.backend != "torch":
            raise StartError("--flow-compile compiles our torch Farneback: use it with --flow-backend torch")
        if self.dashboard.port is not None and self.publishing.curve is not None:
            raise StartError("--dashboard cannot read a CURVE stream; run python -m realtime.dashboard "
                             "--curve-secret ... --curve-server-key ... instead")
        wanted = self.spatial.channels
        for source in self.sources:
            if wanted is not None and source.channels is not None and source.channels != wanted:
                raise StartError(f"--channels {source.channels} but --mics has {wanted} microphones; give one "
                                 "channel per microphone (or leave --channels out)")
        bad = [name for name in self.streams if not is_stream_name(name)]
        if bad:
            raise StartError(f"--stream {self.publishing.stream!r}: gives the stream name {bad[0]!r}; "
                             f"a stream name is {STREAM_NAME_RULE}")

    @property
    def thread_budget(self) -> ThreadBudget:
        """How :attr:`threads` are spent."""
        return ThreadBudget(self.threads, len(self.sources), "cuda" if self.model.device.startswith("cuda") else "cpu")

    @property
    def streams(self) -> tuple[str, ...]:
        """The stream name of each camera, in order: ``stream``, or stream0, stream1, ... for several."""
        base = self.publishing.stream
        return (base,) if len(self.sources) == 1 else tuple(f"{base}{k}" for k in range(len(self.sources)))

    def snapshot_path(self, stream: str) -> Optional[Path]:
        """Where ``stream``'s snapshot goes: run.snapshot itself with one camera, else
        ``<stem>_<stream><suffix>`` beside it; None without a snapshot."""
        path = self.run.snapshot
        if path is None or len(self.sources) == 1:
            return path
        return path.with_name(f"{path.stem}_{stream}{path.suffix}")
