"""Sustained live throughput and latency of the whole pipeline, per model and backend.

    .venv/bin/python bench/live.py [--seconds 60] [--models flow_only flowgrad_en] [--backends torch onnxruntime]
                                   [--flow-size 320x180] [--clip assets/demo/street.mp4] [--int8]
                                   [--mics stereo:0.2]

The bundled 640x360, 24 fps street clip is played in real time as the camera
(its sound track as the microphone); every heatmap is published over a real
ZeroMQ PUB socket on loopback. Each run is built as run_live builds its own
(realtime.live): flow by OpenCV on a CPU, by our torch Farneback on cuda.
Reported per run: heatmaps per second over the
run, capture-to-publish latency p50/p95/p99 (ms), frames dropped before flow,
flows dropped before inference, and the median flow / inference / audio stage
times (ms). The first 3 s (warm-up) are not counted. With ``--mics`` (the clip's track has
one channel per microphone) each model runs as ``NAME+doa`` and the median time of direction
finding and fusion per map ("doa ms") is reported too (issue 19's budget: 5 ms on 2 cores).

Targets (issue 6): on a 2-core CPU, FlowGrad-EN >= 8 heatmaps/s with p95 <= 250 ms.
"""
from __future__ import annotations

import argparse
import os
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
from flowgrad.spatial.geometry import parse_mics  # noqa: E402
from realtime.live import (FlowSettings, LiveConfig, ModelSettings, PublishSettings, RunSettings,  # noqa: E402
                           SourceSettings, SpatialSettings, build_live)
from realtime.live.config import default_device  # noqa: E402
from realtime.pipeline import LIVE_FLOW_HW  # noqa: E402
from timing import cpu_name  # noqa: E402

WARMUP_S = 3.0


def run_once(model: ModelSettings, clip: Path, seconds: float, flow_hw: tuple[int, int],
             spatial: SpatialSettings = SpatialSettings()) -> dict:
    """One run of the live system on ``clip``, ``seconds`` after warm-up; returns its final stats."""
    system = build_live(LiveConfig(
        sources=(SourceSettings(str(clip), "video"),), model=model, flow=FlowSettings(flow_hw),
        publishing=PublishSettings("tcp://127.0.0.1:*", stream="bench"),
        run=RunSettings(duration=WARMUP_S + seconds, quiet=True, stats_window_s=seconds), spatial=spatial))
    warm = {}

    def note_warm(all_stats):
        if not warm and all_stats[0]["uptime_s"] >= WARMUP_S:
            warm.update(all_stats[0])
            system.pipelines[0].published.clear()  # count the measured part only
    final = system.run(on_status=note_warm)[0]
    final["drops_measured"] = {k: final["drops"][k] - warm.get("drops", {}).get(k, 0) for k in final["drops"]}
    return final


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="measured seconds per run (default 60)")
    p.add_argument("--models", nargs="+", default=["flow_only", "rcgrad", "flowgrad_h", "flowgrad_en", "htf"],
                   choices=models.names())
    p.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"], choices=engines.BACKENDS)
    p.add_argument("--device", default=default_device())
    p.add_argument("--flow-size", type=wxh_arg(), default=LIVE_FLOW_HW, metavar="WxH", dest="flow_hw")
    p.add_argument("--clip", type=Path, default=DEMO_CLIP)
    p.add_argument("--int8", action="store_true",
                   help="with the onnxruntime backend, also run the int8 export (export.onnx --int8)")
    p.add_argument("--mics", default=None, metavar="FILE|stereo:D|square:D",
                   help="run every model +doa with this microphone array (run_live --mics)")
    args = p.parse_args(argv)
    spatial = SpatialSettings(parse_mics(args.mics), fuse=True) if args.mics else SpatialSettings()
    doa = " doa ms |" if args.mics else ""
    print(f"# {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}, device {args.device}, "
          f"clip {args.clip.name} played in real time, flow at {format_wxh(args.flow_hw)}, "
          f"{args.seconds:g} s per run after {WARMUP_S:g} s warm-up")
    print("| model | backend | maps/s | latency p50 ms | p95 | p99 | dropped frames | dropped flows "
          f"| flow ms | infer ms | audio ms |{doa}")
    print("|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * bool(doa))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            runs = list(args.backends)
            if args.int8 and "onnxruntime" in runs:
                runs.insert(runs.index("onnxruntime") + 1, "onnxruntime int8")
            for backend in runs:
                if backend.startswith("onnxruntime"):
                    export_onnx(models.create(name).eval(), Path(tmp) / name, batch=1,
                                int8_video=DEMO_CLIP if backend.endswith("int8") else None)
                    model = ModelSettings(str(Path(tmp) / name), device=args.device)
                else:
                    model = ModelSettings(name, device=args.device, untrained=True)  # timing only
                s = run_once(model, args.clip, args.seconds, args.flow_hw, spatial)
                lat, st, d = s["latency_ms"], s["stage_ms"], s["drops_measured"]
                fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
                print(f"| {name} | {backend} | {s['fps']:.1f} | {fmt(lat['p50'])} | {fmt(lat['p95'])} | "
                      f"{fmt(lat['p99'])} | {d['frames']} | {d['flows']} | {fmt(st['flow'])} | {fmt(st['infer'])} | "
                      f"{fmt(st['audio'])} |" + (("" if not doa else " - |" if st["doa"] is None else f" {st['doa']:.2f} |")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
