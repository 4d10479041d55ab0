"""One inference interface over every way a localiser can be stored.

>>> from flowgrad import engine
>>> eng = engine.open("runs/flowgrad_en.ckpt")           # torch, from a checkpoint
>>> eng = engine.open("export/flowgrad_en.frame.onnx")   # onnxruntime (finds the .audio.onnx sibling)
>>> eng = engine.open("export/flowgrad_en")              # the common prefix of the two ONNX files
>>> eng = engine.open("flow_only")                       # a registry name: a model without weights
>>> eng = engine.open("rcgrad", allow_untrained=True)    # random, untrained weights: only when asked for
>>> emb = eng.embed_audio(wave)                          # (B, T) float32 -> (B, embed_dim)
>>> maps, scores = eng.localise(frame, flow, emb)        # -> (B, h, w), (B,) float32 in [0, 1]
>>> maps = eng.heatmaps(frame, flow, emb)                # the maps only

``open`` (alias ``open_engine``) returns an :class:`Engine`. Every engine has the
same attributes (``name``, ``input_size``, ``map_size``, ``audio_rate``,
``audio_seconds``, ``uses_audio``, ``embed_dim``, ``backend``, ``source``: the
file it was loaded from, ``untrained``: True for random weights,
``score_calibrated``: whether the sounding score is a calibrated probability,
``wants_doa``: whether the model was exported as ``MODEL+doa``, to be fused with the
direction heard (flowgrad.spatial.with_doa); False but for such an ONNX export)
and the same numpy methods, following :mod:`flowgrad.models.base`:

* ``embed_audio(wave)``: wave (B, T) float32 mono in [-1, 1] at ``audio_rate``
  Hz -> (B, embed_dim) float32. The torch backend accepts any T. The ONNX audio
  graph was exported for exactly ``T = round(audio_rate * audio_seconds)``
  samples (``samples``); a longer wave is cropped to its NEWEST (last)
  ``samples`` samples and a shorter one is left-padded with zeros (silence
  before the oldest sample), so the newest sample is always last. Models
  without audio (``uses_audio`` False) return a (B, 0) array.
* ``localise(frame, flow, embedding)``: frame (B, 3, H, W) float32 RGB in
  [0, 1], flow (B, 2, H, W) float32 in pixels of the full camera frame,
  embedding (B, embed_dim) from ``embed_audio`` -> ``(maps, scores)``: maps
  (B, *map_size) float32 in [0, 1], scores (B,) float32 in [0, 1], the sounding
  score (:mod:`flowgrad.models.base`; a constant 1 for models without audio).
  ``heatmaps(...)`` is the same call returning the maps only.

An ONNX export written before the score (a frame graph with the heatmap as its
only output) still opens: its scores are a constant 1 (never quiet, as before)
and ``score_calibrated`` is False, with one warning (:class:`NoScoreWarning`)
when it is opened; re-export it to get the score.

Backends: ``"torch"`` (``.ckpt`` via :func:`flowgrad.checkpoint.load`, or a
registry name via :func:`flowgrad.checkpoint.create_registered`: refused for a
model with weights unless ``allow_untrained=True``; ``device`` "cpu" or "cuda";
run under ``torch.inference_mode``) and ``"onnxruntime"`` (``.onnx`` files
written by ``export.onnx``; CPUExecutionProvider, or CUDAExecutionProvider with
``device="cuda"``). TensorRT artefacts (``.ep``, ``.ts``, ``.trt``) are not
opened here: they need torch-tensorrt and a CUDA GPU.

Every problem with what :func:`open` is given raises an :class:`flowgrad.errors.InputError`
with one line naming the file (or model) and the fix: :class:`EngineError` (the
path, backend or device), :class:`flowgrad.onnx_meta.OnnxFileError` (an ONNX
export: missing, corrupt, metadata missing or of the wrong type),
:class:`flowgrad.checkpoint.CheckpointError` (a checkpoint) and its
:class:`~flowgrad.checkpoint.UntrainedError`. Arrays of the wrong shape passed to
``embed_audio`` / ``heatmaps`` are the caller's bug: ``ValueError``.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from . import onnx_meta
from .errors import InputError, one_line

__all__ = ["Engine", "TorchEngine", "OnnxEngine", "EngineError", "NoScoreWarning", "open", "open_engine", "BACKENDS"]

BACKENDS = ("torch", "onnxruntime")
_TRT_SUFFIXES = (".ep", ".ts", ".trt", ".engine", ".plan")
_TRT_HINT = ("TensorRT engines need torch-tensorrt and a CUDA GPU (install with `pip install torch-tensorrt`) "
             "and are not opened by flowgrad.engine; open the .ckpt or the .onnx export of the same model instead")


class EngineError(InputError):
    """A model path, backend or device that cannot be opened; the message is one line naming it and the fix."""


class NoScoreWarning(UserWarning):
    """An ONNX export from before the sounding score: its scores are a constant 1."""


class Engine:
    """Common interface; see the module docstring. Subclasses set the attributes
    and implement ``_embed`` / ``_localise`` on validated float32 arrays."""

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
    score_calibrated: bool = False
    wants_doa = False  # True for an export written from a "+doa" spec (flowgrad.onnx_meta)

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
        """The maps of :meth:`localise`: (B, *map_size) float32 in [0, 1]."""
        return self.localise(frame, flow, embedding)[0]

    def localise(self, frame, flow, embedding=None) -> tuple[np.ndarray, np.ndarray]:
        """frame (B,3,H,W) RGB [0,1], flow (B,2,H,W) full-frame pixels, embedding (B, D)
        -> (maps (B, *map_size) float32 in [0, 1], scores (B,) float32 in [0, 1]).
        ``embedding`` may be None for models without audio."""
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
        maps, scores = self._localise(np.ascontiguousarray(frame), np.ascontiguousarray(flow),
                                      np.ascontiguousarray(embedding))
        return np.ascontiguousarray(maps, dtype=np.float32), np.ascontiguousarray(scores, dtype=np.float32).reshape(b)

    def __call__(self, frame, flow, wave) -> tuple[np.ndarray, np.ndarray]:
        """Both paths at once: ``localise(frame, flow, embed_audio(wave))`` -> (maps, scores)."""
        return self.localise(frame, flow, self.embed_audio(wave))

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r} backend={self.backend} device={getattr(self, 'device', '?')} "
                f"source={self.source!r}>")

    # ----------------------------------------------------------------- internals

    def _who(self) -> str:
        return f"{self.source or self.name}"

    def _embed(self, wave: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _localise(self, frame, flow, emb) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
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
            raise EngineError(f"{source or model.name}: device must be 'cpu' or 'cuda', got {str(requested)!r}")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise EngineError(f"{source or model.name}: device 'cuda' requested but torch has no CUDA device "
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
        self.score_calibrated = bool(model.score_is_calibrated)
        self._torch = torch
        self.forward = self.model  # replaceable (e.g. by torch.compile(model)) by benchmarks

    def _tensor(self, arr):
        return self._torch.from_numpy(arr).to(device=self.device, dtype=self.dtype)

    def _numpy(self, t):
        return t.float().cpu().numpy()

    def _embed(self, wave):
        with self._torch.inference_mode():
            return self._numpy(self.model.embed_audio(self._tensor(wave)))

    def _localise(self, frame, flow, emb):
        with self._torch.inference_mode():
            maps, scores = self.forward(self._tensor(frame), self._tensor(flow), self._tensor(emb))
            return self._numpy(maps), self._numpy(scores)


# --------------------------------------------------------------------------- onnxruntime


def _providers(device: str, who: str) -> list[str]:
    import onnxruntime as ort

    kind = str(device).split(":")[0]
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind != "cuda":
        raise EngineError(f"{who}: device must be 'cpu' or 'cuda', got {device!r}")
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise EngineError(
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
        # A thread budget: exactly this many, and idle ones sleep rather than spin, since
        # they share the cores with the caller's other threads (flow, decoding).
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(data, sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise onnx_meta.OnnxFileError(f"{path}: onnxruntime cannot load it: {one_line(exc)[:200]}; "
                         "re-export it with `python -m export.onnx`") from None
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if wanted not in session.get_providers():
        raise EngineError(f"{path}: onnxruntime did not enable {wanted} (got {session.get_providers()}); "
                         "check the CUDA / cuDNN libraries onnxruntime-gpu needs, or use device='cpu'")
    return session


def _check_graph_inputs(path: Path, session, wanted: dict[str, list[int]]) -> None:
    """Raise OnnxFileError when the graph's inputs (names, and sizes after the batch axis)
    differ from what its metadata describes (metadata edited after export)."""
    got = {i.name: list(i.shape[1:]) for i in session.get_inputs()}
    if got != wanted:
        raise onnx_meta.OnnxFileError(f"{path}: the metadata describes inputs {wanted} (after the batch axis) but the graph "
                         f"takes {got}; re-export it with `python -m export.onnx MODEL.ckpt -o PREFIX`")


class OnnxEngine(Engine):
    """The frame graph (and audio graph, for models that use audio) of an
    ``export.onnx`` export run in onnxruntime.

    Args:
        frame_path: ``<prefix>.frame.onnx``.
        audio_path: ``<prefix>.audio.onnx`` (required when the model uses audio).
        device: "cpu" (CPUExecutionProvider) or "cuda" (CUDAExecutionProvider;
            needs onnxruntime-gpu).
        threads: intra-op threads for onnxruntime, which then sleep when idle (None: its
            defaults, spinning threads, one per core).
    """

    backend = "onnxruntime"

    def __init__(self, frame_path, audio_path=None, device="cpu", *, threads: int | None = None):
        frame_path = Path(frame_path)
        data, meta = onnx_meta.read_graph(frame_path, "frame")
        self.source = str(frame_path)
        self.device = str(device)
        self.meta = meta
        providers = _providers(device, str(frame_path))
        self.name = meta.model
        self.input_size = meta.input_size
        self.map_size = meta.map_size
        self.uses_audio = meta.uses_audio
        self.embed_dim = meta.embed_dim
        self.audio_rate = meta.audio_rate_hz
        self.audio_seconds = meta.audio_window_s
        self.batch = meta.batch
        self.precision = meta.precision or "float32"  # "int8": export.onnx --int8
        self.wants_doa = bool(meta.doa)  # exported as MODEL+doa; absent in older exports
        self.frame_session = _session(data, frame_path, providers, threads)
        self._frame_inputs = [i.name for i in self.frame_session.get_inputs()]
        self._has_score = "score" in [o.name for o in self.frame_session.get_outputs()]
        self.score_calibrated = bool(self._has_score and meta.score_calibrated)
        if not self._has_score:
            # Located at the file itself (line 0 has no source to quote): one line where it is printed.
            warnings.warn_explicit(f"exported before the sounding score: every score is 1 (never quiet); "
                                   f"{onnx_meta.REEXPORT}", NoScoreWarning, str(frame_path), 0)
        _check_graph_inputs(frame_path, self.frame_session, meta.graph_inputs())
        self.audio_session = None
        self.audio_source = None
        if self.uses_audio:
            if audio_path is None:
                raise EngineError(f"{frame_path}: {self.name} uses audio but no audio graph was given; "
                                  "keep <prefix>.audio.onnx next to <prefix>.frame.onnx")
            audio_path = Path(audio_path)
            if not audio_path.exists():
                raise EngineError(f"{audio_path}: no such file, needed with {frame_path.name} because "
                                  f"{self.name} uses audio; export both with `python -m export.onnx` and keep "
                                  "them side by side")
            adata, ameta = onnx_meta.read_graph(audio_path, "audio")
            self.audio_session = _session(adata, audio_path, providers, threads)
            self.audio_source = str(audio_path)
            self._samples = ameta.audio_samples
            self._audio_batch = ameta.batch
            _check_graph_inputs(audio_path, self.audio_session, ameta.graph_inputs())
            onnx_meta.check_pair(meta, ameta, frame_path, audio_path)

    @property
    def samples(self) -> int:
        return getattr(self, "_samples", None) or super().samples

    def _check_batch(self, b: int, fixed, path) -> None:
        if isinstance(fixed, int) and b != fixed:
            raise EngineError(f"{path}: exported for a fixed batch of {fixed}, got batch {b}; pass exactly "
                             f"{fixed} at a time, or re-export with `python -m export.onnx MODEL.ckpt --batch dynamic`")

    def fit_wave(self, wave: np.ndarray) -> np.ndarray:
        """Crop to the newest ``samples`` samples, or left-pad with zeros, to fit the audio graph."""
        import torch  # as in TorchEngine: importing this module stays free of torch

        from .audio import newest_window
        return np.ascontiguousarray(newest_window(torch.from_numpy(wave), self.samples).numpy())

    def _embed(self, wave):
        self._check_batch(wave.shape[0], self._audio_batch, self.audio_source)
        return self.audio_session.run(None, {"wave": self.fit_wave(wave)})[0]

    def _localise(self, frame, flow, emb):
        self._check_batch(frame.shape[0], self.batch, self.source)
        feeds = {"frame": frame, "flow": flow, "audio_embedding": emb}
        outputs = ["heatmap", "score"] if self._has_score else ["heatmap"]
        out = self.frame_session.run(outputs, {k: feeds[k] for k in self._frame_inputs})
        return out[0], (out[1] if self._has_score else np.ones(frame.shape[0], np.float32))


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
        raise EngineError(f"{path}: not a flowgrad ONNX export name; open <prefix>.frame.onnx, "
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
        InputError: one line naming the file and the fix. EngineError: an
            unknown suffix or name, a missing file, a backend or device that is
            not available, a TensorRT artefact. OnnxFileError: a truncated or
            corrupt export, metadata missing or of the wrong type.
            CheckpointError: a checkpoint that cannot be loaded (weights holding
            NaN included); UntrainedError: a registry name of a model with
            weights without ``allow_untrained``.
    """
    from flowgrad import models

    if backend is not None and backend not in BACKENDS:
        raise EngineError(f"backend must be None or one of {', '.join(BACKENDS)}, got {backend!r}"
                         + ("; " + _TRT_HINT if "tensorrt" in str(backend).lower() or "trt" in str(backend).lower()
                            else ""))
    text = os.fspath(path)
    p = Path(text)

    def need(kind):
        if backend is not None and backend != kind:
            raise EngineError(f"{text}: is a {kind} artefact and cannot run with backend={backend!r}; "
                             f"pass backend={kind!r} or None")

    if text.endswith(_TRT_SUFFIXES):
        raise EngineError(f"{text}: {_TRT_HINT}")
    if text.endswith((".ckpt", ".pt", ".pth")):
        need("torch")
        from flowgrad import checkpoint

        if not p.exists():
            raise EngineError(f"{text}: no such checkpoint file; check the path, or write one with "
                             "flowgrad.checkpoint.save(path, model)")
        model = checkpoint.load(text, map_location="cpu")
        return TorchEngine(model, device, source=text)
    if text.endswith(".onnx") or Path(text + ".frame.onnx").exists():
        need("onnxruntime")
        frame_path, audio_path = _onnx_pair(p)
        if not frame_path.exists():
            extra = f" (found only {audio_path.name})" if audio_path.exists() else ""
            raise EngineError(f"{frame_path}: no such file{extra}; export the model with "
                             f"`python -m export.onnx MODEL.ckpt -o {str(frame_path)[:-len('.frame.onnx')]}`")
        return OnnxEngine(frame_path, audio_path, device, threads=threads)
    if not p.exists() and text in models.names():
        need("torch")
        from flowgrad import checkpoint

        model = checkpoint.create_registered(text, allow_untrained=allow_untrained)
        return TorchEngine(model, device, source=text, untrained=model.has_weights)
    if p.exists() or p.suffix:
        raise EngineError(f"{text}: {'unknown model file type' if p.exists() else 'no such file'} "
                         f"(suffix {p.suffix!r}); pass a .ckpt checkpoint, an ONNX export "
                         "(<prefix>.frame.onnx / <prefix>.audio.onnx / <prefix>) or a registry name "
                         f"({', '.join(models.names())})")
    raise EngineError(f"{text}: no such file and not a registered model; pass a .ckpt checkpoint, an ONNX export "
                     f"or a registry name ({', '.join(models.names())})")


open = open_engine  # noqa: A001 - ``flowgrad.engine.open(path)``; the builtin stays at builtins.open
