"""The live pipeline: capture -> rolling flow -> inference -> publish, one thread each
(with several cameras, flow and inference are one stage taking turns with the other
cameras', :mod:`realtime.turns`).

Stages hand over through :class:`~realtime.slots.LatestSlot` mailboxes, so a
slow stage works on the newest item and never builds a backlog; every item
overwritten that way is counted as a drop of the stage that missed it. The
audio source writes into an :class:`~realtime.ring.AudioRing` from its own
thread or callback; an audio stage refreshes the audio embedding from the
ring's newest window every ``audio_refresh_s`` seconds, on its own thread so
the heatmap path never waits for it, and the inference stage makes one
heatmap per flow field with the newest embedding. The audio stage also measures the
A-weighted level of the newest ``level_window_s`` of sound (flowgrad.loudness) at each
refresh; every heatmap and status message carries the newest level (``level_db``,
``level_ref``). Only models that listen have an audio source and an audio stage, so
messages of a model without audio (flow_only) carry no level. Every heatmap message
carries the model's sounding score of its map (``score``) and ``quiet``: whether the
score is below ``min_score``.

With a microphone array (``doa``: a flowgrad.spatial.with_doa.WithDoa), the inference
stage also finds, per map, the direction of arrival in the ring's newest ``window_s`` of
channels, fuses the map with it (``fuse_doa``, a "+doa" model) and times both as stage
"doa"; the message carries the direction (``doa``). The audio source and stage then run even for a model that does not listen.

Every timestamp inside the process is ``time.monotonic()`` seconds; messages
on the wire carry UNIX seconds (docs/PROTOCOL.md), converted once at start.

The parts, duck-typed so tests and benchmarks can plug in their own:

* ``video``: ``read() -> frame | None`` (``frame.image`` (H, W, 3) uint8 BGR,
  ``frame.time`` monotonic capture seconds), ``state`` (str), ``stats``, ``close()``.
* ``audio`` (None for models without audio): ``start(start_time)`` (monotonic
  seconds at which a file source's first sample plays, so it runs in step with
  a file video source that starts at its first read), ``stop()``, ``state``
  ("failed" ends the run with ``error``, one line), ``stats`` and optionally
  ``problem`` (one line or None, shown in status messages); it writes into ``ring``.
* ``engine``: a :class:`flowgrad.engine.Engine`.
* ``publish(message)``: called with :class:`realtime.protocol.Heatmap` and
  :class:`realtime.protocol.Status` objects; must not block for long.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import cv2
import numpy as np
import torch

from flowgrad.errors import FlowGradError
from flowgrad.audio import newest_window
from flowgrad.flow import RollingFlow, RollingFlowConfig
from flowgrad.inputs import model_inputs
from flowgrad.loudness import AWeighting
from flowgrad.sizes import format_wxh
from flowgrad.spatial.with_doa import doa_fields

from .protocol import Heatmap, Status
from .slots import LatestSlot
from .stats import RollingStats
from .turns import Turns

_POLL_S = 0.1  # how often a waiting stage looks at the stop flag
# Smallest camera frame side, px, worth computing flow on: OpenCV's Farneback runs on any
# size (it adds no pyramid level below 32 px) and the model's input is resized from any
# size, but a side under 16 px holds less than one 15-px Farneback window of motion, and
# our torch Farneback (and --flow-size) refuse it; RollingFlow itself fails under 2 px.
MIN_FRAME_SIDE = 16
# (H, W) px live flow is computed at by default (320x180; magnitudes stay in camera pixels).
LIVE_FLOW_HW = (180, 320)


def frame_size_problem(frame_hw: Optional[tuple[int, int]]) -> Optional[str]:
    """Why camera frames of ``frame_hw`` = (H, W) in pixels are too small to localise, or None
    (also when the size is unknown)."""
    if frame_hw is None or min(frame_hw) >= MIN_FRAME_SIDE:
        return None
    return (f"frames of {format_wxh(frame_hw)} px are too small for optical flow: it needs at least "
            f"{MIN_FRAME_SIDE}x{MIN_FRAME_SIDE} px (Farneback's window is 15 px)")


class PipelineError(FlowGradError, RuntimeError):
    """A stage failed while running; the message names the stage and the cause in one line."""


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of :class:`Pipeline`.

    stream: the stream's name on the wire (subscribers filter on it).
    flow: rolling-flow settings; the default computes at 320x180 (flow
        magnitudes stay in full-frame pixels) and samples the field on the
        newest frame, so heatmaps overlay the picture they are published with.
    audio_refresh_s: seconds between audio-embedding refreshes (1 s: the window is 5 s,
        and on a 2-core CPU a refresh costs ~90 ms of the heatmap path's time).
    status_every_s: seconds between status messages.
    jpeg_quality: JPEG quality (1-100) of the camera frame sent with each
        heatmap for displays; None sends no frame.
    jpeg_width: the sent frame is scaled down to at most this many pixels wide.
    stats_window_s: window, seconds, of the fps and latency figures.
    stop_timeout_s: how long ``stop`` waits for the sources and threads, in all, seconds.
    level_window_s: seconds of the newest sound whose A-weighted level the messages carry
        (1 s, as a sound level meter's "slow" time constant: the embedding's 5 s window
        would lag a passing vehicle by seconds).
    mic_calibration_db: the dBFS(A) reading of a 94 dB SPL 1 kHz calibrator on this audio
        source: levels are then dB(A) SPL; None: dBFS(A).
    min_score: a map whose sounding score is below this, in [0, 1], is published quiet
        (0.5: even odds on the calibrated score; 0 never flags one).
    fuse_doa: with a microphone array (Pipeline's ``doa``), multiply each map by the direction's
        likelihood (a "+doa" model); False: only publish the direction heard.
    """

    stream: str = "camera"
    flow: RollingFlowConfig = field(
        default_factory=lambda: RollingFlowConfig(working_hw=LIVE_FLOW_HW, anchor="newest"))
    audio_refresh_s: float = 1.0
    status_every_s: float = 1.0
    jpeg_quality: Optional[int] = 80
    jpeg_width: int = 640
    stats_window_s: float = 5.0
    stop_timeout_s: float = 2.0
    level_window_s: float = 1.0
    mic_calibration_db: Optional[float] = None
    min_score: float = 0.5
    fuse_doa: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:  # False for NaN too
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score!r}")
        for name in ("audio_refresh_s", "status_every_s", "stats_window_s", "stop_timeout_s", "level_window_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1..100 or None, got {self.jpeg_quality!r}")
        if not self.stream or "/" in self.stream:
            raise ValueError(f"stream must be a non-empty name without '/', got {self.stream!r}")


@dataclass
class _Flowed:
    frame: Any
    flow: np.ndarray  # (2, h, w) full-frame px per nominal interval
    flow_done: float


@dataclass
class _Mapped:
    frame: Any
    heatmap: np.ndarray  # (h, w) float32 in [0, 1]
    score: float  # the sounding score in [0, 1]
    doa: Optional[dict] = None  # the message's doa field (docs/PROTOCOL.md), None without one


class Pipeline:
    """Runs the stages until ``duration`` passes, ``stop()`` is called, Ctrl-C, or a stage fails.

    ring: the :class:`~realtime.ring.AudioRing` the audio source writes into
    (at ``engine.audio_rate``); may be None when ``audio`` is None.
    clock: monotonic clock, seconds (tests may pass their own).
    flow_fn: replaces the flow computation of config.flow's backend (a
    :class:`~realtime.batching.BatchingFlow` shared by several streams on a GPU).
    doa: a :class:`~flowgrad.spatial.with_doa.WithDoa` for the engine's maps: each map gets
    the direction heard in the ring's newest ``doa.finder.window_s`` (and is fused with it
    when config.fuse_doa); the ring
    then keeps one channel per microphone at ``doa.sample_rate``. None: no direction.
    turns: a :class:`~realtime.turns.Turns` shared by several cameras' pipelines: each makes its
    flow and map as one job when its turn comes (stage "flow+infer"). None (one camera):
    separate flow and inference stages, the next flow made while inference runs.
    """

    def __init__(self, config: PipelineConfig, video, engine, publish: Callable[[Any], None],
                 audio=None, ring=None, clock: Callable[[], float] = time.monotonic,
                 flow_fn: Optional[Callable] = None, doa=None, turns: Optional[Turns] = None) -> None:
        if engine.uses_audio and (audio is None or ring is None):
            raise ValueError(f"model {engine.name!r} listens to audio: give an audio source and its ring")
        if doa is not None and (audio is None or ring is None or ring.channels != doa.geometry.channels
                                or ring.sample_rate != doa.sample_rate):
            raise ValueError("direction finding needs an audio source and a ring of one channel per microphone "
                             "at the direction finder's rate")
        self.config = config
        self.video, self.audio, self.ring, self.engine, self.doa = video, audio, ring, engine, doa
        self.turns = turns
        self._publish = publish
        self._clock = clock
        self._unix_offset = time.time() - clock()
        self._stop = threading.Event()
        self._errors: list[str] = []
        self._slots = {name: LatestSlot(name) for name in ("frames", "flows", "maps")}
        self._threads: list[threading.Thread] = []
        self.rolling = RollingFlow(config.flow, flow_fn)
        self.published = RollingStats(config.stats_window_s)
        self.stage_ms = {name: RollingStats(config.stats_window_s) for name in ("flow", "infer", "audio", "doa")}
        self.seq = 0
        self.started_at: Optional[float] = None
        self._embedding: Optional[np.ndarray] = None
        self._waiting_for_audio = 0
        self._frames_passed_over = 0  # taken, then replaced by a newer one before its turn came
        self._without_doa = 0  # maps published without a direction (ring not yet full)
        # Designed once here (the ring's rate is fixed); a plain float swap makes the level
        # visible to the publish stage, as the embedding is.
        self._weighting = (AWeighting(ring.sample_rate, calibration_db=config.mic_calibration_db)
                           if audio is not None else None)
        self._level: Optional[float] = None
        self._score: Optional[float] = None  # the newest map's, a plain float swap
        self._doa: Optional[dict] = None  # the newest map's direction, a plain swap

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        """Start the audio source and the stage threads (plus the audio stage when there is audio)."""
        self.started_at = self._clock()
        if self.audio is not None:
            self.audio.start(start_time=self.started_at)
        work = [("flow+infer", self._flow_and_infer)] if self.turns is not None else [
            ("flow", self._flow), ("infer", self._infer)]
        stages = [("capture", self._capture), *work, ("publish", self._publish_loop)]
        if self.audio is not None:
            stages.append(("audio", self._audio))
        for name, target in stages:
            t = threading.Thread(target=self._guard, args=(name, target), name=f"fg-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def request_stop(self) -> None:
        """Ask ``run`` to end (safe from a signal handler or any thread); it then stops everything."""
        self._stop.set()

    def stop(self) -> None:
        """Signal every stage, stop the sources and join the threads (all within stop_timeout_s).

        A stage still running after that is inside one native call it cannot leave early
        (an OpenCV stream read or reopen, bounded by the video source's timeouts; one huge
        frame's decode or resize): :attr:`alive` names it, and it ends when that call
        returns. Do not let the interpreter exit before: a thread inside OpenCV or torch
        during the interpreter's teardown aborts the process.
        """
        deadline = self._clock() + self.config.stop_timeout_s
        self._stop.set()
        for slot in self._slots.values():
            slot.close()
        # Closing first ends a reconnect back-off wait at once; a read in progress
        # returns first and then releases the capture itself.
        self.video.close()
        if self.audio is not None:
            # The publish stage's last status tells how the audio ran: let it go out first
            # (it does within one poll), rather than racing it with "stopped".
            for t in self._threads:
                if t.name == "fg-publish":
                    t.join(max(0.0, deadline - self._clock()))
            self.audio.stop()
        for t in self._threads:
            t.join(max(0.0, deadline - self._clock()))

    @property
    def stopped(self) -> bool:
        """True once a stop was requested or a stage ended."""
        return self._stop.is_set()

    @property
    def alive(self) -> list[str]:
        """Names of the stage threads still running (empty after a clean stop)."""
        return [t.name for t in self._threads if t.is_alive()]

    @property
    def audio_embedding(self) -> Optional[np.ndarray]:
        """The audio embedding (1, D) in use, or None before the first refresh."""
        return self._embedding

    @property
    def level(self) -> tuple[Optional[float], Optional[str]]:
        """(level_db, level_ref): the A-weighted level of the newest level_window_s of sound in
        dBFS(A) or dB(A) SPL (see PipelineConfig), or (None, None) without audio or before the
        first measurement."""
        if self._level is None:
            return None, None
        return self._level, self._weighting.unit

    @property
    def error(self) -> Optional[str]:
        """The first stage failure, one line, or None."""
        return self._errors[0] if self._errors else None

    def run(self, duration: Optional[float] = None, on_status: Optional[Callable[[dict], None]] = None) -> dict:
        """Start, wait for the end (``duration`` seconds, Ctrl-C or a failure), stop; return the final stats.

        on_status: called with :meth:`stats` every status period (e.g. a console line).
        Raises PipelineError when a stage failed (after stopping everything).
        """
        try:
            self.start()
            end = None if duration is None else self.started_at + duration
            while not self._stop.is_set():
                wait = self.config.status_every_s
                if end is not None:
                    wait = min(wait, end - self._clock())
                    if wait <= 0:
                        break
                if self._stop.wait(wait):
                    break
                if on_status is not None:
                    on_status(self.stats())
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
        if self.error:
            raise PipelineError(self.error)
        return self.stats()

    # ------------------------------------------------------------------ figures

    def stats(self) -> dict:
        """Live figures: fps and capture-to-publish latency (ms), drops per stage,
        stage times (ms), source states, the newest level ("level_db", "level_ref": see :attr:`level`),
        the newest map's sounding score ("score", None before the first map) and whether it is "quiet",
        its direction ("doa": the message's field, None without one),
        "stabilise_fallbacks": flow fields that kept their camera shake (background not fitted)."""
        now = self._clock()
        pub = self.published.snapshot(now)
        drops = {name: slot.dropped for name, slot in self._slots.items()}
        drops["frames"] += self._frames_passed_over
        drops["flow_unpaired"] = self.rolling.stats.pushed - self.rolling.stats.computed
        drops["waiting_for_audio"] = self._waiting_for_audio
        if self.doa is not None:
            drops["without_doa"] = self._without_doa
        source = {"video": self.video.state, "video_stats": _as_dict(self.video.stats)}
        if self.audio is not None:
            source["audio"] = self.audio.state
            source["audio_problem"] = getattr(self.audio, "problem", None)
            source["audio_stats"] = _as_dict(self.audio.stats)
        if self.ring is not None:
            source["ring"] = _as_dict(self.ring.stats)
        return {
            "fps": pub["fps"],
            "latency_ms": pub["latency_ms"],
            "published": self.published.count,
            "drops": drops,
            "stage_ms": {k: v.snapshot(now)["latency_ms"]["p50"] for k, v in self.stage_ms.items()},
            "source": source,
            "uptime_s": now - self.started_at if self.started_at is not None else 0.0,
            "score": self._score,
            "quiet": None if self._score is None else self._is_quiet(self._score),
            "doa": self._doa,
            "stabilise_fallbacks": self.rolling.stats.stabilise_fallbacks,
            **self._level_fields(),
        }

    # ------------------------------------------------------------------ stages

    def _guard(self, name: str, target: Callable[[], None]) -> None:
        try:
            target()
        except PipelineError as e:  # a failure the stage itself describes
            self._errors.append(str(e))
        except Exception as e:  # any failure stops the whole pipeline, reported once
            self._errors.append(f"{name} stage failed: {type(e).__name__}: {' '.join(str(e).split())}")
        finally:
            self._stop.set()

    def _capture(self) -> None:
        while not self._stop.is_set():
            frame = self.video.read()
            if frame is None:
                if self.video.state in ("ended", "failed"):
                    return  # a file that does not loop has finished: a normal end
                time.sleep(0.01)
                continue
            self._slots["frames"].put(frame)

    def _flow(self) -> None:
        frames, flows = self._slots["frames"], self._slots["flows"]
        while not self._stop.is_set():
            if not flows.wait_empty(_POLL_S):  # a flow made now would replace one unused
                continue
            frame = frames.get(_POLL_S)
            if frame is not None:
                flowed = self._flowed(frame)
                if flowed is not None:
                    flows.put(flowed)

    def _infer(self) -> None:
        flows, maps = self._slots["flows"], self._slots["maps"]
        while not self._stop.is_set():
            item = flows.get(_POLL_S)
            mapped = None if item is None else self._mapped(item)
            if mapped is not None:
                maps.put(mapped)

    def _flow_and_infer(self) -> None:
        """Several cameras (``turns``): this stream's flow and map as one job, in turn with the
        other streams', on the newest frame when the turn comes."""
        frames, maps = self._slots["frames"], self._slots["maps"]
        while not self._stop.is_set():
            frame = frames.get(_POLL_S)
            if frame is None:
                continue
            with self.turns.turn(self._stop) as ours:
                if not ours:
                    return
                newer = frames.get(0.0)  # came while we waited: the older one is dropped
                if newer is not None:
                    frame, self._frames_passed_over = newer, self._frames_passed_over + 1
                flowed = self._flowed(frame)
                mapped = None if flowed is None else self._mapped(flowed)
            if mapped is not None:
                maps.put(mapped)

    def _flowed(self, frame) -> Optional[_Flowed]:
        """The flow from the previous frame to ``frame`` (the model's flow input: the motion
        memory when configured), timed as stage "flow"; None for a stream's first frame."""
        problem = frame_size_problem(frame.image.shape[:2])  # a stream may change size mid-run
        if problem:
            raise ValueError(problem)
        t0 = self._clock()
        result = self.rolling.push(frame.image, frame.time)
        if result is None:
            return None
        done = self._clock()
        self.stage_ms["flow"].add(done, done - t0)
        flow = result.memory if result.memory is not None else result.per_interval()
        return _Flowed(frame, flow, done)

    def _mapped(self, item: _Flowed) -> Optional[_Mapped]:
        """The engine's map and score of ``item`` (fused with the direction heard when there is an
        array), timed as stages "infer" and "doa"; None while the first embedding is computed."""
        emb = self._embedding
        if self.engine.uses_audio and emb is None:
            self._waiting_for_audio += 1
            return None
        t0 = self._clock()
        heats, scores = self.engine.localise(*model_inputs(item.frame.image, item.flow, self.engine.input_size), emb)
        heat, score = heats[0], float(scores[0])
        if not (np.isfinite(heat).all() and 0.0 <= score <= 1.0):
            raise ValueError("the model returned a heatmap or score with NaN, infinite or out-of-range values")
        done = self._clock()
        self.stage_ms["infer"].add(done, done - t0)
        direction = None
        if self.doa is not None:
            heat, score, direction = self._direction(heat, score)
            found = self._clock()
            self.stage_ms["doa"].add(found, found - done)
        self._score, self._doa = score, direction
        return _Mapped(item.frame, heat, score, direction)

    def _direction(self, heat: np.ndarray, score: float) -> tuple[np.ndarray, float, Optional[dict]]:
        """``heat`` (H, W) fused with the direction heard in the ring's newest window, the score
        WithDoa makes of ``score`` (min with the array's P(heard)), and the message's doa field;
        ``heat`` and ``score`` unchanged and None while the ring holds less than a window."""
        window = self.ring.latest(self.doa.finder.window_s, channels=True) if self.ring.total_samples else None
        # The sources make every sample finite (counted in their problem line); a window they did not
        # fill must not reach the finder either.
        if window is None or not window.filled or not np.isfinite(window.samples).all():
            self._without_doa += 1
            return heat, score, None
        if not self.config.fuse_doa:
            return heat, score, doa_fields(self.doa.finder(window.samples))
        fused, scores, (estimate,) = self.doa(heat[None], np.array([score], np.float32), window.samples[None])
        return fused[0], float(scores[0]), doa_fields(estimate)

    def _audio(self) -> None:
        """Refresh the audio embedding (for a model that listens) and the level from the ring's
        newest window every audio_refresh_s.

        A failed audio source ends the run: the maps of a model that listens would
        otherwise go on, computed against silence, as if nothing were wrong.
        """
        while not self._stop.is_set():
            if self.audio.state == "failed":
                raise PipelineError(f"audio source failed: {' '.join(str(self.audio.error).split())}")
            start = self._clock()
            listens = self.engine.uses_audio
            if self.ring.total_samples:
                # One read serves both: the level's window is the newest part of the embedding's.
                heard = self.ring.latest(max(self.engine.audio_seconds if listens else 0.0,
                                             self.config.level_window_s)).samples
                level_n = round(self.config.level_window_s * self.ring.sample_rate)
                self._level = self._weighting.level_db(heard[len(heard) - level_n:])
            else:  # nothing captured yet: silence, and no level
                heard = np.zeros(0, np.float32)
            if listens:  # (the audio of a model that does not listen is for the direction and level only)
                # A plain attribute swap: readers always see a whole (1, D) array.
                window = newest_window(torch.from_numpy(np.asarray(heard, np.float32)), self.engine.samples)
                self._embedding = self.engine.embed_audio(window.numpy()[None])
            done = self._clock()
            self.stage_ms["audio"].add(done, done - start)
            self._stop.wait(max(0.0, self.config.audio_refresh_s - (done - start)))

    def _publish_loop(self) -> None:
        maps = self._slots["maps"]
        next_status = self._clock() + self.config.status_every_s
        while not self._stop.is_set():
            item = maps.get(min(_POLL_S, max(0.0, next_status - self._clock())))
            now = self._clock()
            if item is not None:
                self._publish(self._message(item, now))
                self.published.add(now, now - item.frame.time)
                self.seq += 1
            if now >= next_status:
                self._publish(self._status(now))
                next_status = now + self.config.status_every_s
        # The last status tells displays the stream stopped on purpose, not that it was lost.
        self._publish(self._status(self._clock(), "failed" if self._errors else "ended"))

    def _message(self, item: _Mapped, now: float) -> Heatmap:
        image = item.frame.image
        h, w = image.shape[:2]
        return Heatmap(
            stream=self.config.stream,
            seq=self.seq,
            capture_time=item.frame.time + self._unix_offset,
            publish_time=now + self._unix_offset,
            model=self.engine.name + ("+doa" if self.doa is not None and self.config.fuse_doa else ""),
            heatmap=item.heatmap,
            frame_size=(w, h),  # the protocol's [W, H] (docs/PROTOCOL.md)
            frame_jpeg=self._jpeg(image),
            score=item.score,
            quiet=self._is_quiet(item.score),
            doa=item.doa,
            hfov_deg=None if item.doa is None else self.doa.geometry.hfov_deg,
            **self._level_fields(),
        )

    def _is_quiet(self, score: float) -> bool:
        """Whether a map of this sounding score is published quiet (below min_score)."""
        return score < self.config.min_score

    def _level_fields(self) -> dict:
        return dict(zip(("level_db", "level_ref"), self.level))

    def _jpeg(self, image: np.ndarray) -> Optional[bytes]:
        if self.config.jpeg_quality is None:
            return None
        h, w = image.shape[:2]
        if w > self.config.jpeg_width:
            image = cv2.resize(image, (self.config.jpeg_width, round(h * self.config.jpeg_width / w)),
                               interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        return buf.tobytes() if ok else None

    def _status(self, now: float, state: str = "running") -> Status:
        s = self.stats()
        return Status(
            stream=self.config.stream,
            fps=s["fps"],
            latency_ms=s["latency_ms"],
            drops=s["drops"],
            source={**s["source"], "pipeline": state},
            uptime_s=s["uptime_s"],
            publish_time=now + self._unix_offset,
            level_db=s["level_db"],
            level_ref=s["level_ref"],
        )


def _as_dict(obj) -> dict:
    """Stats objects as plain JSON-friendly dicts."""
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return dict(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
