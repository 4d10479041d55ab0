"""Many camera streams on one machine: heatmaps/s per stream with one shared, batching engine.

    .venv/bin/python bench/streams.py [--streams 1 4 16] [--model flowgrad_en] [--backend torch|onnxruntime]
                                      [--int8] [--device cuda] [--seconds 30] [--flow-size 320x180]
                                      [--flow-compile]

Every stream plays the bundled 640x360, 24 fps street clip in real time as its
camera with the clip's sound track as its microphone; each row is built as
run_live builds several cameras (realtime.live): every stream runs its own
rolling flow (OpenCV on a CPU, our torch Farneback with --device cuda), and
sends its maps through one shared ZeroMQ PUB socket on loopback. With several
streams inference goes through one realtime.batching.BatchingEngine, so
concurrent streams share engine calls; on a GPU their flow pairs share batched
Farneback calls too (BatchingFlow), compiled by torch.compile with --flow-compile
(compiled before the row's clock starts). Reported per stream count: the median
and the lowest maps/s over the streams, capture-to-publish latency p50 / p95
(median over streams), the mean batch size of the shared engine (and flow; "-"
where nothing is shared, as with one stream), and frames/flows dropped.

Target (issue 6): on one H100, >= 16 streams at 25 heatmaps/s each (the clip
gives at most 24 frames/s per stream).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
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


def model_settings(args, tmp: Path) -> ModelSettings:
    """The model every row runs: the registry model (untrained: speed does not need training)
    or its ONNX export written once into ``tmp``."""
    if args.backend == "onnxruntime":
        export_onnx(models.create(args.model).eval(), tmp / args.model, int8_video=DEMO_CLIP if args.int8 else None)
        return ModelSettings(str(tmp / args.model), device=args.device)
    return ModelSettings(args.model, backend=args.backend, device=args.device, untrained=True)


def run(n: int, model: ModelSettings, args) -> str:
    """One row: ``n`` streams for args.seconds; the table row."""
    if args.flow_compile:
        torch._dynamo.reset()  # a fresh graph cache per row (batch size): no recompile limit
    system = build_live(LiveConfig(
        sources=(SourceSettings(str(DEMO_CLIP), "video"),) * n, model=model,
        flow=FlowSettings(args.flow_hw, compile=args.flow_compile),
        publishing=PublishSettings("tcp://127.0.0.1:*", stream="cam"),
        run=RunSettings(duration=args.seconds, quiet=True, stats_window_s=args.seconds)))
    stats = system.run()
    fps = [s["fps"] for s in stats]
    p50 = [s["latency_ms"]["p50"] for s in stats if s["latency_ms"]["p50"] is not None]
    p95 = [s["latency_ms"]["p95"] for s in stats if s["latency_ms"]["p95"] is not None]
    frames = sum(s["drops"]["frames"] for s in stats)
    flows = sum(s["drops"]["flows"] for s in stats)
    med = (lambda v: f"{statistics.median(v):.0f}" if v else "-")  # noqa: E731
    batch = system.batching()
    mean = (lambda v: "-" if v is None else f"{v:.1f}")  # noqa: E731
    flow_batch = f" / {mean(batch['flow'])}" if batch["flow"] is not None else ""
    return (f"| {n} | {statistics.median(fps):.1f} | {min(fps):.1f} | {med(p50)} | {med(p95)} | "
            f"{mean(batch['maps'])}{flow_batch} | {frames} | {flows} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--model", default="flowgrad_en", choices=models.names())
    p.add_argument("--backend", default="torch", choices=engines.BACKENDS)
    p.add_argument("--int8", action="store_true", help="onnxruntime: the int8 export (export.onnx --int8)")
    p.add_argument("--device", default=default_device())
    p.add_argument("--seconds", type=float, default=30.0, help="seconds per stream count (default 30)")
    p.add_argument("--flow-size", type=wxh_arg(), default=LIVE_FLOW_HW, metavar="WxH", dest="flow_hw")
    p.add_argument("--flow-compile", action="store_true",
                   help="--device cuda: our Farneback compiled by torch.compile (BatchingFlow(compile=True))")
    args = p.parse_args(argv)
    if any(n < 1 for n in args.streams):
        p.error("--streams must be positive")
    if args.flow_compile and not args.device.startswith("cuda"):
        p.error("--flow-compile applies to the torch Farneback, used with --device cuda")
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if args.device.startswith("cuda") else ""
    print(f"# {cpu_name()}, {os.cpu_count()} CPUs{gpu}, torch {torch.__version__}; {args.model} "
          f"({args.backend}{' int8' if args.int8 else ''}, {args.device}), full width, flow at "
          f"{format_wxh(args.flow_hw)}{' compiled' if args.flow_compile else ''}, "
          f"{args.seconds:g} s per row, clip {DEMO_CLIP.name} per stream")
    print("| streams | maps/s per stream (median) | lowest | latency p50 ms | p95 | mean batch (maps / flow) "
          "| dropped frames | dropped flows |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        model = model_settings(args, Path(tmp))
        for n in args.streams:
            print(run(n, model, args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
