"""The metadata of an exported ONNX graph: one schema, written by ``export.onnx`` and read by
:mod:`flowgrad.engine`.

Every export is two graphs sharing a prefix, ``<prefix>.frame.onnx`` and (for
models that use audio) ``<prefix>.audio.onnx``. Each carries ONNX
``metadata_props`` whose values are JSON strings, described by :class:`GraphMeta`:

=====================  ===============================================================
format, version        "flowgrad-onnx", 1
model, config          registry name and ``asdict(model.config)``
role                   "frame" or "audio"
inputs, outputs        name -> {"shape": ["batch" or N, ...], "dtype": "float32"}
batch                  "dynamic" or the fixed batch size
input_size             [height, width] of the frame / flow inputs, pixels
uses_audio, embed_dim  whether the model uses audio; width of the audio embedding
audio_rate_hz          sample rate of the audio graph's wave
audio_window_s         the audio window, seconds
audio_samples          audio graph only: samples of its fixed-length wave
precision, calibration optional: "int8" and what calibrated it (``export.quantize``)
score_calibrated       frame graph, optional: whether its ``score`` output (the sounding
                       score, (batch,)) is calibrated; absent in exports from before
                       the score, whose only output is ``heatmap``
doa                    frame graph, optional: exported as ``MODEL+doa`` (flowgrad.spec): the
                       map is to be fused with the direction heard (the engine's
                       ``wants_doa``); absent in exports from before it: false
frame_normalisation    "RGB in [0,1], colour order RGB" (documentation for readers)
flow_units             "pixels of the full camera frame"
=====================  ===============================================================

:func:`read_graph` refuses, in one line naming the file and the fix
(:class:`OnnxFileError`), a missing, truncated, corrupt or foreign file, a newer
format version, an entry that is missing or of the wrong type, and the wrong role;
:func:`check_pair` refuses a frame and audio graph that do not belong together.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from .errors import InputError, one_line

__all__ = ["FORMAT", "VERSION", "ROLES", "GraphMeta", "OnnxFileError", "read_graph", "check_pair", "write_props",
           "REEXPORT"]

FORMAT = "flowgrad-onnx"
VERSION = 1
ROLES = ("frame", "audio")
FRAME_NOTE = "RGB in [0,1], colour order RGB"
FLOW_UNITS = "pixels of the full camera frame"
REEXPORT = "re-export it with `python -m export.onnx MODEL.ckpt -o PREFIX`"

_INT_MAX = 2**31  # sizes, rates and counts; far larger values are edits, not exports


class OnnxFileError(InputError):
    """An exported ONNX file cannot be used; the message is one line: the file, the cause, the fix."""


def _is_int(value, low: int) -> bool:
    return type(value) is int and low <= value < _INT_MAX


def _is_positive_number(value) -> bool:
    return type(value) in (int, float) and 0 < value < _INT_MAX  # False for NaN and infinity


def _is_size(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_int(v, 1) for v in value)


def _heatmap_shape_ok(value) -> bool:
    shape = value.get("heatmap", {}).get("shape") if isinstance(value.get("heatmap"), dict) else None
    return (isinstance(shape, list) and len(shape) == 3 and (shape[0] == "batch" or _is_int(shape[0], 1))
            and _is_size(shape[1:]))


# entry -> (check of its decoded JSON value, what it must be)
_REQUIRED = {
    "model": (lambda v: isinstance(v, str) and v != "", "a model name"),
    "role": (lambda v: v in ROLES, "'frame' or 'audio'"),
    "config": (lambda v: isinstance(v, dict), "a JSON object"),
    "inputs": (lambda v: isinstance(v, dict), "a JSON object"),
    "outputs": (lambda v: isinstance(v, dict), "a JSON object"),
    "batch": (lambda v: v == "dynamic" or _is_int(v, 1), "'dynamic' or a positive integer"),
    "input_size": (_is_size, "[height, width] in positive integers"),
    "uses_audio": (lambda v: type(v) is bool, "true or false"),
    "embed_dim": (lambda v: _is_int(v, 0), "an integer >= 0"),
    "audio_rate_hz": (lambda v: _is_int(v, 1), "a positive integer"),
    "audio_window_s": (_is_positive_number, "a positive number of seconds"),
}
_BY_ROLE = {
    "frame": {"outputs": (_heatmap_shape_ok, "a JSON object with heatmap.shape [batch, height, width]")},
    "audio": {"audio_samples": (lambda v: _is_int(v, 1), "a positive integer")},
}
_OPTIONAL = {
    "precision": (lambda v: isinstance(v, str), "a string such as 'int8'"),
    "calibration": (lambda v: isinstance(v, str), "a string"),
    "score_calibrated": (lambda v: type(v) is bool, "true or false"),
    "doa": (lambda v: type(v) is bool, "true or false"),
}


@dataclass(frozen=True)
class GraphMeta:
    """What one exported graph says about itself (see the module docstring for each entry).

    ``input_size`` is (height, width); ``batch`` is "dynamic" or the fixed batch size.
    """

    model: str
    config: dict
    role: str
    inputs: dict
    outputs: dict
    batch: Union[int, str]
    input_size: tuple[int, int]
    uses_audio: bool
    embed_dim: int
    audio_rate_hz: int
    audio_window_s: float
    audio_samples: Optional[int] = None
    precision: Optional[str] = None
    calibration: Optional[str] = None
    score_calibrated: Optional[bool] = None
    doa: Optional[bool] = None
    frame_normalisation: str = FRAME_NOTE
    flow_units: str = FLOW_UNITS

    @property
    def map_size(self) -> tuple[int, int]:
        """(height, width) of the frame graph's heatmap."""
        return tuple(self.outputs["heatmap"]["shape"][1:])

    def graph_inputs(self) -> dict[str, list[int]]:
        """The inputs the graph must take, name -> sizes after the batch axis."""
        if self.role == "audio":
            return {"wave": [self.audio_samples]}
        wanted = {"frame": [3, *self.input_size], "flow": [2, *self.input_size]}
        if self.uses_audio:
            wanted["audio_embedding"] = [self.embed_dim]
        return wanted

    def decoded(self) -> dict[str, Any]:
        """Every entry as its JSON value (``format`` and ``version`` included, unset optional ones left out)."""
        values = {"format": FORMAT, "version": VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                values[f.name] = list(value) if isinstance(value, tuple) else value
        return values

    def props(self) -> dict[str, str]:
        """The ONNX ``metadata_props`` to write: entry -> JSON string."""
        return {key: json.dumps(value) for key, value in self.decoded().items()}

    @classmethod
    def parse(cls, props: Mapping[str, str], path) -> "GraphMeta":
        """Validate decoded-or-raw ``metadata_props`` of the file ``path``.

        Raises OnnxFileError naming the file and the entry for a foreign file, a
        newer version, or an entry that is missing or of the wrong type.
        """
        meta = {}
        for key, text in props.items():
            try:
                meta[key] = json.loads(text)
            except json.JSONDecodeError:
                meta[key] = text
        if meta.get("format") != FORMAT:
            raise OnnxFileError(f"{path}: not a flowgrad ONNX export (metadata format is {meta.get('format')!r}); "
                                f"export the model with `python -m export.onnx`")
        version = meta.get("version")
        if not _is_int(version, 1):
            raise OnnxFileError(f"{path}: metadata 'version' must be a positive integer, got "
                                f"{one_line(repr(version))[:80]}; {REEXPORT}")
        if version > VERSION:
            raise OnnxFileError(f"{path}: flowgrad-onnx version {version!r} is newer than this reader "
                                f"({VERSION}); upgrade flowgrad")
        role = meta.get("role")
        rules = {**_REQUIRED, **_BY_ROLE.get(role if isinstance(role, str) else "", {})}
        for key, (ok, what) in rules.items():
            if key not in meta:
                raise OnnxFileError(f"{path}: metadata has no {key!r} entry (not written by export.onnx, or "
                                    f"edited); {REEXPORT}")
            if not ok(meta[key]):
                raise OnnxFileError(f"{path}: metadata {key!r} must be {what}, got "
                                    f"{one_line(repr(meta[key]))[:80]}; {REEXPORT}")
        for key, (ok, what) in _OPTIONAL.items():
            if key in meta and not ok(meta[key]):
                raise OnnxFileError(f"{path}: metadata {key!r} must be {what}, got "
                                    f"{one_line(repr(meta[key]))[:80]}; {REEXPORT}")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in meta.items() if k in known}
        values["input_size"] = tuple(values["input_size"])
        values["audio_window_s"] = float(values["audio_window_s"])
        return cls(**values)


def write_props(proto, meta: GraphMeta) -> None:
    """Replace the ``metadata_props`` of the ONNX ModelProto ``proto`` with ``meta``'s."""
    del proto.metadata_props[:]
    for key, value in meta.props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def read_graph(path, role: Optional[str] = None) -> tuple[bytes, GraphMeta]:
    """(serialised model bytes, its metadata) of one exported graph.

    role: "frame" or "audio" to require that graph, None for either.
    Raises OnnxFileError naming the file for a missing, truncated, corrupt or
    foreign file, a newer format version, metadata that is missing or of the
    wrong type (e.g. ``embed_dim`` a dict, ``input_size`` "abc"), or the wrong role.
    """
    path = Path(path)
    import onnx
    from google.protobuf.message import DecodeError

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OnnxFileError(f"{path}: no such file (the {role or 'exported'} graph); {REEXPORT}") from None
    except OSError as exc:
        raise OnnxFileError(f"{path}: cannot read it ({exc.strerror or exc}); check the path and permissions") from None
    try:
        proto = onnx.load_from_string(data)
        onnx.checker.check_model(proto)
    except (DecodeError, onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        msg = one_line(exc) or type(exc).__name__
        raise OnnxFileError(f"{path}: not a valid ONNX model (truncated or corrupt?): {msg[:200]}; "
                            f"{REEXPORT}") from None
    if not proto.graph.node:
        raise OnnxFileError(f"{path}: not a valid ONNX model (empty graph; truncated or corrupt?); {REEXPORT}")
    meta = GraphMeta.parse({p.key: p.value for p in proto.metadata_props}, path)
    if role is not None and meta.role != role:
        raise OnnxFileError(f"{path}: holds the {meta.role!r} graph, expected the {role!r} graph; "
                            f"name the files <prefix>.frame.onnx / <prefix>.audio.onnx as export.onnx writes them")
    return data, meta


def check_pair(frame: GraphMeta, audio: GraphMeta, frame_path, audio_path) -> None:
    """Raise OnnxFileError unless the audio graph was exported with the frame graph (same model
    and config, and a wave of round(audio_rate_hz * audio_window_s) samples)."""
    if audio.model != frame.model or audio.config != frame.config:
        raise OnnxFileError(f"{audio_path}: exported from a different model/config than {Path(frame_path).name}; "
                            "re-export both files from the same checkpoint")
    if audio.audio_samples != round(frame.audio_rate_hz * frame.audio_window_s):
        raise OnnxFileError(f"{frame_path}: metadata audio_rate_hz {frame.audio_rate_hz} x audio_window_s "
                            f"{frame.audio_window_s:g} does not give the audio graph's {audio.audio_samples} "
                            f"samples; re-export both files with `python -m export.onnx MODEL.ckpt -o PREFIX`")
