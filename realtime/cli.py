"""``python run_live.py``: camera + microphone in, heatmaps out over ZeroMQ.

    python run_live.py --demo                          # bundled street clip and model, no devices
    python run_live.py --camera 0                      # webcam 0 + default microphone
    python run_live.py --camera udp://127.0.0.1:5000 --audio pulse --model runs/en/best.ckpt
    python run_live.py --camera street.mp4 --audio video --duration 60
    python run_live.py --demo --dashboard              # ... and the live picture on http://127.0.0.1:8080/
    python run_live.py --camera 0 --camera rtsp://cam2/stream --audio mic --audio pulse   # two cameras, one model

Several ``--camera`` options run one pipeline per camera in this process, each
published as its own stream (``camera0``, ``camera1``, ... after ``--stream``),
all sharing one model whose heatmap requests are batched across cameras
(realtime.batching) and one ZeroMQ socket.

Subscribe from another program with ``python -m realtime.subscribe
tcp://127.0.0.1:5556`` or ``realtime.subscribe.subscribe(...)``; the wire
format is in docs/PROTOCOL.md.

Exit status: 0 after --duration or Ctrl-C, 1 when a stage or the audio source fails
while running, 2 for bad input found at start (a missing camera, microphone or model
file, a busy port, frames under 16x16 px, a sound file without usable samples), with
one line saying what and how to fix it.
"""
from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from flowgrad import engine as engines
from flowgrad import models
from flowgrad.checkpoint import display_path
from flowgrad.errors import InputError
from flowgrad.flow import RollingFlowConfig

from .assets import DEMO_CLIP, DEMO_MODEL, ROOT, default_model
from .audio_source import AudioSourceConfig, open_audio_source
from .batching import BatchingEngine, BatchingFlow
from .dashboard import DashboardConfig, DashboardError, DashboardThread
from .pipeline import Pipeline, PipelineConfig, PipelineError, frame_size_problem
from .publisher import CurveServer, Publisher, PublisherConfig, PublishError
from .snapshot import SnapshotSink
from .ring import AudioRing
from .streams import SharedPublish, run_streams
from .video_source import SourceError, VideoSource, VideoSourceConfig

DEMO_SECONDS = 10.0
# Ctrl-C ends the process within 2 s: the pipelines get this long to stop, the rest is
# for closing the publisher and the interpreter's exit.
STOP_BUDGET_S = 1.2


class StartError(Exception):
    """Bad input found before the pipeline starts (exit status 2)."""


def parse_size(text: str) -> tuple[int, int]:
    """"WxH" -> (width, height) in pixels."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x180, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"flow size must be at least 16x16, got {text!r}")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python run_live.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("sources")
    src.add_argument("--camera", metavar="INDEX|URL|FILE", action="append",
                     help="camera index (0), stream URL (udp://, rtsp://, http://) or video file (looped, "
                          "played in real time); repeat for several cameras sharing one model")
    src.add_argument("--audio", metavar="DEVICE|FILE|video|mic", action="append",
                     help="one for every camera, or one per --camera in the same order: 'mic' (default "
                          "input), a microphone name or PortAudio index (e.g. 'pulse'), an audio "
                          "file (looped, real time) or 'video' (the camera file's own sound track). Default: "
                          "'video' for a file camera, else 'mic'")
    src.add_argument("--demo", action="store_true",
                     help=f"the bundled street clip ({DEMO_CLIP.relative_to(ROOT)}, sound from its track) and "
                          f"the default model, for {DEMO_SECONDS:g} s unless --duration is given; writes "
                          "demo_out/live.png")
    mod = p.add_argument_group("model")
    mod.add_argument("--model", default=None, metavar="CKPT|ONNX|NAME",
                     help=f"a .ckpt checkpoint, an .onnx export (or its prefix) or a registry name "
                          f"({', '.join(models.names())}; all but flow_only need --untrained). Default: the "
                          f"shipped demo model ({DEMO_MODEL.relative_to(ROOT)}) if present, else flow_only")
    mod.add_argument("--untrained", action="store_true",
                     help="allow a registry name of a model with weights: runs random, untrained weights "
                          "(for timing and plumbing; the maps mean nothing)")
    mod.add_argument("--backend", choices=engines.BACKENDS, default=None,
                     help="inference backend; default from the model file (.ckpt/name: torch, .onnx: onnxruntime)")
    mod.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    mod.add_argument("--threads", type=int, default=None, help="CPU threads for inference (default: torch's)")
    flo = p.add_argument_group("optical flow")
    flo.add_argument("--flow-size", type=parse_size, default=(320, 180), metavar="WxH",
                     help="resolution flow is computed at; magnitudes stay in camera pixels (default 320x180)")
    flo.add_argument("--flow-backend", choices=("opencv", "torch"), default=None,
                     help="opencv (CPU) or torch (our Farneback on --device); default: torch on cuda, else opencv")
    flo.add_argument("--flow-compile", action="store_true",
                     help="with the torch flow backend: fuse our Farneback with torch.compile (for a GPU); "
                          "compiles for --flow-size before the cameras open (tens of seconds, once)")
    out = p.add_argument_group("publishing")
    out.add_argument("--publish", default="tcp://127.0.0.1:5556", metavar="ADDRESS",
                     help="ZeroMQ PUB address to bind (default tcp://127.0.0.1:5556; loopback only unless you "
                          "give another interface)")
    out.add_argument("--stream", default="camera",
                     help="stream name subscribers filter on (default camera; with several cameras camera0, "
                          "camera1, ...)")
    out.add_argument("--heatmap-dtype", choices=("uint8", "float16"), default="uint8",
                     help="wire type of the heatmap (default uint8)")
    out.add_argument("--no-frame", action="store_true", help="do not send the JPEG camera frame with each map")
    out.add_argument("--curve-secret", type=Path, metavar="FILE",
                     help="CURVE: this publisher's .key_secret file; encrypts the stream and admits only the "
                          "clients whose public .key files are in --curve-clients (docs/PROTOCOL.md)")
    out.add_argument("--curve-clients", type=Path, metavar="DIR",
                     help="CURVE: folder of the allowed subscribers' public .key files")
    out.add_argument("--dashboard", nargs="?", type=int, const=8080, default=None, metavar="PORT",
                     help="also serve the web dashboard of this stream (python -m realtime.dashboard) on "
                          "http://127.0.0.1:PORT/ (default port 8080); with --demo it runs until Ctrl-C "
                          "unless --duration is given")
    run = p.add_argument_group("running")
    run.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                     help="stop after this many seconds (default: run until Ctrl-C)")
    run.add_argument("--snapshot", type=Path, default=None, metavar="PNG",
                     help="at the end, write a PNG of the clearest map of the last 5 s over its frame, with the "
                          "stream, model, capture time and colour scale")
    run.add_argument("--quiet", action="store_true", help="no live status line")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in defaults that depend on other options (demo, device, audio)."""
    if args.demo:
        if not DEMO_CLIP.is_file():
            raise StartError(f"{DEMO_CLIP}: the bundled demo clip is missing; restore it with git checkout")
        args.camera = args.camera or [str(DEMO_CLIP)]
        args.audio = args.audio or ["video"]
        # Someone watching the dashboard needs more than the demo's few seconds.
        if args.duration is None and args.dashboard is None:
            args.duration = DEMO_SECONDS
        args.snapshot = args.snapshot or Path("demo_out/live.png")
    if args.camera is None:
        raise StartError("no video source: give --camera INDEX|URL|FILE, or --demo for the bundled clip")
    if (args.curve_secret is None) != (args.curve_clients is None):
        raise StartError("--curve-secret and --curve-clients go together")
    if args.dashboard is not None and args.curve_secret is not None:
        raise StartError("--dashboard cannot read a CURVE stream; run python -m realtime.dashboard "
                         "--curve-secret ... --curve-server-key ... instead")
    if args.duration is not None and args.duration <= 0:
        raise StartError(f"--duration must be > 0 seconds, got {args.duration:g}")
    args.model = args.model or default_model()
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.flow_backend = args.flow_backend or ("torch" if args.device.startswith("cuda") else "opencv")
    if args.flow_compile and args.flow_backend != "torch":
        raise StartError("--flow-compile compiles our torch Farneback: use it with --flow-backend torch")
    cameras = args.camera
    if args.audio is None:
        args.audio = ["video" if Path(str(c)).is_file() else "mic" for c in cameras]
    elif len(args.audio) == 1:
        args.audio = args.audio * len(cameras)
    elif len(args.audio) != len(cameras):
        raise StartError(f"{len(args.audio)} --audio options for {len(cameras)} cameras: give one for all "
                         "cameras or one per --camera")
    args.streams = [args.stream] if len(cameras) == 1 else [f"{args.stream}{k}" for k in range(len(cameras))]
    return args


def open_audio(spec: str, camera: str, engine, ring):
    """The audio source for one --audio value (of ``camera``), writing into ``ring`` at the model's rate."""
    device = None
    if spec == "video":
        if not Path(str(camera)).is_file():
            raise StartError(f"--audio video needs a video FILE as --camera, got {camera!r}")
        spec = str(camera)
    elif spec != "mic" and not Path(spec).is_file():
        if "/" in spec or Path(spec).suffix:
            raise StartError(f"--audio {spec}: no such audio file; give an existing file, 'video', 'mic' "
                             "or a microphone name/index")
        spec, device = "mic", (int(spec) if spec.isdigit() else spec)
    try:
        return open_audio_source(AudioSourceConfig(spec, engine.audio_rate, device=device), ring)
    except SourceError as e:
        if spec != "mic":
            raise
        # Name the option that picks the microphone.
        raise StartError(f"--audio {'mic' if device is None else device}: {e}") from None


def status_line(stats: dict) -> str:
    """One line of live figures."""
    lat = stats["latency_ms"]
    lat_txt = "-" if lat["p50"] is None else f"{lat['p50']:.0f}/{lat['p95']:.0f}"
    drops = stats["drops"]
    return (f"{stats['fps']:5.1f} maps/s  latency p50/p95 {lat_txt} ms  published {stats['published']}  "
            f"dropped frames {drops['frames']} flows {drops['flows']} maps {drops['maps']}  "
            f"{sources_text(stats['source'])}")


def sources_text(src: dict) -> str:
    """The sources' part of the status line: states, the video source's own drops and
    reconnects (a file read slower than real time drops frames before the pipeline sees them),
    what is wrong with the audio."""
    text = _video_text(src)
    return text + (f"  {_audio_text(src)}" if "audio" in src else "")


def source_trouble(src: dict) -> str:
    """What is wrong with a stream's sources, for the several-camera line ('' when all is well):
    a video source that is not live or drops or reconnects, an audio source that failed or
    whose samples were repaired."""
    video = src.get("video_stats", {})
    found = []
    if src.get("video") != "live" or any(video.get(key) for key in _VIDEO_COUNTS):
        found.append(_video_text(src))
    if src.get("audio") == "failed" or src.get("audio_problem"):
        found.append(_audio_text(src))
    return "; ".join(found)


_VIDEO_COUNTS = ("dropped", "reconnects")


def _video_text(src: dict) -> str:
    video = src.get("video_stats", {})
    counts = [f"{video[key]} {key}" for key in _VIDEO_COUNTS if video.get(key)]
    return f"video {src.get('video')}" + (f" ({', '.join(counts)})" if counts else "")


def _audio_text(src: dict) -> str:
    return f"audio {src['audio']}" + (f" ({src['audio_problem']})" if src.get("audio_problem") else "")


@dataclass
class Live:
    """Everything ``main`` runs: one pipeline and snapshot sink per camera, the shared
    engine (a BatchingEngine with several cameras), the one publisher and, with several
    cameras on the torch Farneback, the shared BatchingFlow."""

    pipelines: list
    sinks: list
    engine: object
    publisher: Publisher
    flow: Optional[BatchingFlow] = None

    def close(self) -> None:
        """Close the publisher and the shared engine and flow (after the pipelines stopped)."""
        self.publisher.close()
        if isinstance(self.engine, BatchingEngine):
            self.engine.close()
        if self.flow is not None:
            self.flow.close()


def shared_flow(args) -> Optional[BatchingFlow]:
    """The torch Farneback the cameras share, or None when each stream computes its own flow.

    Several cameras on the torch backend (a GPU) share one batched call; a compiled
    Farneback is shared even by one camera, and compiled here, before any source opens,
    so that no camera frame waits for it.
    """
    cameras = len(args.camera)
    if args.flow_backend != "torch" or (cameras == 1 and not args.flow_compile):
        return None
    flow = BatchingFlow(args.device, max_batch=cameras, compile=args.flow_compile)
    if args.flow_compile:
        w, h = args.flow_size
        if not args.quiet:
            print(f"run_live: compiling the flow for {w}x{h}, batch {cameras} (tens of seconds, once)",
                  file=sys.stderr, flush=True)
        try:
            flow.warm_up(args.flow_size)
        except Exception as e:  # a compiler missing or failing: say so in one line
            flow.close()
            first = (str(e).strip().splitlines() or [""])[0]
            raise StartError(f"--flow-compile: torch.compile failed ({type(e).__name__}: {first})") from None
        except BaseException:
            flow.close()
            raise
    return flow


def start_pipelines(args) -> Live:
    """Open every part; StartError / SourceError / PublishError / ValueError on bad input
    (whatever was opened before the error is closed again)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        engine = engines.open(args.model, device=args.device, backend=args.backend, allow_untrained=args.untrained)
    except InputError as e:  # a model file, name, backend or device that cannot be used
        raise StartError(str(e)) from None
    flow_fn = shared_flow(args)
    opened, parts = [], []
    try:
        for camera, audio_spec in zip(args.camera, args.audio):
            video = VideoSource(VideoSourceConfig(camera))
            opened.append(video)
            too_small = frame_size_problem(video.frame_size)
            if too_small:
                raise StartError(f"video {camera}: {too_small}")
            ring = audio = None
            if engine.uses_audio:
                ring = AudioRing(engine.audio_rate, max(5.0, engine.audio_seconds))
                audio = open_audio(audio_spec, camera, engine, ring)
            parts.append((video, audio, ring))
        curve = CurveServer(args.curve_secret, args.curve_clients) if args.curve_secret else None
        publisher = Publisher(PublisherConfig(args.publish, heatmap_dtype=args.heatmap_dtype, curve=curve))
    except BaseException:
        for video in opened:
            video.close()
        if flow_fn is not None:
            flow_fn.close()
        raise
    shared = engine if len(parts) == 1 else BatchingEngine(engine, max_batch=len(parts))
    publish = publisher.publish if len(parts) == 1 else SharedPublish(publisher.publish)
    pipelines, sinks = [], []
    for stream, (video, audio, ring) in zip(args.streams, parts):
        config = PipelineConfig(
            stream=stream,
            flow=RollingFlowConfig(working_size=args.flow_size, anchor="newest", backend=args.flow_backend,
                                   device=args.device),
            jpeg_quality=None if args.no_frame else 80,
            stop_timeout_s=STOP_BUDGET_S,
        )
        sinks.append(SnapshotSink(publish))
        pipelines.append(Pipeline(config, video, shared, sinks[-1], audio=audio, ring=ring, flow_fn=flow_fn))
    return Live(pipelines, sinks, shared, publisher, flow_fn)


def describe_model(engine) -> str:
    """The model part of the start-up line: its name and the file it came from, or that
    its weights are random (or that it has none)."""
    if getattr(engine, "untrained", False):
        return f"{engine.name} UNTRAINED random weights"
    if not Path(engine.source).exists():  # a registry name of a model without weights (flow_only)
        return f"{engine.name} (no weights)"
    return f"{engine.name} from {display_path(engine.source)}"


def streams_line(all_stats: list[dict], streams: list[str]) -> str:
    """One line of live figures for several streams."""
    def one(name, stats):
        p95 = stats["latency_ms"]["p95"]
        text = f"{name} {stats['fps']:.1f}/s p95 {'-' if p95 is None else f'{p95:.0f}'} ms"
        trouble = source_trouble(stats["source"])
        return text + (f" [{trouble}]" if trouble else "")
    return "  ".join(one(n, s) for n, s in zip(streams, all_stats))


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args = resolve(args)
        live = start_pipelines(args)
    except (StartError, SourceError, PublishError, ValueError) as e:
        print(f"run_live: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # whatever had opened is closed again by start_pipelines
        print("run_live: interrupted while starting", file=sys.stderr)
        return 0
    pipelines, engine, address = live.pipelines, live.engine, live.publisher.address
    dashboard = None
    if args.dashboard is not None:
        try:
            dashboard = DashboardThread(DashboardConfig((address,), port=args.dashboard))
        except (DashboardError, ValueError) as e:
            for pipeline in pipelines:
                pipeline.stop()
            live.close()
            print(f"run_live: error: dashboard: {e}", file=sys.stderr)
            return 2
    precision = "" if getattr(engine, "precision", "float32") == "float32" else f" {engine.precision}"
    cameras = args.camera[0] if len(args.camera) == 1 else f"{len(args.camera)} cameras"
    streams = ", ".join(f"'{s}'" for s in args.streams)
    print(f"run_live: {describe_model(engine)} ({engine.backend}{precision}, {args.device}) on {cameras}, "
          f"publishing {streams} on {address}", file=sys.stderr)
    if dashboard is not None:
        print(f"run_live: dashboard on {dashboard.url}", file=sys.stderr, flush=True)
    tty = sys.stderr.isatty()

    def line(all_stats):
        return status_line(all_stats[0]) if len(all_stats) == 1 else streams_line(all_stats, args.streams)

    def show(all_stats):
        if not args.quiet:
            print(("\r" if tty else "") + line(all_stats), end="" if tty else "\n", file=sys.stderr, flush=True)

    # A service manager's SIGTERM ends the run as Ctrl-C does: stages joined, summary printed.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    code = 0
    try:
        if len(pipelines) == 1:
            final = [pipelines[0].run(duration=args.duration, on_status=lambda st: show([st]))]
        else:
            final = run_streams(pipelines, duration=args.duration, on_status=show)
    except PipelineError as e:
        final, code = [p.stats() for p in pipelines], 1
        print(f"\nrun_live: error: {e}", file=sys.stderr)
    finally:
        if dashboard is not None:
            dashboard.stop()
        live.close()
    if tty and not args.quiet:
        print(file=sys.stderr)
    print(f"run_live: done: {line(final)}", file=sys.stderr)
    if args.snapshot is not None:
        for stream, sink in zip(args.streams, live.sinks):
            path = args.snapshot if len(live.sinks) == 1 else \
                args.snapshot.with_name(f"{args.snapshot.stem}_{stream}{args.snapshot.suffix}")
            written = sink.write(path)
            print(f"run_live: {'wrote ' + str(written) if written else 'no heatmap to snapshot'}", file=sys.stderr)
    exit_past_stuck_stages(pipelines, code)
    # The interpreter's exit would otherwise spend ~0.5 s collecting torch's objects, a
    # quarter of Ctrl-C's 2 s; nothing here needs them collected.
    gc.freeze()
    return code


def interrupt(signum, frame) -> None:
    """Ctrl-C and SIGTERM: interrupt the run once; a second signal must not cut the stop short."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def exit_past_stuck_stages(pipelines, code: int) -> None:
    """End the process at once with ``code`` when a stage is still inside a native call.

    Such a call cannot be interrupted (an OpenCV stream read or reopen runs up to its 5 s
    timeout; one huge frame's decode or resize takes seconds), and a thread still inside
    OpenCV or torch while the interpreter tears down aborts the process ("FATAL: exception
    not rethrown"). Everything of ours is closed and written by now, so leaving without the
    teardown loses nothing and keeps Ctrl-C within its 2 s.
    """
    stuck = [f"{p.config.stream} {name.removeprefix('fg-')}" for p in pipelines for name in p.alive]
    if not stuck:
        return
    print(f"run_live: exiting without waiting for stages still inside a native call: {', '.join(stuck)}",
          file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
