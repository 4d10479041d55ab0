"""Cost per map of camera-shake compensation and the motion memory at the live flow size.

    .venv/bin/python bench/motion.py [--size 320x180] [--repeat 200] [--threads 2]

Times, on real flow (OpenCV Farneback between the demo's frame0.png and a shaken copy of it, at
--size), flowgrad.flow.stabilise.compensate (given the frame, whose texture picks the samples it
fits, as RollingFlow calls it), MotionMemory.update (one flow-rate sample with its frame and the
fit's camera displacement, which moves its state every time, and returns the memory) and both in
a row; the Farneback pair itself for scale. Prints the machine, the 1-minute load average before and
after (the machine may be shared) and a Markdown table of median and 95th-percentile ms.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from flowgrad.flow import opencv_flow
from flowgrad.flow.memory import MotionMemory
from flowgrad.flow.stabilise import compensate
from flowgrad.sizes import wxh_arg
from timing import cpu_name  # bench/ is on sys.path when run as a script

FRAME = Path(__file__).resolve().parents[1] / "assets" / "demo" / "frame0.png"


def _times_ms(fn, repeat: int) -> tuple[float, float]:
    """(median, 95th percentile) wall ms of fn(i) over ``repeat`` calls after 3 warm-up calls."""
    for i in range(3):
        fn(i)
    out = []
    for i in range(repeat):
        start = time.perf_counter()
        fn(i + 3)
        out.append(1000 * (time.perf_counter() - start))
    return float(np.median(out)), float(np.percentile(out, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=wxh_arg(32), default=(180, 320), metavar="WxH",
                        help="flow grid, width x height in pixels (default 320x180, the live default)")
    parser.add_argument("--repeat", type=int, default=200, help="timed calls per row (default 200)")
    parser.add_argument("--threads", type=int, default=2, help="OpenCV threads (default 2)")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    h, w = args.size
    frame = cv2.resize(cv2.imread(str(FRAME), cv2.IMREAD_GRAYSCALE), (w, h), interpolation=cv2.INTER_AREA)
    shake = cv2.getRotationMatrix2D((w / 2, h / 2), 0.8, 1.01)
    shake[:, 2] += (2.0, -1.0)
    shaken = cv2.warpAffine(frame, shake, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    flow = opencv_flow(frame, shaken)
    _, info = compensate(flow, frame=frame)
    memory = MotionMemory()

    # Each update follows the shake's ~2 px camera displacement: the memory's state moves every time (its worst case).
    def both(i):
        out, fit = compensate(flow, frame=frame)
        memory.update(out, 1e5 + 0.125 * i, frame, camera=fit.camera_px)

    load_before = os.getloadavg()[0]
    rows = [("Farneback pair (for scale)", _times_ms(lambda i: opencv_flow(frame, shaken), args.repeat // 4)),
            ("compensate (stabilise)", _times_ms(lambda i: compensate(flow, frame=frame), args.repeat)),
            ("MotionMemory.update",
             _times_ms(lambda i: memory.update(flow, 1e3 + 0.125 * i, frame, camera=info.camera_px), args.repeat)),
            ("both in a row (per map)", _times_ms(both, args.repeat))]
    load_after = os.getloadavg()[0]
    print(f"# {cpu_name()}, {os.cpu_count()} CPUs, OpenCV {cv2.__version__} on {args.threads} threads; "
          f"{w}x{h} flow; 1-min load average {load_before:.2f} before, {load_after:.2f} after; "
          f"fit: {info.reason}, inliers {info.inlier_fraction:.2f}")
    print("\n| step | median ms | p95 ms |")
    print("|---|---|---|")
    for name, (median, p95) in rows:
        print(f"| {name} | {median:.2f} | {p95:.2f} |")


if __name__ == "__main__":
    main()
