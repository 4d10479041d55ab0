"""``python run_live.py``: camera + microphone in, heatmaps out over ZeroMQ.

    python run_live.py --demo                          # bundled street clip and model, no devices
    python run_live.py --camera 0                      # webcam 0 + default microphone
    python run_live.py --camera udp://127.0.0.1:5000 --audio pulse --model runs/en/best.ckpt
    python run_live.py --camera street.mp4 --audio video --duration 60
    python run_live.py --demo --dashboard              # ... and the live picture on http://127.0.0.1:8080/
    python run_live.py --camera 0 --camera rtsp://cam2/stream --audio mic --audio pulse   # two cameras, one model
    python run_live.py --camera 0 --mics stereo:0.2 --hfov 70 --model flow_only+doa   # a stereo pair's direction

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
# This module parses the options into a LiveConfig (to_config) and prints; realtime.live
# builds and runs the system, realtime.console words its lines.
from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from pathlib import Path

from flowgrad import engine as engines
from flowgrad import models
from flowgrad.errors import InputError, one_line
from flowgrad.sizes import format_wxh, wxh_arg
from flowgrad.spatial.geometry import parse_mics
from flowgrad.spec import parse_spec

from .assets import DEMO_CLIP, DEMO_MODEL, ROOT
from .live import (DashboardSettings, FlowSettings, LiveConfig, ModelSettings, PublishSettings, RunSettings,
                   SourceSettings, SpatialSettings, StartError, build_live)
from .pipeline import LIVE_FLOW_HW, PipelineError
from .publisher import CurveServer

DEMO_SECONDS = 10.0
JPEG_QUALITY = 80  # of the camera frame sent with each map


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
    src.add_argument("--mic-calibration", type=float, default=None, metavar="DB",
                     help="what the audio input reads, in dBFS(A), for a 94 dB SPL 1 kHz sound calibrator "
                          "held on the microphone: levels are then shown and published in dB(A) SPL "
                          "(level = reading - DB + 94); default: uncalibrated levels in dBFS(A)")
    src.add_argument("--channels", type=int, default=None, metavar="N",
                     help="microphone channels to capture (mono models hear their mean); default: one per "
                          "--mics microphone, else the device's first two")
    src.add_argument("--demo", action="store_true",
                     help=f"the bundled street clip ({DEMO_CLIP.relative_to(ROOT)}, sound from its track) and "
                          f"the default model, for {DEMO_SECONDS:g} s unless --duration is given; writes "
                          "demo_out/live.png")
    mod = p.add_argument_group("model")
    mod.add_argument("--model", default=None, metavar="CKPT|ONNX|NAME[+doa][+memory|+nomemory]",
                     help=f"a .ckpt checkpoint, an .onnx export (or its prefix) or a registry name "
                          f"({', '.join(models.names())}; all but flow_only need --untrained). Default: the "
                          f"shipped demo model ({DEMO_MODEL.relative_to(ROOT)}) if present, else flow_only. "
                          "+doa: the map times the direction heard by --mics; +memory/+nomemory: as "
                          "--motion-memory on/off")
    mod.add_argument("--untrained", action="store_true",
                     help="allow a registry name of a model with weights: runs random, untrained weights "
                          "(for timing and plumbing; the maps mean nothing)")
    mod.add_argument("--backend", choices=engines.BACKENDS, default=None,
                     help="inference backend; default from the model file (.ckpt/name: torch, .onnx: onnxruntime)")
    mod.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    mod.add_argument("--threads", type=int, default=None,
                     help="the process's thread budget: inference, OpenCV, decoding; with several cameras on "
                          "a CPU also how many of their maps are made at once, the others waiting their turn "
                          "(default: one per core; realtime.live.ThreadBudget)")
    flo = p.add_argument_group("optical flow")
    # (H, W) in code; FlowSettings checks the minimum.
    flo.add_argument("--flow-size", type=wxh_arg(), default=LIVE_FLOW_HW, metavar="WxH", dest="flow_hw",
                     help="resolution flow is computed at; magnitudes stay in camera pixels "
                          f"(default {format_wxh(LIVE_FLOW_HW)})")
    flo.add_argument("--flow-backend", choices=("opencv", "torch"), default=None,
                     help="opencv (CPU) or torch (our Farneback on --device); default: torch on cuda, else opencv")
    flo.add_argument("--flow-compile", action="store_true",
                     help="with the torch flow backend: fuse our Farneback with torch.compile (for a GPU); "
                          "compiles for --flow-size before the cameras open (tens of seconds, once)")
    _add_motion_options(flo)
    _add_spatial_options(src)
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
    out.add_argument("--min-score", type=float, default=0.5, metavar="S",
                     help="maps whose sounding score (the model's calibrated probability that a source in view "
                          "is sounding) is below S are published with quiet=true, and displays fade them "
                          "(default 0.5; 0: never quiet)")
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


def _add_motion_options(group) -> None:
    """--no-stabilise and --motion-memory (FlowSettings.stabilise and .motion_memory)."""
    group.add_argument("--no-stabilise", dest="stabilise", action="store_false",
                       help="keep camera shake in the flow (default: removed from every flow field)")
    group.add_argument("--motion-memory", choices=("auto", "on", "off"), default="auto",
                       help="feed the model the 5 s motion memory (on) or one flow field (off); auto: the "
                            "model's default (docs/RESULTS.md)")


def _add_spatial_options(group) -> None:
    """--mics and --hfov (SpatialSettings.geometry)."""
    group.add_argument("--mics", metavar="FILE|stereo:D|square:D", default=None,
                       help="the microphone array, positions in metres in camera coordinates: a JSON file "
                            '({"mic_positions_m": [[x, y, z], ...], "hfov_deg": 90}) or a preset (stereo:0.2: a '
                            "20 cm pair along x centred on the camera; square:D: four on a D-metre square); the "
                            "audio then needs one channel per microphone, and each map carries the direction "
                            "heard (docs/SPATIAL.md)")
    group.add_argument("--hfov", type=float, default=None, metavar="DEG",
                       help="the camera's horizontal field of view in degrees, for --mics (default: the file's, "
                            "else 90)")


def _spatial_and_model(args: argparse.Namespace) -> tuple[ModelSettings, SpatialSettings, "bool | None"]:
    """--model's spec, --mics and --hfov as the model, the array, and the motion memory
    (--motion-memory, or the spec's +memory/+nomemory; StartError when the two disagree)."""
    memory = {"auto": None, "on": True, "off": False}[args.motion_memory]
    spec = None if args.model is None else parse_spec(args.model)
    if spec is not None and spec.memory is not None:
        if memory is not None and memory != spec.memory:
            raise StartError(f"--model {args.model} asks for the motion memory {'on' if spec.memory else 'off'} but "
                             f"--motion-memory is {args.motion_memory}; give one of them")
        memory = spec.memory
    if args.hfov is not None and args.mics is None:
        raise StartError("--hfov is the camera's field of view for --mics: give --mics too")
    geometry = None if args.mics is None else parse_mics(args.mics, args.hfov)
    model = ModelSettings(None if spec is None else spec.base, args.backend, args.device, untrained=args.untrained)
    return model, SpatialSettings(geometry, fuse=spec is not None and spec.doa), memory


def to_config(args: argparse.Namespace) -> LiveConfig:
    """run_live's parsed options as a LiveConfig: --demo's defaults filled in, one --audio
    spread over every camera; StartError for options that do not go together (LiveConfig
    fills in and checks the rest)."""
    cameras, audio, duration, snapshot = args.camera, args.audio, args.duration, args.snapshot
    if args.demo:
        if not DEMO_CLIP.is_file():
            raise StartError(f"{DEMO_CLIP}: the bundled demo clip is missing; restore it with git checkout")
        cameras = cameras or [str(DEMO_CLIP)]
        audio = audio or ["video"]
        # Someone watching the dashboard needs more than the demo's few seconds.
        if duration is None and args.dashboard is None:
            duration = DEMO_SECONDS
        snapshot = snapshot or Path("demo_out/live.png")
    cameras = cameras or []
    if audio is not None and len(audio) not in (1, len(cameras)) and cameras:
        raise StartError(f"{len(audio)} --audio options for {len(cameras)} cameras: give one for all "
                         "cameras or one per --camera")
    audio = audio * len(cameras) if audio and len(audio) == 1 else audio or [None] * len(cameras)
    if (args.curve_secret is None) != (args.curve_clients is None):
        raise StartError("--curve-secret and --curve-clients go together")
    curve = CurveServer(args.curve_secret, args.curve_clients) if args.curve_secret else None
    model, spatial, memory = _spatial_and_model(args)
    return LiveConfig(
        sources=tuple(SourceSettings(str(c), a, args.mic_calibration, args.channels) for c, a in zip(cameras, audio)),
        model=model,
        flow=FlowSettings(args.flow_hw, args.flow_backend, args.flow_compile, args.stabilise, memory),
        publishing=PublishSettings(args.publish, args.stream, args.heatmap_dtype,
                                   None if args.no_frame else JPEG_QUALITY, curve, min_score=args.min_score),
        dashboard=DashboardSettings(args.dashboard),
        run=RunSettings(duration, snapshot, args.quiet),
        threads=args.threads,
        spatial=spatial,
    )


def main(argv=None) -> int:
    """run_live: parse, build the live system, run it with a status line, report; the exit status."""
    args = build_parser().parse_args(argv)
    try:
        config = to_config(args)
        system = build_live(config, notify=None if args.quiet else _say)
    except InputError as e:  # bad input: one line; anything else is a bug and shows as one
        print(f"run_live: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # whatever had opened is closed again by build_live
        print("run_live: interrupted while starting", file=sys.stderr)
        return 0
    print(f"run_live: {system.start_line()}", file=sys.stderr)
    if system.dashboard is not None:
        print(f"run_live: dashboard on {system.dashboard.url}", file=sys.stderr, flush=True)
    tty = sys.stderr.isatty()

    def show(all_stats):
        if not config.run.quiet:
            print(("\r" if tty else "") + system.status_line(all_stats), end="" if tty else "\n", file=sys.stderr,
                  flush=True)

    # A service manager's SIGTERM ends the run as Ctrl-C does: stages joined, summary printed.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    code = 0
    try:
        final = system.run(on_status=show)
    except PipelineError as e:
        final, code = system.stats(), 1
        print(f"\nrun_live: error: {e}", file=sys.stderr)
    except InputError as e:  # a microphone that opened but refuses to capture
        final, code = system.stats(), 2
        print(f"\nrun_live: error: {one_line(e)}", file=sys.stderr)
    if tty and not config.run.quiet:
        print(file=sys.stderr)
    print(f"run_live: done: {system.status_line(final)}", file=sys.stderr)
    for _, written in system.write_snapshots():
        print(f"run_live: {'wrote ' + str(written) if written else 'no heatmap to snapshot'}", file=sys.stderr)
    exit_past_stuck_stages(system.stuck_stages(), code)
    # The interpreter's exit would otherwise spend ~0.5 s collecting torch's objects, a
    # quarter of Ctrl-C's 2 s; nothing here needs them collected.
    gc.freeze()
    return code


def _say(line: str) -> None:
    print(f"run_live: {line}", file=sys.stderr, flush=True)


def interrupt(signum, frame) -> None:
    """Ctrl-C and SIGTERM: interrupt the run once; a second signal must not cut the stop short."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def exit_past_stuck_stages(stuck: list[str], code: int) -> None:
    """End the process at once with ``code`` when a stage (``stuck``: "camera0 capture", ...)
    is still inside a native call.

    Such a call cannot be interrupted (an OpenCV stream read or reopen runs up to its 5 s
    timeout; one huge frame's decode or resize takes seconds), and a thread still inside
    OpenCV or torch while the interpreter tears down aborts the process ("FATAL: exception
    not rethrown"). Everything of ours is closed and written by now, so leaving without the
    teardown loses nothing and keeps Ctrl-C within its 2 s.
    """
    if not stuck:
        return
    print(f"run_live: exiting without waiting for stages still inside a native call: {', '.join(stuck)}",
          file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
