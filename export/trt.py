"""TensorRT export through torch-tensorrt: ``python -m export.trt MODEL.ckpt [-o OUT] [--fp16] [--batch N]``.

MODEL is resolved as by ``export.onnx`` (a bare ``flowgrad_en.ckpt`` not in the
working directory is the shipped ``assets/models/flowgrad_en.ckpt``; a registry
name needs ``--untrained``). ``MODEL+doa`` is refused in one line (exit status 2): an
ExportedProgram carries no flowgrad metadata to record it in; name the engine ``+doa``
where it runs, or export ONNX with ``python -m export.onnx MODEL+doa``.

Writes ``<OUT>.frame.ep`` (frame, flow, audio_embedding -> heatmap, score) and, for
models that use audio, ``<OUT>.audio.ep`` (wave -> embedding), each a
torch-tensorrt ExportedProgram with the TensorRT engine embedded, for a fixed
batch size. Before writing, each compiled graph is run on random inputs and
compared with torch (max abs difference <= 1e-3 in fp32, 2e-2 with --fp16);
a mismatch is an error (one line, exit status 1) and nothing is written.

Needs a CUDA GPU, torch-tensorrt (2.13.x for torch 2.13) and TensorRT's
libraries. Where any is missing the command prints one line saying what and
how to install it, and exits with status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from flowgrad.errors import FlowGradError, InputError, one_line

from .onnx import AudioGraph, FrameGraph, model_spec, resolve_model

INSTALL_HINT = (
    "pip install 'torch-tensorrt>=2.13,<2.14' (TensorRT 11.0.x libraries come from NVIDIA's package index; "
    "see https://pytorch.org/TensorRT/getting_started/installation.html)"
)


class MissingDependency(InputError):
    """torch-tensorrt, TensorRT or CUDA is not available; the message says which and the fix."""


class TrtMismatchError(FlowGradError):
    """A compiled TensorRT graph does not reproduce torch within the tolerance; nothing was written."""


def require_tensorrt():
    """Import torch_tensorrt after checking CUDA; raise MissingDependency with one clear line otherwise."""
    if not torch.cuda.is_available():
        raise MissingDependency(
            "TensorRT export needs a CUDA GPU and a CUDA build of torch; none is available here "
            f"(torch {torch.__version__}). Use `python -m export.onnx` for a portable model instead."
        )
    try:
        import torch_tensorrt  # noqa: F401  (optional, GPU-only dependency)
    except ImportError as exc:
        raise MissingDependency(f"torch-tensorrt is not installed ({exc}); install it with: {INSTALL_HINT}") from None
    return torch_tensorrt


def _check_close(name: str, got, want, tol: float) -> float:
    """Largest difference over the outputs (a tensor, or a tuple such as (heatmap, score))."""
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    diff = max(float((g.float() - w.float()).abs().max()) for g, w in zip(got, want))
    if not diff <= tol:
        raise TrtMismatchError(f"{name}: TensorRT output differs from torch by {diff:.3g} (> {tol}); nothing written")
    return diff


def export_trt(model, out_prefix, *, fp16: bool = False, batch: int = 1) -> list[Path]:
    """Compile ``model``'s frame (and audio) graph with torch-tensorrt, check, save.

    Returns the written paths. Raises MissingDependency without GPU/TensorRT,
    TrtMismatchError when the compiled output does not match torch.
    """
    torch_tensorrt = require_tensorrt()
    device = torch.device("cuda")
    model = model.to(device).eval()
    precisions = {torch.float16, torch.float32} if fp16 else {torch.float32}
    tol = 2e-2 if fp16 else 1e-3
    h, w = model.input_size
    frame = torch.rand(batch, 3, h, w, device=device)
    flow = torch.randn(batch, 2, h, w, device=device) * 3
    graphs = {}
    if model.uses_audio:
        wave = torch.randn(batch, int(round(model.audio_rate * model.audio_seconds)), device=device) * 0.1
        graphs["audio"] = (AudioGraph(model).eval(), (wave,))
        with torch.no_grad():
            emb = graphs["audio"][0](wave)
        graphs["frame"] = (FrameGraph(model).eval(), (frame, flow, emb))
    else:
        graphs["frame"] = (FrameGraph(model).eval(), (frame, flow))
    compiled = {}
    with torch.no_grad(), model.tracing():  # the export-friendly paths, as export.onnx
        for role, (module, args) in graphs.items():
            trt_module = torch_tensorrt.compile(module, ir="dynamo", inputs=list(args), enabled_precisions=precisions)
            _check_close(f"{model.name} {role} graph", trt_module(*args), module(*args), tol)
            compiled[role] = (trt_module, args)
    written = []
    for role, (trt_module, args) in compiled.items():
        path = Path(f"{out_prefix}.{role}.ep")
        torch_tensorrt.save(trt_module, str(path), inputs=list(args))
        written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.trt", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", metavar="MODEL",
                        help="a flowgrad .ckpt file (a bare shipped name such as flowgrad_en.ckpt is found in "
                             "assets/models/), or a registry name with --untrained")
    parser.add_argument("--untrained", action="store_true",
                        help="allow a registry name of a model with weights: exports random, untrained weights")
    parser.add_argument("-o", "--out", help="output prefix (default: the checkpoint path without its suffix)")
    parser.add_argument("--fp16", action="store_true", help="allow fp16 kernels (tolerance 2e-2 instead of 1e-3)")
    parser.add_argument("--batch", type=int, default=1, help="fixed batch size of the engines (default 1)")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be >= 1")
    try:
        spec = model_spec(args.model, "export.trt", doa_recorded=False)
        model, default_out = resolve_model(spec.base, args.untrained, "export.trt")
        written = export_trt(model, args.out or default_out, fp16=args.fp16, batch=args.batch)
    except InputError as exc:  # a model that cannot be had, TensorRT or CUDA missing
        print(f"export.trt: {one_line(exc)}", file=sys.stderr)
        return 2
    except TrtMismatchError as exc:  # not the input's fault: the compiled engine is wrong
        print(f"export.trt: {one_line(exc)}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
