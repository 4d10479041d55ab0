"""Many camera streams on one machine: maps/s per stream and in all, with one shared, batching engine.

    .venv/bin/python bench/streams.py [--streams 1 2 4 8] [--model flowgrad_en] [--backend torch|onnxruntime]
                                      [--int8] [--device cuda] [--seconds 30] [--fps 96 | --total-fps 96]
                                      [--threads N] [--flow-size 320x180] [--flow-compile] [--rss-every S]

Every stream plays the bundled 640x360 street clip as its camera with the clip's
sound track as its microphone; ``--fps F`` re-times the clip to F frames/s (its
frames paced F a second instead of 24), a camera faster than any stream can
follow, so the rows measure the SATURATED rate; without it the clip plays at its
own 24 fps. ``--total-fps F`` splits F frames/s over a row's cameras (F/N each): the
same offered load, and decoding cost, in every row, still more frames than the
cameras get maps, so N cameras' sum compares with one camera's saturated rate.
Each row is built as run_live builds several cameras (realtime.live):
every stream runs its own rolling flow (OpenCV on a CPU, our torch Farneback with
--device cuda), all streams share one engine and send through one ZeroMQ PUB
socket on loopback. ``--threads`` is the process's thread budget (LiveConfig.threads,
run_live --threads); default: one per core.

After a warm-up (WARMUP_S) each row measures ``--seconds`` and prints one line per
stream and one for all ("all"): maps/s (the sum over streams on the "all" line),
capture-to-publish latency p50 / p95 in ms (the "all" line: the median p50 and the
highest p95), frames and flows dropped, and for the process: CPU use in % of one
core and CPU milliseconds per published map (what a busy, shared machine changes least),
OS threads, resident memory (MiB at the end of warm-up -> halfway -> at the end), the
mean batch of the shared engine (and flow) and the load average before the row.
A saturated source drops most of its frames by design (they arrive faster than
the pipeline takes them): those drops are the source's surplus, not lost maps.

Targets (issue 20, 2 cores, flow at 320x180, int8 full-width FlowGrad-EN): one
camera's saturated rate S1 >= 30 maps/s with p95 <= 100 ms; 2, 4 and 8 cameras
give >= 0.9 S1 in all, the slowest stream >= 0.8 x the median stream, p95 <= 250 ms.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.onnx import export_onnx  # noqa: E402
from flowgrad import engine as engines  # noqa: E402
from flowgrad import models  # noqa: E402
from flowgrad.sizes import format_wxh, wxh_arg  # noqa: E402
from realtime.assets import DEMO_CLIP  # noqa: E402
from realtime.live import (FlowSettings, LiveConfig, ModelSettings, PublishSettings, RunSettings,  # noqa: E402
                           SourceSettings, build_live)
from realtime.live.config import default_device  # noqa: E402
from realtime.pipeline import LIVE_FLOW_HW  # noqa: E402
from timing import cpu_name  # noqa: E402

WARMUP_S = 3.0


def process_figures() -> dict:
    """This process now: CPU seconds used (user + system), OS threads, resident memory in MiB."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    times = os.times()
    return {"cpu_s": times.user + times.system, "threads": int(status["Threads"]),
            "rss_mib": int(status["VmRSS"].split()[0]) / 1024}


def load_average() -> str:
    """The 1-minute load average (the machine's other work while a row ran)."""
    return Path("/proc/loadavg").read_text().split()[0]


def model_settings(args, tmp: Path) -> ModelSettings:
    """The model every row runs: the registry model (untrained: speed does not need training)
    or its ONNX export written once into ``tmp``."""
    if args.backend == "onnxruntime":
        export_onnx(models.create(args.model).eval(), tmp / args.model, int8_video=DEMO_CLIP if args.int8 else None)
        return ModelSettings(str(tmp / args.model), device=args.device)
    return ModelSettings(args.model, backend=args.backend, device=args.device, untrained=True)


def run(n: int, model: ModelSettings, args) -> list[str]:
    """One row: ``n`` streams for WARMUP_S + args.seconds; the table lines (one per stream, then "all")."""
    if args.flow_compile:
        torch._dynamo.reset()  # a fresh graph cache per row (batch size): no recompile limit
    load = load_average()
    fps = args.total_fps / n if args.total_fps else args.fps
    system = build_live(LiveConfig(
        sources=(SourceSettings(str(DEMO_CLIP), "video", pace_fps=fps),) * n, model=model,
        flow=FlowSettings(args.flow_hw, compile=args.flow_compile),
        publishing=PublishSettings("tcp://127.0.0.1:*", stream="cam"),
        run=RunSettings(duration=WARMUP_S + args.seconds, quiet=True, stats_window_s=args.seconds),
        threads=args.threads))
    warm: dict = {}
    peak = {"threads": 0}
    rss: list[tuple[float, float]] = []  # (seconds after warm-up, MiB)

    def at_status(all_stats):
        now = process_figures()
        peak["threads"] = max(peak["threads"], now["threads"])
        if warm:
            rss.append((time.monotonic() - warm["at"], now["rss_mib"]))
            if args.rss_every and len(rss) % round(args.rss_every) == 0:  # a sample a second
                print(f"# {rss[-1][0]:.0f} s after warm-up: RSS {rss[-1][1]:.0f} MiB, maps so far "
                      f"{sum(p.published.count for p in system.pipelines)}, load {load_average()}", flush=True)
        if not warm and all_stats[0]["uptime_s"] >= WARMUP_S:
            for pipeline in system.pipelines:
                pipeline.published.clear()  # count the measured part only
            warm.update(process_figures(), at=time.monotonic(), drops=[s["drops"] for s in all_stats])
    stats = system.run(on_status=at_status)
    end = process_figures()
    wall = time.monotonic() - warm["at"]
    lines = []
    for k, s in enumerate(stats):
        d = {key: s["drops"][key] - warm["drops"][k][key] for key in ("frames", "flows")}
        lat = s["latency_ms"]
        lines.append(f"| {n} | {system.streams[k]} | {s['fps']:.1f} | {_ms(lat['p50'])} | {_ms(lat['p95'])} "
                     f"| {d['frames']} | {d['flows']} | | | | | |")
    fps = [s["fps"] for s in stats]
    p50 = [s["latency_ms"]["p50"] for s in stats if s["latency_ms"]["p50"] is not None]
    p95 = [s["latency_ms"]["p95"] for s in stats if s["latency_ms"]["p95"] is not None]
    drops = {key: sum(s["drops"][key] - warm["drops"][k][key] for k, s in enumerate(stats))
             for key in ("frames", "flows")}
    batch = system.batching()
    mean = (lambda v: "-" if v is None else f"{v:.1f}")  # noqa: E731
    flow_batch = f" / {mean(batch['flow'])}" if batch["flow"] is not None else ""
    cpu = 100 * (end["cpu_s"] - warm["cpu_s"]) / wall
    per_map = 1000 * (end["cpu_s"] - warm["cpu_s"]) / max(sum(s["published"] for s in stats), 1)
    lines.append(f"| {n} | **all** | **{sum(fps):.1f}** (slowest/median {min(fps) / max(statistics.median(fps), 1e-9):.2f})"
                 f" | {_ms(statistics.median(p50) if p50 else None)} | {_ms(max(p95) if p95 else None)} "
                 f"| {drops['frames']} | {drops['flows']} | {cpu:.0f} ({per_map:.0f} ms a map) | {peak['threads']} "
                 f"| {warm['rss_mib']:.0f} -> {_middle(rss, wall):.0f} -> {end['rss_mib']:.0f} | {mean(batch['maps'])}{flow_batch} | {load} |")
    return lines


def _middle(rss: list[tuple[float, float]], wall: float) -> float:
    """The RSS sample (MiB) nearest the middle of the measured ``wall`` seconds."""
    return min(rss, key=lambda sample: abs(sample[0] - wall / 2))[1] if rss else float("nan")


def _offered(args) -> str:
    if args.total_fps:
        return f"{args.total_fps:g} fps in all, split over the cameras (re-timed)"
    return f"{args.fps:g} fps (re-timed)" if args.fps else "its own 24 fps"


def _ms(v) -> str:
    return "-" if v is None else f"{v:.0f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--model", default="flowgrad_en", choices=models.names())
    p.add_argument("--backend", default="torch", choices=engines.BACKENDS)
    p.add_argument("--int8", action="store_true", help="onnxruntime: the int8 export (export.onnx --int8)")
    p.add_argument("--device", default=default_device())
    p.add_argument("--seconds", type=float, default=30.0, help="measured seconds per row, after warm-up (default 30)")
    offered = p.add_mutually_exclusive_group()
    offered.add_argument("--fps", type=float, default=None,
                         help="each camera plays the clip at this many frames/s (a saturating camera, e.g. 96); "
                              "default: its own 24")
    offered.add_argument("--total-fps", type=float, default=None,
                         help="the row's cameras play the clip at this many frames/s in all (each F / cameras)")
    p.add_argument("--threads", type=int, default=None, help="the process's thread budget (default: the core count)")
    p.add_argument("--rss-every", type=float, default=None, metavar="S",
                   help="also print the resident memory every S seconds of a row (a memory run: e.g. "
                        "--streams 8 --seconds 600 --rss-every 60)")
    p.add_argument("--flow-size", type=wxh_arg(), default=LIVE_FLOW_HW, metavar="WxH", dest="flow_hw")
    p.add_argument("--flow-compile", action="store_true",
                   help="--device cuda: our Farneback compiled by torch.compile (BatchingFlow(compile=True))")
    args = p.parse_args(argv)
    if any(n < 1 for n in args.streams):
        p.error("--streams must be positive")
    if any(v is not None and not v > 0 for v in (args.fps, args.total_fps)):
        p.error("--fps and --total-fps must be positive")
    if args.flow_compile and not args.device.startswith("cuda"):
        p.error("--flow-compile applies to the torch Farneback, used with --device cuda")
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if args.device.startswith("cuda") else ""
    print(f"# {cpu_name()}, {os.cpu_count()} CPUs{gpu}, torch {torch.__version__}; {args.model} "
          f"({args.backend}{' int8' if args.int8 else ''}, {args.device}), full width, flow at "
          f"{format_wxh(args.flow_hw)}{' compiled' if args.flow_compile else ''}, clip {DEMO_CLIP.name} per stream "
          f"at {_offered(args)}, {WARMUP_S:g} s warm-up + "
          f"{args.seconds:g} s per row, thread budget {args.threads or 'default'}")
    print("| streams | stream | maps/s | latency p50 ms | p95 | dropped frames | dropped flows | CPU % "
          "| threads | RSS MiB | mean batch (maps / flow) | load before |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        model = model_settings(args, Path(tmp))
        for n in args.streams:
            print("\n".join(run(n, model, args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
