"""Latency and throughput of every registry model through flowgrad.engine, per backend.

    .venv/bin/python bench/engines.py [--models NAME ...] [--repeat 10] [--width 1.0] [--no-compile] [--no-int8]

Per model (full width by default) and backend: the frame path through
``Engine.heatmaps`` (numpy in, numpy out, so host<->device copies are included)
at batch 1 (latency, ms) and batch 8 (ms and maps/s), and the audio path
``Engine.embed_audio`` at batch 1 (ms); medians of --repeat runs after warm-up.

Backends: torch eager (fp32), torch.compile (fp32; skipped with a note if it
fails), onnxruntime CPU in float32 and int8 (``export.onnx --int8``, calibrated
on 16 frames of the bundled street clip); with CUDA: torch eager fp16 and onnxruntime
CUDAExecutionProvider (when onnxruntime-gpu is installed). ONNX files are
exported to a temporary directory with a dynamic batch.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for `export` when run as a script

from flowgrad import engine, models  # noqa: E402
from timing import cpu_name, median_ms  # noqa: E402  (bench/ is on sys.path when run as a script)


def measure(eng, batches, repeat, warmup=2) -> list[str]:
    h, w = eng.input_size
    rng = np.random.default_rng(0)
    wave = (rng.standard_normal((1, eng.samples)) * 0.1).astype(np.float32)
    emb1 = eng.embed_audio(wave)
    row = []
    ms = None
    for b in batches:
        frame = rng.random((b, 3, h, w), dtype=np.float32)
        flow = (rng.standard_normal((b, 2, h, w)) * 4).astype(np.float32)
        emb = np.repeat(emb1, b, axis=0)
        ms = median_ms(lambda: eng.heatmaps(frame, flow, emb), repeat, warmup)
        row.append(f"{ms:.1f}")
    row.append(f"{1000 * batches[-1] / ms:.1f}")
    row.append(f"{median_ms(lambda: eng.embed_audio(wave), repeat, warmup):.1f}" if eng.uses_audio else "-")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=models.names(), choices=models.names(), metavar="NAME")
    parser.add_argument("--batch", type=int, nargs=2, default=[1, 8], metavar=("LATENCY", "THROUGHPUT"))
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA backends even where CUDA is available")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 onnxruntime export (export.onnx --int8)")
    args = parser.parse_args()

    from export.onnx import export_onnx
    from realtime.assets import DEMO_CLIP
    import onnxruntime as ort

    cuda = torch.cuda.is_available() and not args.no_cuda
    ort_cuda = cuda and "CUDAExecutionProvider" in ort.get_available_providers()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if cuda else ", no CUDA"
    print(f"# {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"onnxruntime {ort.__version__}{gpu}, width {args.width}")
    b1, bn = args.batch
    header = ["model", "backend", f"b{b1} ms", f"b{bn} ms", f"b{bn} maps/s", "audio b1 ms"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    notes = []
    if cuda and not ort_cuda:
        notes.append(f"onnxruntime CUDA skipped: CUDAExecutionProvider not available (providers: "
                     f"{', '.join(ort.get_available_providers())}; install onnxruntime-gpu)")

    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            fields = {f.name for f in dataclasses.fields(models.config_class(name))}
            torch.manual_seed(0)
            model = models.create(name, **({"width": args.width} if "width" in fields else {}))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                export_onnx(model, Path(tmp) / name)
                if not args.no_int8:
                    export_onnx(model, Path(tmp) / f"{name}.int8", int8_video=DEMO_CLIP)

            variants = [("torch eager fp32 cpu", lambda: engine.TorchEngine(model, "cpu", source=name))]
            if not args.no_compile:
                def compiled():
                    eng = engine.TorchEngine(model, "cpu", source=name)
                    eng.forward = torch.compile(eng.model)
                    return eng
                variants.append(("torch.compile fp32 cpu", compiled))
            variants.append(("onnxruntime cpu", lambda: engine.open(Path(tmp) / name)))
            if not args.no_int8:
                variants.append(("onnxruntime int8 cpu", lambda: engine.open(Path(tmp) / f"{name}.int8")))
            if cuda:
                import copy

                variants.append(("torch eager fp16 cuda",
                                 lambda: engine.TorchEngine(copy.deepcopy(model), "cuda", dtype=torch.float16,
                                                            source=name)))
                if ort_cuda:
                    variants.append(("onnxruntime cuda", lambda: engine.open(Path(tmp) / name, device="cuda")))

            for label, make in variants:
                try:
                    eng = make()
                    row = measure(eng, [b1, bn], args.repeat, warmup=3 if "compile" in label else 2)
                except Exception as exc:  # noqa: BLE001 - report and go on
                    notes.append(f"{name} / {label} skipped: {type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())[:200]}")
                    continue
                finally:
                    model.to("cpu", torch.float32)
                print("| " + " | ".join([name, label, *row]) + " |", flush=True)
            torch._dynamo.reset()
    for note in notes:
        print(f"\nNote: {note}")


if __name__ == "__main__":
    main()
