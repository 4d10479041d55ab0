"""One inference interface over every way a localiser can be stored.

>>> from flowgrad import engine
>>> eng = engine.open("runs/flowgrad_en.ckpt")           # torch, from a checkpoint
>>> eng = engine.open("export/flowgrad_en.frame.onnx")   # onnxruntime (finds the .audio.onnx sibling)
>>> eng = engine.open("export/flowgrad_en")              # the common prefix of the two ONNX files
>>> eng = engine.open("flow_only")                       # a registry name: a model without weights
>>> eng = engine.open("rcgrad", allow_untrained=True)    # random, untrained weights: only when asked for
>>> emb = eng.embed_audio(wave)                          # (B, T) float32 -> (B, embed_dim)
>>> maps = eng.heatmaps(frame, flow, emb)                # -> (B, h, w) float32 in [0, 1]

``open`` (alias ``open_engine``) returns an :class:`Engine`. Every engine has the
same attributes (``name``, ``input_size``, ``map_size``, ``audio_rate``,
``audio_seconds``, ``uses_audio``, ``embed_dim``, ``backend``, ``source``: the
file it was loaded from, ``untrained``: True for random weights) and the same two
numpy methods, following :mod:`flowgrad.models.base`:

* ``embed_audio(wave)``: wave (B, T) float32 mono in [-1, 1] at ``audio_rate``
  Hz -> (B, embed_dim) float32. The torch backend accepts any T. The ONNX audio
  graph was exported for exactly ``T = round(audio_rate * audio_seconds)``
  samples (``samples``); a longer wave is cropped to its NEWEST (last)
  ``samples`` samples and a shorter one is left-padded with zeros (silence
  before the oldest sample), so the newest sample is always last. Models
  without audio (``uses_audio`` False) return a (B, 0) array.
* ``heatmaps(frame, flow, embedding)``: frame (B, 3, H, W) float32 RGB in
  [0, 1], flow (B, 2, H, W) float32 in pixels of the full camera frame,
  embedding (B, embed_dim) from ``embed_audio`` -> (B, *map_size) float32.

Backends: ``"torch"`` (``.ckpt`` via :func:`flowgrad.checkpoint.load`, or a
registry name via :func:`flowgrad.checkpoint.create_registered`: refused for a
model with weights unless ``allow_untrained=True``; ``device`` "cpu" or "cuda";
run under ``torch.inference_mode``) and ``"onnxruntime"`` (``.onnx`` files
written by ``export.onnx``; CPUExecutionProvider, or CUDAExecutionProvider with
``device="cuda"``). TensorRT artefacts (``.ep``, ``.ts``, ``.trt``) are not
opened here: they need torch-tensorrt and a CUDA GPU.

Every problem with the path, its metadata or the inputs raises ``ValueError``
with one line naming the file (or model) and the fix.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["Engine", "TorchEngine", "OnnxEngine", "open", "open_engine", "BACKENDS"]

BACKENDS = ("torch", "onnxruntime")
ONNX_FORMAT = "flowgrad-onnx"
ONNX_VERSION = 1
_TRT_SUFFIXES = (".ep", ".ts", ".trt", ".engine", ".plan")
_TRT_HINT = ("TensorRT engines need torch-tensorrt and a CUDA GPU (install with `pip install torch-tensorrt`) "
             "and are not opened by flowgrad.engine; open the .ckpt or the .onnx export of the same model instead")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class Engine:
    """Common interface; see the module docstring. Subclasses set the attributes
    and implement ``_embed`` / ``_heatmaps`` on validated float32 arrays."""

    backend: str = ""
    name: str = ""
    input_size: tuple[int, int] = (224, 224)
    map_size: tuple[int, int] = (224, 224)
    audio_rate: int = 16000
    audio_seconds: float = 1.0
    uses_audio: bool = True
    embed_dim: int = 0
    source: str = ""
    untrained: bool = False

    @property
    def samples(self) -> int:
        """Samples in the audio window the model was defined on: round(rate * seconds)."""
        return int(round(self.audio_rate * self.audio_seconds))

    # ----------------------------------------------------------------- public API

    def embed_audio(self, wave) -> np.ndarray:
        """(B, T) float32 wave at ``audio_rate`` -> (B, embed_dim) float32."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 2 or wave.shape[0] < 1 or wave.shape[1] < 1:
            raise ValueError(f"{self._who()}: wave must be a (B, T) float32 array with B, T >= 1, "
                             f"got shape {wave.shape}")
        if not self.uses_audio:
            return np.zeros((wave.shape[0], 0), np.float32)
        return np.ascontiguousarray(self._embed(np.ascontiguousarray(wave)), dtype=np.float32)

    def heatmaps(self, frame, flow, embedding=None) -> np.ndarray:
        """frame (B,3,H,W) RGB [0,1], flow (B,2,H,W) full-frame pixels, embedding (B, D)
        -> (B, *map_size) float32 in [0, 1]. ``embedding`` may be None for models without audio."""
        frame = np.asarray(frame, dtype=np.float32)
        flow = np.asarray(flow, dtype=np.float32)
        b = frame.shape[0] if frame.ndim == 4 else None
        if embedding is None:
            if self.uses_audio:
                raise ValueError(f"{self._who()}: an audio embedding is required (from embed_audio)")
            embedding = np.zeros((b or 0, 0), np.float32)
        embedding = np.asarray(embedding, dtype=np.float32)
        h, w = self.input_size
        for what, arr, shape in (("frame", frame, (b, 3, h, w)), ("flow", flow, (b, 2, h, w)),
                                 ("embedding", embedding, (b, self.embed_dim))):
            if b is None or b < 1 or tuple(arr.shape) != shape:
                want = tuple("B" if s is None else s for s in (None, *shape[1:]))
                raise ValueError(f"{self._who()}: {what} must have shape {want} with the same B >= 1, "
                                 f"got {tuple(arr.shape)}")
        out = self._heatmaps(np.ascontiguousarray(frame), np.ascontiguousarray(flow),
                             np.ascontiguousarray(embedding))
        return np.ascontiguousarray(out, dtype=np.float32)

    def __call__(self, frame, flow, wave) -> np.ndarray:
        """Both paths at once: ``heatmaps(frame, flow, embed_audio(wave))``."""
        return self.heatmaps(frame, flow, self.embed_audio(wave))

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r} backend={self.backend} device={getattr(self, 'device', '?')} "
                f"source={self.source!r}>")

    # ----------------------------------------------------------------- internals

    def _who(self) -> str:
        return f"{self.source or self.name}"

    def _embed(self, wave: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _heatmaps(self, frame, flow, emb) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


# --------------------------------------------------------------------------- torch


class TorchEngine(Engine):
    """A registry model run in torch under ``inference_mode``.

    Args:
        model: a :class:`flowgrad.models.Localiser` (``models.create`` / ``checkpoint.load``);
            it is put in eval mode and moved to ``device`` / ``dtype`` in place.
        device: "cpu", "cuda" or "cuda:N".
        dtype: torch dtype the model and inputs run in (float32; float16 on CUDA
            for speed); outputs are always float32 numpy.
        source: what the model was loaded from (for messages).
        untrained: the weights are random (a registry name), not trained.
    """

    backend = "torch"

    def __init__(self, model, device="cpu", *, dtype=None, source: str = "", untrained: bool = False):
        import torch

        requested = device
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError):
            device = None
        if device is None or device.type not in ("cpu", "cuda"):
            raise ValueError(f"{source or model.name}: device must be 'cpu' or 'cuda', got {str(requested)!r}")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{source or model.name}: device 'cuda' requested but torch has no CUDA device "
                             f"(torch {torch.__version__}); use device='cpu' or install a CUDA build of torch")
        self.dtype = dtype or torch.float32
        self.model = model.eval().to(device=device, dtype=self.dtype)
        self.device = str(device)
        self.source = source
        self.untrained = bool(untrained)
        self.name = model.name
        self.input_size = tuple(int(s) for s in model.input_size)
        self.map_size = tuple(int(s) for s in model.map_size)
        self.audio_rate = int(model.audio_rate)
        self.audio_seconds = float(model.audio_seconds)
        self.uses_audio = bool(model.uses_audio)
        self.embed_dim = int(model.embed_dim)
        self._torch = torch
        self.forward = self.model  # replaceable (e.g. by torch.compile(model)) by benchmarks

    def _tensor(self, arr):
        return self._torch.from_numpy(arr).to(device=self.device, dtype=self.dtype)

    def _numpy(self, t):
        return t.float().cpu().numpy()

    def _embed(self, wave):
        with self._torch.inference_mode():
            return self._numpy(self.model.embed_audio(self._tensor(wave)))

    def _heatmaps(self, frame, flow, emb):
        with self._torch.inference_mode():
            return self._numpy(self.forward(self._tensor(frame), self._tensor(flow), self._tensor(emb)))


# --------------------------------------------------------------------------- onnxruntime


_META_INT_MAX = 2**31  # sizes, rates and counts; far larger values are edits, not exports


def _is_int(value, low: int) -> bool:
    return type(value) is int and low <= value < _META_INT_MAX


def _is_positive_number(value) -> bool:
    return type(value) in (int, float) and 0 < value < _META_INT_MAX  # False for NaN and infinity


def _is_size(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_int(v, 1) for v in value)


def _heatmap_shape_ok(value) -> bool:
    shape = value.get("heatmap", {}).get("shape") if isinstance(value.get("heatmap"), dict) else None
    return (isinstance(shape, list) and len(shape) == 3 and (shape[0] == "batch" or _is_int(shape[0], 1))
            and _is_size(shape[1:]))


# metadata key -> (check, what it must be); every key is written by export.onnx
_META_SCHEMA = {
    "model": (lambda v: isinstance(v, str) and v != "", "a model name"),
    "role": (lambda v: v in ("frame", "audio"), "'frame' or 'audio'"),
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
_META_BY_ROLE = {
    "frame": {"outputs": (_heatmap_shape_ok, "a JSON object with heatmap.shape [batch, height, width]")},
    "audio": {"audio_samples": (lambda v: _is_int(v, 1), "a positive integer")},
}
_META_OPTIONAL = {"precision": (lambda v: isinstance(v, str), "a string such as 'int8'")}


def _check_metadata(path: Path, meta: dict, fix: str) -> None:
    """Raise ValueError naming the file and the key for metadata that is missing or of the wrong type."""
    role = meta.get("role")
    rules = {**_META_SCHEMA, **_META_BY_ROLE.get(role if isinstance(role, str) else "", {})}
    for key, (ok, what) in rules.items():
        if key not in meta:
            raise ValueError(f"{path}: metadata has no {key!r} entry (not written by export.onnx, or edited); {fix}")
        if not ok(meta[key]):
            raise ValueError(f"{path}: metadata {key!r} must be {what}, got {_one_line(repr(meta[key]))[:80]}; {fix}")
    for key, (ok, what) in _META_OPTIONAL.items():
        if key in meta and not ok(meta[key]):
            raise ValueError(f"{path}: metadata {key!r} must be {what}, got {_one_line(repr(meta[key]))[:80]}; {fix}")


def read_onnx(path, role: str | None = None) -> tuple[bytes, dict]:
    """(serialised model bytes, decoded metadata) of one exported graph.

    role: "frame" or "audio" to require that graph, None for either.
    Raises ValueError naming the file for a missing, truncated, corrupt or
    foreign file, a newer format version, metadata that is missing or of the
    wrong type (e.g. ``embed_dim`` a dict, ``input_size`` "abc"), or the wrong role.
    """
    path = Path(path)
    import onnx
    from google.protobuf.message import DecodeError

    fix = "re-export it with `python -m export.onnx MODEL.ckpt -o PREFIX`"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file (the {role or 'exported'} graph); {fix}") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror or exc}); check the path and permissions") from None
    try:
        proto = onnx.load_from_string(data)
        onnx.checker.check_model(proto)
    except (DecodeError, onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        msg = _one_line(exc) or type(exc).__name__
        raise ValueError(f"{path}: not a valid ONNX model (truncated or corrupt?): {msg[:200]}; {fix}") from None
    if not proto.graph.node:
        raise ValueError(f"{path}: not a valid ONNX model (empty graph; truncated or corrupt?); {fix}")
    meta = {}
    for entry in proto.metadata_props:
        try:
            meta[entry.key] = json.loads(entry.value)
        except json.JSONDecodeError:
            meta[entry.key] = entry.value
    if meta.get("format") != ONNX_FORMAT:
        raise ValueError(f"{path}: not a flowgrad ONNX export (metadata format is {meta.get('format')!r}); "
                         f"export the model with `python -m export.onnx`")
    version = meta.get("version")
    if not _is_int(version, 1):
        raise ValueError(f"{path}: metadata 'version' must be a positive integer, got "
                         f"{_one_line(repr(version))[:80]}; {fix}")
    if version > ONNX_VERSION:
        raise ValueError(f"{path}: flowgrad-onnx version {version!r} is newer than this reader "
                         f"({ONNX_VERSION}); upgrade flowgrad")
    _check_metadata(path, meta, fix)
    if role is not None and meta.get("role") != role:
        raise ValueError(f"{path}: holds the {meta.get('role')!r} graph, expected the {role!r} graph; "
                         f"name the files <prefix>.frame.onnx / <prefix>.audio.onnx as export.onnx writes them")
    return data, meta


def _providers(device: str, who: str) -> list[str]:
    import onnxruntime as ort

    kind = str(device).split(":")[0]
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind != "cuda":
        raise ValueError(f"{who}: device must be 'cpu' or 'cuda', got {device!r}")
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise ValueError(
            f"{who}: device='cuda' needs onnxruntime's CUDAExecutionProvider, not available in onnxruntime "
            f"{ort.__version__} (providers: {', '.join(available)}); install onnxruntime-gpu "
            "(`pip uninstall onnxruntime && pip install onnxruntime-gpu`) on a machine with a CUDA GPU, "
            "or use device='cpu'")
    index = int(str(device).split(":")[1]) if ":" in str(device) else 0
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


def _session(data: bytes, path: Path, providers, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    try:
        session = ort.InferenceSession(data, sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ValueError(f"{path}: onnxruntime cannot load it: {_one_line(exc)[:200]}; "
                         "re-export it with `python -m export.onnx`") from None
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if wanted not in session.get_providers():
        raise ValueError(f"{path}: onnxruntime did not enable {wanted} (got {session.get_providers()}); "
                         "check the CUDA / cuDNN libraries onnxruntime-gpu needs, or use device='cpu'")
    return session


def _check_graph_inputs(path: Path, session, wanted: dict[str, list[int]]) -> None:
    """Raise ValueError when the graph's inputs (names, and sizes after the batch axis)
    differ from what its metadata describes (metadata edited after export)."""
    got = {i.name: list(i.shape[1:]) for i in session.get_inputs()}
    if got != wanted:
        raise ValueError(f"{path}: the metadata describes inputs {wanted} (after the batch axis) but the graph "
                         f"takes {got}; re-export it with `python -m export.onnx MODEL.ckpt -o PREFIX`")


class OnnxEngine(Engine):
    """The frame graph (and audio graph, for models that use audio) of an
    ``export.onnx`` export run in onnxruntime.

    Args:
        frame_path: ``<prefix>.frame.onnx``.
        audio_path: ``<prefix>.audio.onnx`` (required when the model uses audio).
        device: "cpu" (CPUExecutionProvider) or "cuda" (CUDAExecutionProvider;
            needs onnxruntime-gpu).
        threads: intra-op threads for onnxruntime (None: its default).
    """

    backend = "onnxruntime"

    def __init__(self, frame_path, audio_path=None, device="cpu", *, threads: int | None = None):
        frame_path = Path(frame_path)
        data, meta = read_onnx(frame_path, "frame")
        self.source = str(frame_path)
        self.device = str(device)
        self.meta = meta
        providers = _providers(device, str(frame_path))
        # read_onnx checked every key and its type
        self.name = meta["model"]
        self.input_size = tuple(meta["input_size"])
        self.map_size = tuple(meta["outputs"]["heatmap"]["shape"][1:])
        self.uses_audio = meta["uses_audio"]
        self.embed_dim = meta["embed_dim"]
        self.audio_rate = meta["audio_rate_hz"]
        self.audio_seconds = float(meta["audio_window_s"])
        self.batch = meta["batch"]
        self.precision = meta.get("precision", "float32")  # "int8": export.onnx --int8
        self.frame_session = _session(data, frame_path, providers, threads)
        self._frame_inputs = [i.name for i in self.frame_session.get_inputs()]
        wanted = {"frame": [3, *self.input_size], "flow": [2, *self.input_size]}
        if self.uses_audio:
            wanted["audio_embedding"] = [self.embed_dim]
        _check_graph_inputs(frame_path, self.frame_session, wanted)
        self.audio_session = None
        self.audio_source = None
        if self.uses_audio:
            if audio_path is None:
                raise ValueError(f"{frame_path}: {self.name} uses audio but no audio graph was given; "
                                 "keep <prefix>.audio.onnx next to <prefix>.frame.onnx")
            audio_path = Path(audio_path)
            if not audio_path.exists():
                raise ValueError(f"{audio_path}: no such file, needed with {frame_path.name} because "
                                 f"{self.name} uses audio; export both with `python -m export.onnx` and keep "
                                 "them side by side")
            adata, ameta = read_onnx(audio_path, "audio")
            if ameta.get("model") != self.name or ameta.get("config") != meta.get("config"):
                raise ValueError(f"{audio_path}: exported from a different model/config than {frame_path.name}; "
                                 "re-export both files from the same checkpoint")
            self.audio_session = _session(adata, audio_path, providers, threads)
            self.audio_source = str(audio_path)
            self._samples = ameta["audio_samples"]
            self._audio_batch = ameta["batch"]
            _check_graph_inputs(audio_path, self.audio_session, {"wave": [self._samples]})
            if self._samples != round(self.audio_rate * self.audio_seconds):
                raise ValueError(f"{frame_path}: metadata audio_rate_hz {self.audio_rate} x audio_window_s "
                                 f"{self.audio_seconds:g} does not give the audio graph's {self._samples} samples; "
                                 "re-export both files with `python -m export.onnx MODEL.ckpt -o PREFIX`")

    @property
    def samples(self) -> int:
        return getattr(self, "_samples", None) or super().samples

    def _check_batch(self, b: int, fixed, path) -> None:
        if isinstance(fixed, int) and b != fixed:
            raise ValueError(f"{path}: exported for a fixed batch of {fixed}, got batch {b}; pass exactly "
                             f"{fixed} at a time, or re-export with `python -m export.onnx MODEL.ckpt --batch dynamic`")

    def fit_wave(self, wave: np.ndarray) -> np.ndarray:
        """Crop to the newest ``samples`` samples, or left-pad with zeros, to fit the audio graph."""
        n = self.samples
        t = wave.shape[1]
        if t > n:
            return np.ascontiguousarray(wave[:, t - n:])
        if t < n:
            return np.concatenate([np.zeros((wave.shape[0], n - t), np.float32), wave], axis=1)
        return wave

    def _embed(self, wave):
        self._check_batch(wave.shape[0], self._audio_batch, self.audio_source)
        return self.audio_session.run(None, {"wave": self.fit_wave(wave)})[0]

    def _heatmaps(self, frame, flow, emb):
        self._check_batch(frame.shape[0], self.batch, self.source)
        feeds = {"frame": frame, "flow": flow, "audio_embedding": emb}
        return self.frame_session.run(None, {k: feeds[k] for k in self._frame_inputs})[0]


# --------------------------------------------------------------------------- open


def _onnx_pair(path: Path) -> tuple[Path, Path]:
    """(frame, audio) paths from either file or their common prefix."""
    text = str(path)
    for role in (".frame.onnx", ".audio.onnx"):
        if text.endswith(role):
            prefix = text[: -len(role)]
            return Path(prefix + ".frame.onnx"), Path(prefix + ".audio.onnx")
    if text.endswith(".onnx"):
        prefix = text[: -len(".onnx")]
        if Path(prefix + ".frame.onnx").exists():
            return Path(prefix + ".frame.onnx"), Path(prefix + ".audio.onnx")
        raise ValueError(f"{path}: not a flowgrad ONNX export name; open <prefix>.frame.onnx, "
                         "<prefix>.audio.onnx or <prefix> as written by `python -m export.onnx`")
    return Path(text + ".frame.onnx"), Path(text + ".audio.onnx")


def open_engine(path, device: str = "cpu", backend: str | None = None, *, threads: int | None = None,
                allow_untrained: bool = False) -> Engine:
    """Open a localiser for inference; see the module docstring.

    Args:
        path: a ``.ckpt`` checkpoint; an ONNX export (``<prefix>.frame.onnx``,
            ``<prefix>.audio.onnx`` or ``<prefix>``); or a registry name
            (``flowgrad.models.names()``, freshly initialised weights: a model
            with weights needs ``allow_untrained``).
        device: "cpu" or "cuda".
        backend: None (from the path), "torch" or "onnxruntime"; a backend that
            cannot run the path is an error.
        threads: onnxruntime intra-op threads (ignored by torch).
        allow_untrained: open a registry name of a model with weights (random,
            untrained weights; the engine's ``untrained`` is True). Without it
            such a name raises :class:`flowgrad.checkpoint.UntrainedError`.

    Returns:
        An :class:`Engine`.

    Raises:
        ValueError: one line naming the file and the fix, for an unknown
            suffix, a missing / truncated / corrupt file, weights holding NaN,
            ONNX metadata missing or of the wrong type, a backend or device
            that is not available, a TensorRT artefact, or a registry name of
            a model with weights without ``allow_untrained`` (UntrainedError).
    """
    from flowgrad import models

    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be None or one of {', '.join(BACKENDS)}, got {backend!r}"
                         + ("; " + _TRT_HINT if "tensorrt" in str(backend).lower() or "trt" in str(backend).lower()
                            else ""))
    text = os.fspath(path)
    p = Path(text)

    def need(kind):
        if backend is not None and backend != kind:
            raise ValueError(f"{text}: is a {kind} artefact and cannot run with backend={backend!r}; "
                             f"pass backend={kind!r} or None")

    if text.endswith(_TRT_SUFFIXES):
        raise ValueError(f"{text}: {_TRT_HINT}")
    if text.endswith((".ckpt", ".pt", ".pth")):
        need("torch")
        from flowgrad import checkpoint

        if not p.exists():
            raise ValueError(f"{text}: no such checkpoint file; check the path, or write one with "
                             "flowgrad.checkpoint.save(path, model)")
        model = checkpoint.load(text, map_location="cpu")  # CheckpointError is a ValueError
        return TorchEngine(model, device, source=text)
    if text.endswith(".onnx") or Path(text + ".frame.onnx").exists():
        need("onnxruntime")
        frame_path, audio_path = _onnx_pair(p)
        if not frame_path.exists():
            extra = f" (found only {audio_path.name})" if audio_path.exists() else ""
            raise ValueError(f"{frame_path}: no such file{extra}; export the model with "
                             f"`python -m export.onnx MODEL.ckpt -o {str(frame_path)[:-len('.frame.onnx')]}`")
        return OnnxEngine(frame_path, audio_path, device, threads=threads)
    if not p.exists() and text in models.names():
        need("torch")
        from flowgrad import checkpoint

        model = checkpoint.create_registered(text, allow_untrained=allow_untrained)
        return TorchEngine(model, device, source=text, untrained=bool(model.state_dict()))
    if p.exists() or p.suffix:
        raise ValueError(f"{text}: {'unknown model file type' if p.exists() else 'no such file'} "
                         f"(suffix {p.suffix!r}); pass a .ckpt checkpoint, an ONNX export "
                         "(<prefix>.frame.onnx / <prefix>.audio.onnx / <prefix>) or a registry name "
                         f"({', '.join(models.names())})")
    raise ValueError(f"{text}: no such file and not a registered model; pass a .ckpt checkpoint, an ONNX export "
                     f"or a registry name ({', '.join(models.names())})")


open = open_engine  # noqa: A001 - ``flowgrad.engine.open(path)``; the builtin stays at builtins.open
