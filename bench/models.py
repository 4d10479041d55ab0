"""Latency of every registry model on this machine (torch eager), as a table.

    .venv/bin/python bench/models.py [--batch 1 8] [--repeat 10] [--width 1.0] [--device cpu]

Per model: the frame path (frame + flow + audio embedding -> heatmap) at each
batch size, and the audio path (one window -> embedding) at batch 1, in ms
(median of --repeat runs after 2 warm-up runs). Full-width models by default.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform

import torch

from flowgrad import models
from timing import median_ms  # bench/ is on sys.path when run as a script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, device {device}, width {args.width}")
    header = ["model"] + [f"frame b{b} ms" for b in args.batch] + [f"frame b{args.batch[-1]} maps/s", "audio b1 ms"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in models.names():
        fields = {f.name for f in dataclasses.fields(models.config_class(name))}
        model = models.create(name, **({"width": args.width} if "width" in fields else {})).to(device)
        h, w = model.input_size
        wave = torch.randn(1, int(model.audio_rate * model.audio_seconds), device=device) * 0.1
        row = [name]
        with torch.inference_mode():
            emb1 = model.embed_audio(wave)
            for b in args.batch:
                frame = torch.rand(b, 3, h, w, device=device)
                flow = torch.randn(b, 2, h, w, device=device)
                emb = emb1.expand(b, -1).contiguous()
                ms = median_ms(lambda: model(frame, flow, emb), args.repeat, warmup=2, sync=sync)
                row.append(f"{ms:.1f}")
            row.append(f"{1000 * args.batch[-1] / ms:.1f}")
            row.append(f"{median_ms(lambda: model.embed_audio(wave), args.repeat, warmup=2, sync=sync):.1f}")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
