"""The one place a live system is wired: :func:`build_live` turns a LiveConfig into a LiveSystem.

It opens, in this order, the engine, the shared Farneback (compiled now when asked,
before any camera waits for it), each camera's video source and, for a model that
listens or a microphone array, each microphone's audio ring and source, the publisher and
the dashboard, then makes one :class:`~realtime.pipeline.Pipeline` per camera. Whatever it
opened is closed again when a later part fails (or Ctrl-C arrives meanwhile). What it
decides, here only:

* several cameras share one model through a :class:`~realtime.batching.BatchingEngine`
  (their heatmap requests batched) and one ZeroMQ socket through
  :class:`~realtime.streams.SharedPublish`; one camera uses both directly;
* the torch Farneback is shared as a :class:`~realtime.batching.BatchingFlow` by
  several cameras, or by one when compiled; else each stream computes its own flow;
* cameras that name one microphone (or one audio file) share its source, ring and audio
  embedding (:class:`~realtime.audio_source.SharedAudioSource`,
  :class:`~realtime.batching.SharedEmbedding`);
* the process's threads follow :class:`~realtime.live.config.ThreadBudget` (OpenCV's and
  torch's process-wide settings are made here, and only here);
* with a snapshot asked for, each stream's messages pass a
  :class:`~realtime.snapshot.SnapshotSink` on their way to the socket.
"""
from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Optional

import cv2
import torch

from flowgrad import engine as engines
from flowgrad.errors import InputError, one_line
from flowgrad.flow import RollingFlowConfig
from flowgrad.flow.memory import MEMORY_SECONDS, default_for
from flowgrad.sizes import format_wxh
from flowgrad.spatial.with_doa import WithDoa

from .. import console
from ..audio_source import SharedAudioSource, open_audio_source
from ..batching import BatchingEngine, BatchingFlow, SharedEmbedding
from ..dashboard import DashboardConfig, DashboardError, DashboardThread
from ..pipeline import Pipeline, PipelineConfig, frame_size_problem
from ..publisher import Publisher, PublisherConfig
from ..ring import AudioRing
from ..snapshot import SnapshotSink
from ..streams import SharedPublish, run_streams
from ..turns import Turns
from ..video_source import SourceError, VideoSource, VideoSourceConfig
from .config import LiveConfig, SourceSettings, StartError

# Ctrl-C ends run_live within 2 s: the pipelines get this long to stop, the rest is for
# closing the publisher and the interpreter's exit.
STOP_BUDGET_S = 1.2
# Seconds of audio each stream's ring holds at least: the model's window, or more.
MIN_RING_S = 5.0


class LiveSystem:
    """A built live run (made by :func:`build_live`): run it, stop it, read its figures.

    pipelines: one per camera, in config.sources order, publishing config.streams.
    engine: what the pipelines call (a BatchingEngine around the model with several cameras).
    flow: the shared BatchingFlow, or None. publisher: the one PUB socket.
    dashboard: the DashboardThread, or None. sinks: the SnapshotSinks (none without a snapshot).
    """

    def __init__(self, config: LiveConfig, pipelines: list, engine, publisher: Publisher,
                 flow: Optional[BatchingFlow] = None, dashboard: Optional[DashboardThread] = None,
                 sinks: tuple = ()) -> None:
        self.config, self.pipelines, self.engine, self.publisher = config, pipelines, engine, publisher
        self.flow, self.dashboard, self.sinks = flow, dashboard, sinks
        self._closed = False

    @property
    def streams(self) -> tuple[str, ...]:
        """The stream names, one per pipeline."""
        return self.config.streams

    @property
    def address(self) -> str:
        """The endpoint the publisher bound (a "*" port resolved)."""
        return self.publisher.address

    def run(self, on_status: Optional[Callable[[list[dict]], None]] = None) -> list[dict]:
        """Start every pipeline, run for config.run.duration seconds (None: until Ctrl-C or
        :meth:`request_stop`), stop them and close the shared parts.

        on_status: called with the stats of every stream (a list, in stream order) each
        status period. Returns the final stats, one dict per stream. Raises PipelineError
        (everything stopped and closed) when a stage failed.
        """
        duration = self.config.run.duration
        try:
            if len(self.pipelines) == 1:
                report = None if on_status is None else (lambda stats: on_status([stats]))
                return [self.pipelines[0].run(duration=duration, on_status=report)]
            return run_streams(self.pipelines, duration=duration, on_status=on_status)
        finally:
            self.close()

    def request_stop(self) -> None:
        """Ask :meth:`run` to end (from any thread); it then stops and closes everything."""
        for pipeline in self.pipelines:
            pipeline.request_stop()

    def close(self) -> None:
        """Close the dashboard, the publisher and the shared engine and flow (after the
        pipelines stopped); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.dashboard is not None:
            self.dashboard.stop()
        self.publisher.close()
        if isinstance(self.engine, BatchingEngine):
            self.engine.close()
        if self.flow is not None:
            self.flow.close()

    # ------------------------------------------------------------------ reports

    def stats(self) -> list[dict]:
        """Each stream's live figures (Pipeline.stats), in stream order."""
        return [p.stats() for p in self.pipelines]

    def status_line(self, all_stats: Optional[list[dict]] = None) -> str:
        """The console's line of figures for ``all_stats`` (default: now)."""
        return console.live_line(self.stats() if all_stats is None else all_stats, self.streams)

    def start_line(self) -> str:
        """What runs: the model, its backend and device, the cameras, the streams and the address
        (and the microphone array, with whether its direction is fused into the maps)."""
        line = console.start_line(self.engine, self.config.model.device, [s.camera for s in self.config.sources],
                                  self.streams, self.address)
        geometry = self.config.spatial.geometry
        if geometry is None:
            return line
        fused = "fused into the maps" if self.pipelines[0].config.fuse_doa else "published, maps unfused"
        return f"{line}; direction of arrival from {geometry.channels} microphones, hfov {geometry.hfov_deg:g} deg " \
               f"({fused})"

    def batching(self) -> dict:
        """Mean requests per shared call so far: {"maps": ..., "flow": ...}, None where not shared."""
        maps = self.engine.mean_batch if isinstance(self.engine, BatchingEngine) else None
        return {"maps": maps, "flow": None if self.flow is None else self.flow.mean_batch}

    def write_snapshots(self) -> list[tuple[str, Optional[Path]]]:
        """Write each stream's snapshot (config.snapshot_path); (stream, path written or None
        when it published no map with a frame), or [] without a snapshot."""
        return [(stream, sink.write(self.config.snapshot_path(stream)))
                for stream, sink in zip(self.streams, self.sinks)]

    def stuck_stages(self) -> list[str]:
        """The stages still inside a native call after the stop ("camera0 capture"), see Pipeline.stop."""
        return [f"{p.config.stream} {name.removeprefix('fg-')}" for p in self.pipelines for name in p.alive]


def build_live(config: LiveConfig, notify: Optional[Callable[[str], None]] = None) -> LiveSystem:
    """Open every part of ``config``'s live run and wire it; nothing runs until LiveSystem.run.

    notify: called with a line of progress worth telling a person waiting (a compile).
    Raises StartError, SourceError, PublishError (all InputError) for bad input found
    on the way, after closing whatever it had opened.
    """
    budget = config.thread_budget
    # Process-wide, so set here, once, from the budget: every camera's flow is already its
    # own thread, and OpenCV's pool would only contend with them (ThreadBudget).
    cv2.setNumThreads(budget.opencv)
    engine = _open_engine(config, budget.inference)
    torch.set_num_threads(budget.torch_threads(engine.backend))
    fuse = config.spatial.fuse or getattr(engine, "wants_doa", False)
    if fuse and config.spatial.geometry is None:
        raise StartError(f"model {config.model.spec}: exported with +doa, it fuses the map with the direction "
                         "heard by a microphone array: give --mics FILE.json|stereo:D|square:D")
    cameras = len(config.sources)
    with ExitStack() as opened:
        if cameras > 1:  # one model for all cameras: their requests batched
            try:
                engine = opened.enter_context(BatchingEngine(engine, max_batch=budget.engine_batch,
                                                             workers=budget.engine_workers))
            except ValueError as e:  # an export for a fixed batch cannot serve several cameras
                raise StartError(str(e)) from None
        flow = shared_flow(config, notify)
        if flow is not None:
            opened.enter_context(flow)
        videos = [_open_video(source, opened, budget.decoder) for source in config.sources]
        parts = [(video, *hearing) for video, hearing in zip(videos, _open_hearing(config, engine, opened))]
        out = config.publishing
        publisher = opened.enter_context(
            Publisher(PublisherConfig(out.address, heatmap_dtype=out.heatmap_dtype, curve=out.curve)))
        dashboard = None
        if config.dashboard.port is not None:
            try:
                dashboard = DashboardThread(DashboardConfig((publisher.address,), port=config.dashboard.port))
            except DashboardError as e:
                raise StartError(f"dashboard: {e}") from None
            opened.callback(dashboard.stop)
        # One socket for all cameras, used by one thread at a time.
        publish = publisher.publish if cameras == 1 else SharedPublish(publisher.publish)
        sinks = tuple(SnapshotSink(publish) for _ in parts) if config.run.snapshot is not None else ()
        memory = config.flow.motion_memory
        memory = default_for(engine.name) if memory is None else memory
        # One camera overlaps its flow with its inference; several take turns (realtime.turns).
        turns = Turns(budget.maps_at_once) if cameras > 1 else None
        pipelines = [Pipeline(_pipeline_config(config, stream, memory, fuse), video, listener,
                              sinks[k] if sinks else publish, audio=audio, ring=ring, flow_fn=flow,
                              doa=_direction_finding(config, engine, video.frame_hw), turns=turns)
                     for k, (stream, (video, audio, ring, listener)) in enumerate(zip(config.streams, parts))]
        opened.pop_all()  # built: from here on LiveSystem.run and close own every part
    return LiveSystem(config, pipelines, engine, publisher, flow, dashboard, sinks)


def _open_video(source: SourceSettings, opened: ExitStack, decoder_threads: int) -> VideoSource:
    """One camera's video source, registered on ``opened`` to be closed; StartError for frames too small."""
    video = VideoSource(VideoSourceConfig(source.camera, pace_fps=source.pace_fps, decoder_threads=decoder_threads))
    opened.callback(video.close)
    too_small = frame_size_problem(video.frame_hw)
    if too_small:
        raise StartError(f"video {source.camera}: {too_small}")
    return video


def _direction_finding(config: LiveConfig, engine, frame_hw: Optional[tuple[int, int]]) -> Optional[WithDoa]:
    """One pipeline's direction finder for the engine's maps of its camera's ``frame_hw``
    frames (None: not known before the first frame; rows then as square pixels) from the
    array's channels in the ring (at the model's audio rate: the finder's band, 300-6000 Hz,
    fits under 16 kHz's Nyquist), or None without an array."""
    spatial = config.spatial
    if spatial.geometry is None:
        return None
    return WithDoa(spatial.geometry, tuple(engine.map_size), engine.audio_rate, window_s=spatial.window_s,
                   frame_hw=frame_hw)


def _open_hearing(config: LiveConfig, engine, opened: ExitStack) -> list[tuple]:
    """Per camera (audio, ring, the engine its pipeline calls); audio and ring None for a model
    that does not listen, unless a microphone array's direction needs them (the ring then
    keeps its channels). Cameras that name the same microphone or audio file share ONE
    source, ring and audio embedding (SharedAudioSource, SharedEmbedding): the embedding
    (~25 ms of CPU a second) is then paid per microphone, not per camera."""
    array_channels = config.spatial.channels
    if not engine.uses_audio and array_channels is None:
        return [(None, None, engine)] * len(config.sources)
    groups: dict = {}
    for k, source in enumerate(config.sources):
        groups.setdefault(_microphone(source, engine.audio_rate, array_channels), []).append(k)
    hearing: list = [None] * len(config.sources)
    for members in groups.values():
        ring = AudioRing(engine.audio_rate, max(MIN_RING_S, engine.audio_seconds), channels=array_channels or 1)
        audio = _open_audio(config.sources[members[0]], engine.audio_rate, ring, array_channels)
        opened.callback(audio.stop)
        listener = engine
        if len(members) > 1:
            audio = SharedAudioSource(audio)
            # A little under the pipelines' refresh period: each period's first refresh computes.
            listener = SharedEmbedding(engine, max_age_s=0.9 * PipelineConfig.audio_refresh_s)
        for k in members:
            hearing[k] = (audio, ring, listener)
    return hearing


def _microphone(source: SourceSettings, sample_rate: int, array_channels: Optional[int] = None) -> tuple:
    """What identifies the sound ``source`` hears: the same microphone, or the same file."""
    audio = source.audio_source(sample_rate, array_channels)
    return (audio.spec, audio.device) if audio.spec == "mic" else (str(Path(audio.spec).resolve()), None)


def _pipeline_config(config: LiveConfig, stream: str, memory: bool = False, fuse: bool = False) -> PipelineConfig:
    """The pipeline settings of ``stream``: flow sampled on the newest frame, on the model's
    device, with the motion memory when ``memory``; levels in dB(A) SPL when its source's
    microphone is calibrated; maps fused with the array's direction when ``fuse``."""
    source = config.sources[config.streams.index(stream)]
    return PipelineConfig(
        stream=stream,
        flow=RollingFlowConfig(working_hw=config.flow.working_hw, anchor="newest", backend=config.flow.backend,
                               device=config.model.device, stabilise=config.flow.stabilise,
                               motion_memory_s=MEMORY_SECONDS if memory else 0.0),
        jpeg_quality=config.publishing.jpeg_quality,
        stats_window_s=config.run.stats_window_s,
        stop_timeout_s=STOP_BUDGET_S,
        mic_calibration_db=source.mic_calibration_db,
        min_score=config.publishing.min_score,
        fuse_doa=fuse,
    )


def _open_engine(config: LiveConfig, threads: int):
    """The model's engine (onnxruntime with ``threads`` intra-op threads); StartError naming
    the file or name when it cannot be opened."""
    model = config.model
    try:
        return engines.open(model.spec, device=model.device, backend=model.backend, threads=threads,
                            allow_untrained=model.untrained)
    except InputError as e:  # a model file, name, backend or device that cannot be used
        raise StartError(one_line(e)) from None


def shared_flow(config: LiveConfig, notify: Optional[Callable[[str], None]]) -> Optional[BatchingFlow]:
    """The torch Farneback the cameras share, or None when each stream computes its own flow.

    Several cameras on the torch backend (a GPU) share one batched call; a compiled
    Farneback is shared even by one camera, and compiled here, before any source opens,
    so that no camera frame waits for it.
    """
    cameras, settings = len(config.sources), config.flow
    if settings.backend != "torch" or (cameras == 1 and not settings.compile):
        return None
    flow = BatchingFlow(config.model.device, max_batch=cameras, compile=settings.compile)
    if settings.compile:
        if notify is not None:
            notify(f"compiling the flow for {format_wxh(settings.working_hw)}, batch {cameras} "
                   "(tens of seconds, once)")
        try:
            flow.warm_up(settings.working_hw)
        except Exception as e:  # a compiler missing or failing: say so in one line
            flow.close()
            first = (str(e).strip().splitlines() or [""])[0]
            raise StartError(f"--flow-compile: torch.compile failed ({type(e).__name__}: {first})") from None
        except BaseException:
            flow.close()
            raise
    return flow


def _open_audio(source: SourceSettings, sample_rate: int, ring: AudioRing, array_channels: Optional[int] = None):
    """The audio source of one camera, writing into ``ring`` at the model's ``sample_rate`` Hz
    (one channel per microphone of the array, ``array_channels``, when there is one)."""
    audio = source.audio_source(sample_rate, array_channels)
    try:
        return open_audio_source(audio, ring)
    except SourceError as e:
        if audio.spec != "mic":
            raise
        # Name the option that picks the microphone.
        raise StartError(f"--audio {'mic' if audio.device is None else audio.device}: {e}") from None

