"""ONNX export of registry localisers: one frame graph and one audio graph per model.

``export_onnx(model, out)`` writes

* ``<out>.frame.onnx``: inputs ``frame`` (B, 3, H, W) float32 RGB in [0, 1],
  ``flow`` (B, 2, H, W) float32 in pixels of the full camera frame and
  ``audio_embedding`` (B, embed_dim) float32 -> ``heatmap`` (B, H, W) in [0, 1]
  and ``score`` (B,) in [0, 1], the sounding score with the model's calibration
  as constants (metadata ``score_calibrated`` says whether it is calibrated);
* ``<out>.audio.onnx``: input ``wave`` (B, T) float32 mono at the model's
  ``audio_rate`` Hz, T = round(audio_rate * audio_seconds) fixed -> ``embedding``
  (B, embed_dim). The spectrogram is inside the graph, computed as a
  convolution with a fixed real-DFT basis (TensorRT's parser has no STFT/DFT).

``flow_only`` (``uses_audio`` False, embed_dim 0): only the frame graph is
written and it takes just ``frame`` and ``flow`` (a zero-width embedding input
is not representable in TensorRT and carries nothing). ``frame`` is kept as an
input although the map does not depend on it, so every frame graph has the
same leading inputs.

Both files are written with the legacy TorchScript exporter
(``torch.onnx.export(..., dynamo=False)``), which embeds the weights in the one
file. ``metadata_props`` hold JSON strings describing the graph (schema:
:mod:`flowgrad.onnx_meta`, which the engine reads them with).

Both graphs are traced inside ``model.tracing()``
(:meth:`flowgrad.models.base.Localiser.tracing`): the model itself takes its
export-friendly code paths (the spectrogram as a DFT-basis convolution, einsum
as Mul + ReduceSum, reference mode's input-statistics BatchNorm as explicit
reductions), on that one instance only; nothing process-wide is patched, so
other model instances (a live engine's) keep their own paths while an export runs.

``--int8`` quantises the frame graph's convolutions to int8 for CPUs
(:mod:`export.quantize`); the audio graph stays float32.

CLI: ``python -m export.onnx MODEL.ckpt[+doa] [-o OUT] [--opset N] [--batch dynamic|N] [--size WxH]
[--int8 [--calibrate VIDEO] [--calibration-frames N]] [--untrained]``. MODEL is a
checkpoint file (``+doa``: exported as usual, with metadata ``doa`` true, so that the
engine's ``wants_doa`` asks whoever runs it to fuse the map with the direction heard;
``+memory`` / ``+nomemory`` are chosen where the export runs, not recorded); a bare file name that is not in the working directory but is
one of the shipped checkpoints (``assets/models/flowgrad_en.ckpt``) is taken
from there (said on stderr; the output still goes to the working directory). A
registry name exports random, untrained weights and needs ``--untrained``
(except ``flow_only``, which has no weights).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import io
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from flowgrad import models as fg_models
from flowgrad.assets import DEMO_CLIP
from flowgrad.errors import InputError, one_line
from flowgrad.files import atomic_write
from flowgrad.onnx_meta import GraphMeta, OnnxFileError, read_graph, write_props
from flowgrad.sizes import format_wxh, wxh_arg
from flowgrad.spec import ModelSpec, SpecError, parse_spec

__all__ = ["export_onnx", "load_session", "read_metadata", "resolve_model", "model_spec", "main"]

# Smallest exported input side, px: the backbones downsample by 32.
MIN_SIDE = 32


# --------------------------------------------------------------------------- wrappers


class FrameGraph(nn.Module):
    """(frame, flow, audio_embedding) -> (heatmap, score); (frame, flow) for models without audio."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.uses_audio = bool(model.uses_audio)

    def forward(self, frame, flow, audio_embedding=None):
        if audio_embedding is None:
            audio_embedding = frame.new_zeros(frame.shape[0], 0)
        return self.model(frame, flow, audio_embedding)


class AudioGraph(nn.Module):
    """wave (B, T) -> embedding: the model's own ``embed_audio`` (export-friendly inside ``model.tracing()``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, wave):
        return self.model.embed_audio(wave)


# --------------------------------------------------------------------------- export


def _parse_batch(batch) -> int | None:
    if batch == "dynamic" or batch is None:
        return None
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be 'dynamic' or a positive int, got {batch!r}")
    return batch


def _metadata(model, role: str, inputs: dict, outputs: dict, batch, size_hw, wave_len: int | None) -> GraphMeta:
    """The metadata of one graph (schema: :mod:`flowgrad.onnx_meta`); size_hw: (H, W) of the inputs."""
    return GraphMeta(
        model=model.name,
        config=dataclasses.asdict(model.config),
        role=role,
        inputs=inputs,
        outputs=outputs,
        batch="dynamic" if batch is None else batch,
        input_size=tuple(size_hw),
        uses_audio=bool(model.uses_audio),
        embed_dim=int(model.embed_dim),
        audio_rate_hz=int(model.audio_rate),
        audio_window_s=float(model.audio_seconds),
        audio_samples=wave_len,
    )


def _spec(shape, batch) -> dict:
    return {"shape": ["batch" if batch is None else batch, *shape[1:]], "dtype": "float32"}


def _restore_unused_inputs(proto, input_names, args, batch) -> None:
    """The tracer drops inputs the output does not depend on (``frame`` for
    flow_only); put them back, in order, so every frame graph has the same inputs."""
    from onnx import TensorProto, helper

    present = {i.name: i for i in proto.graph.input}
    if all(n in present for n in input_names):
        return
    rebuilt = []
    for name, arg in zip(input_names, args):
        if name in present:
            rebuilt.append(present[name])
        else:
            dims = ["batch" if (batch is None and d == 0) else s for d, s in enumerate(arg.shape)]
            rebuilt.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
    extra = [i for i in proto.graph.input if i.name not in input_names]  # initialisers listed as inputs
    del proto.graph.input[:]
    proto.graph.input.extend(rebuilt + extra)


def _export_one(module, args, path: Path, input_names, output_names, batch, opset, meta) -> None:
    import onnx

    dynamic_axes = None
    if batch is None:
        dynamic_axes = {n: {0: "batch"} for n in (*input_names, *output_names)}
    # Wrappers are fresh modules (training=True); the exporter restores the
    # wrapper's mode recursively afterwards, which would leave the wrapped model
    # in training mode (BatchNorm updating its running statistics). Keep eval.
    module.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), module.model.tracing(), torch.no_grad():
        # The legacy exporter warns that it is deprecated, and the models' Python
        # shape checks raise TracerWarnings; dynamic batch is verified by the tests.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            buf,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    module.eval()
    proto = onnx.load_from_string(buf.getvalue())
    _restore_unused_inputs(proto, input_names, args, batch)
    write_props(proto, meta)
    proto.producer_name = "flowgrad.export.onnx"
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(proto.SerializeToString())


def export_onnx(model, out_dir_or_prefix, *, opset: int = 17, batch="dynamic", size_hw=(224, 224),
                int8_video: str | Path | None = None, calibration_frames: int = 16, doa: bool = False) -> list[Path]:
    """Export ``model``'s frame graph (and audio graph when it uses audio) to ONNX.

    Args:
        model: a registry localiser (``flowgrad.models.create`` / ``checkpoint.load``).
        out_dir_or_prefix: an existing directory (files are named after the
            model: ``<dir>/<name>.frame.onnx``) or a path prefix
            (``<prefix>.frame.onnx``, ``<prefix>.audio.onnx``).
        opset: ONNX opset (17 default; the legacy exporter supports up to 20).
        batch: ``"dynamic"`` (a symbolic ``batch`` axis on every input and
            output) or a fixed positive int.
        size_hw: (H, W) in pixels of the frame / flow inputs and of the heatmap. Models are
            defined at 224x224; another size exports a copy of the model with
            that input and map size (fully convolutional nets follow; the
            weights were trained at 224x224), with a warning.
        int8_video: when given, the frame graph is written int8-quantised
            (``export.quantize``; metadata ``precision``), calibrated on
            ``calibration_frames`` frames of this video and their flow, taken
            at the exported input size.
        doa: record in the frame graph's metadata (``doa``) that the model was named
            ``MODEL+doa``: its maps are to be fused with the direction heard.

    Returns:
        The written paths, frame graph first.
    """
    fixed = _parse_batch(batch)
    size_hw = tuple(int(s) for s in size_hw)
    if len(size_hw) != 2 or min(size_hw) < MIN_SIDE:
        raise ValueError(f"size_hw must be (H, W) with both >= {MIN_SIDE}, got {size_hw}")
    name = getattr(model, "name", "") or type(model).__name__
    model = model.eval()
    if size_hw != tuple(model.input_size):
        warnings.warn(f"{name}: exporting at {format_wxh(size_hw)}; the model was defined at "
                      f"{format_wxh(model.input_size)}", stacklevel=2)
        model = copy.deepcopy(model)
        model.input_size = size_hw
        model.map_size = size_hw

    feeds = None
    if int8_video is not None:  # before anything is written: a bad video must leave no half export
        from .quantize import calibration_feeds

        feeds = calibration_feeds(model, int8_video, calibration_frames)

    out = Path(out_dir_or_prefix)
    prefix = out / name if out.is_dir() else out
    b = 2 if fixed is None else fixed  # trace at 2 so nothing specific to 1 gets baked in
    h, w = size_hw
    frame = torch.rand(b, 3, h, w)
    flow = torch.randn(b, 2, h, w)
    written = []

    frame_path = prefix.with_name(prefix.name + ".frame.onnx")
    if model.uses_audio:
        args = (frame, flow, torch.randn(b, model.embed_dim))
        in_names = ("frame", "flow", "audio_embedding")
    else:
        args = (frame, flow)
        in_names = ("frame", "flow")
    inputs = {n: _spec(a.shape, fixed) for n, a in zip(in_names, args)}
    outputs = {"heatmap": _spec((b, h, w), fixed), "score": _spec((b,), fixed)}
    meta = dataclasses.replace(_metadata(model, "frame", inputs, outputs, fixed, size_hw, None),
                               score_calibrated=bool(model.score_is_calibrated), doa=bool(doa))
    _export_one(FrameGraph(model), args, frame_path, in_names, tuple(outputs), fixed, opset, meta)
    if feeds is not None:
        from .quantize import quantize_frame_graph

        if quantize_frame_graph(frame_path, frame_path, feeds, Path(int8_video).name) is None:
            warnings.warn(f"{name}: the frame graph has no convolutions to quantise; kept in float32", stacklevel=2)
    written.append(frame_path)

    if model.uses_audio:
        audio_path = prefix.with_name(prefix.name + ".audio.onnx")
        n = int(round(model.audio_rate * model.audio_seconds))
        wave = torch.randn(b, n) * 0.1
        inputs = {"wave": _spec(wave.shape, fixed)}
        outputs = {"embedding": _spec((b, model.embed_dim), fixed)}
        meta = _metadata(model, "audio", inputs, outputs, fixed, size_hw, n)
        _export_one(AudioGraph(model), (wave,), audio_path, ("wave",), ("embedding",), fixed, opset, meta)
        written.append(audio_path)
    return written


# --------------------------------------------------------------------------- loading


def read_metadata(path) -> dict:
    """The ``metadata_props`` of an exported file, JSON-decoded (:mod:`flowgrad.onnx_meta`).
    Raises OnnxFileError naming the file."""
    return read_graph(path)[1].decoded()


def load_session(path, providers=("CPUExecutionProvider",)):
    """Open an exported graph with onnxruntime.

    Returns ``(session, metadata)``, the metadata JSON-decoded. Raises OnnxFileError
    naming the file when it is missing, truncated, corrupt or not a flowgrad export.
    """
    import onnxruntime as ort

    data, meta = read_graph(path)
    try:
        session = ort.InferenceSession(data, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise OnnxFileError(f"{path}: onnxruntime cannot load it: {str(exc).splitlines()[0][:200]}") from None
    return session, meta.decoded()


def resolve_model(spec: str, allow_untrained: bool, prog: str) -> tuple[nn.Module, Path]:
    """The model a MODEL argument names and the default output prefix.

    ``spec``: a checkpoint path; a bare file name of a shipped checkpoint
    (``flowgrad_en.ckpt``) when no such file is in the working directory (a
    note goes to stderr); or a registry name (untrained weights: refused
    without ``allow_untrained`` for models with weights, warned about on
    stderr otherwise). The default prefix is ``spec`` without its suffix, in
    the working directory for a shipped checkpoint.
    Raises CheckpointError (one line) when the model cannot be had.
    """
    from flowgrad import checkpoint

    path = Path(spec)
    shipped = {p.name: p for p in checkpoint.shipped()}
    if not path.exists() and path.name == spec and spec in shipped:
        print(f"{prog}: no {spec} in the working directory; using the shipped "
              f"{checkpoint.display_path(shipped[spec])}", file=sys.stderr)
        return checkpoint.load(shipped[spec]), path.with_suffix("")
    model, trained = checkpoint.load_or_create(spec, allow_untrained=allow_untrained)
    if not trained and model.has_weights:
        print(f"{prog}: warning: exporting random, untrained weights of {spec!r} (--untrained)", file=sys.stderr)
    return model, (path.with_suffix("") if trained else path)


def _parse_opset(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 7 <= value <= 20:
        raise argparse.ArgumentTypeError(f"opset must be an integer from 7 to 20 (the TorchScript exporter's), "
                                         f"got {text!r}")
    return value


def _parse_batch_arg(text: str):
    if text == "dynamic":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"batch must be 'dynamic' or a positive integer, got {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.onnx",
        description="Export a flowgrad localiser to ONNX: <OUT>.frame.onnx (frame, flow, "
        "audio_embedding -> heatmap, score) and, for models that use audio, <OUT>.audio.onnx "
        "(wave at the model's rate, fixed window -> embedding).",
    )
    parser.add_argument("model", metavar="MODEL",
                        help="a flowgrad checkpoint (.ckpt written by flowgrad.checkpoint.save; a bare name of a "
                        "shipped one such as flowgrad_en.ckpt is found in assets/models/), or a registry "
                        f"name ({', '.join(fg_models.names())}) with --untrained to export random weights; "
                        "MODEL+doa records that its maps are to be fused with the direction heard")
    parser.add_argument("-o", "--out", metavar="OUT",
                        help="output prefix or existing directory (default: the checkpoint path without its "
                        "suffix, or the registry name in the current directory)")
    parser.add_argument("--opset", type=_parse_opset, default=17, metavar="N",
                        help="ONNX opset version, 7 to 20 (default 17)")
    parser.add_argument("--batch", type=_parse_batch_arg, default="dynamic", metavar="dynamic|N",
                        help="'dynamic' for a symbolic batch axis (default) or a fixed batch size N")
    parser.add_argument("--size", type=wxh_arg(MIN_SIDE), default=(224, 224), metavar="WxH", dest="size_hw",
                        help="frame/flow input and heatmap size, width x height in pixels like every size option "
                        "(before this release it read height x width), e.g. 256x192 for a 192-row, 256-column "
                        "input; default 224x224, the size the models are defined at")
    parser.add_argument("--int8", action="store_true",
                        help="quantise the frame graph's convolutions to int8 for onnxruntime on CPUs (about 3x "
                        "faster on AVX-512 VNNI; not for TensorRT); the default output prefix gains '.int8'")
    parser.add_argument("--calibrate", type=Path, default=None, metavar="VIDEO",
                        help="--int8: video whose frames and flow calibrate the activation ranges "
                        "(default: the bundled street clip, assets/demo/street.mp4)")
    parser.add_argument("--calibration-frames", type=int, default=16, metavar="N",
                        help="--int8: frames taken evenly from the video (default 16)")
    parser.add_argument("--untrained", action="store_true",
                        help="allow a registry name of a model with weights: exports random, untrained weights")
    return parser


def model_spec(text: str, prog: str, doa_recorded: bool = True) -> ModelSpec:
    """The MODEL argument of an export command as a flowgrad.spec ModelSpec; SpecError (one
    line) for ``+memory`` / ``+nomemory`` (chosen where the export runs), and for ``+doa``
    when the export format has no metadata to record it in (``doa_recorded`` False)."""
    spec = parse_spec(text)
    if spec.memory is not None:
        raise SpecError(f"{text}: {prog} does not record the motion memory; name it where the export runs "
                        f"(run_live --model PREFIX+memory), and export {spec.base}"
                        f"{'+doa' * spec.doa}")
    if spec.doa and not doa_recorded:
        raise SpecError(f"{text}: {prog} writes no metadata to record +doa in; export {spec.base} and name it "
                        "PREFIX+doa where it runs, or export ONNX with python -m export.onnx "
                        f"{spec.base}+doa")
    return spec


def main(argv=None) -> int:
    args = _build_parser().parse_args(argv)
    target = args.model
    try:
        spec = model_spec(target, "export.onnx")
        model, default_out = resolve_model(spec.base, args.untrained, "export.onnx")
    except InputError as exc:  # a checkpoint that cannot be loaded, a name without --untrained, a bad suffix
        print(f"export.onnx: {one_line(exc)}", file=sys.stderr)
        return 2
    video = None
    if args.int8:
        default_out = default_out.with_name(default_out.name + ".int8")
        video = args.calibrate or DEMO_CLIP
    try:
        written = export_onnx(model, args.out or default_out, opset=args.opset, batch=args.batch, size_hw=args.size_hw,
                              int8_video=video, calibration_frames=args.calibration_frames, doa=spec.doa)
    except (InputError, OSError) as exc:  # e.g. a calibration video that cannot be read, an unwritable --out
        print(f"{target}: export failed: {one_line(exc)}", file=sys.stderr)
        return 2
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
