"""Saving and loading FlowGrad model checkpoints (our own format).

The format is a ``torch.save`` of a plain dict (no pickled classes)::

    {"format": "flowgrad-checkpoint", "version": 1,
     "model": <registry name>, "config": asdict(model.config),
     "state_dict": {key: cpu tensor}, "meta": {JSON-able user data}}

Everything here reads files with ``torch.load(..., weights_only=True)`` only, so
a checkpoint can never run code when it is opened.  All problems with a file
are reported as a one-line :class:`CheckpointError` (an
:class:`~flowgrad.errors.InputError`) that names the file, the cause and what to
do about it.

Weights holding NaN or infinity are refused at load (the message names the
first such tensor): such a model only ever produces NaN maps.

A bare registry name (``flowgrad_en``) builds random, untrained weights; the
command-line resolver :func:`load_or_create` refuses it unless untrained
weights are asked for (``allow_untrained=True``, ``--untrained``), and its
refusal names the checkpoints shipped in ``assets/models/`` (:func:`shipped`).

Published weights (RCGrad, FlowGrad, Hear The Flow) are imported by
:mod:`flowgrad.published`, which reads files and builds models with
:func:`read_tensors` and :func:`build`.

Public API: :func:`save`, :func:`load`, :func:`read_meta`, :func:`read_tensors`,
:func:`check_finite`, :func:`build`, :func:`create_registered`,
:func:`load_or_create`, :func:`shipped`, :func:`display_path`,
:class:`CheckpointError`, :class:`UntrainedError`.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from .assets import MODELS_DIR
from .errors import InputError, listing, one_line
from .files import atomic_write

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "UntrainedError",
    "UncalibratedWarning",
    "save",
    "load",
    "read_meta",
    "read_tensors",
    "check_finite",
    "build",
    "create_registered",
    "load_or_create",
    "shipped",
    "display_path",
]

FORMAT = "flowgrad-checkpoint"
VERSION = 1


class CheckpointError(InputError):
    """A checkpoint file cannot be used; the message is one line: file, cause, fix."""

    def __init__(self, path: Any, cause: str, fix: str | None = None):
        self.path = _fspath(path)
        self.cause = cause
        self.fix = fix
        text = f"{self.path}: {cause}"
        if fix:
            text += f"; {fix}"
        super().__init__(one_line(text))


class UntrainedError(CheckpointError):
    """A registry name was given where trained weights are expected, without
    ``allow_untrained``; ``.model`` is the name."""

    def __init__(self, model: str, fix: str):
        self.model = model
        super().__init__(model, "a registry name alone builds random, untrained weights", fix)


# --------------------------------------------------------------------------- helpers


def _fspath(path: Any) -> str:
    try:
        return os.fspath(path)
    except TypeError:
        return str(path)


def _models():
    from flowgrad import models  # imported lazily: checkpoint.py must import on its own

    return models


_PLAIN_SCALARS = (str, int, float, bool, type(None))


def _check_plain(value: Any, where: str) -> None:
    """Raise TypeError unless ``value`` is built only from JSON-like plain types.

    Exact type checks on purpose: subclasses such as numpy.float64 or enum
    members would be pickled as classes and then refused by weights-only loading.
    """
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return
    if kind in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"{where} has a non-str key {key!r} ({type(key).__name__}); use str keys")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where} is a {kind.__module__}.{kind.__qualname__}; checkpoint metadata may only hold "
        "str, int, float, bool, None, lists/tuples and dicts with str keys"
    )


def _is_safe_load_refusal(message: str) -> str | None:
    """Return the blocked global's name if torch refused to unpickle an object."""
    match = re.search(r"GLOBAL\s+([\w.<>]+)", message)
    if match:
        return match.group(1)
    return None


def _torch_load(path: Any, map_location: Any = "cpu", *, what: str = "checkpoint") -> Any:
    """``torch.load(weights_only=True)`` with every failure mapped to a CheckpointError."""
    name = _fspath(path)
    if not os.path.exists(name):
        raise CheckpointError(name, "file not found", "check the path (and the working directory)")
    if os.path.isdir(name):
        raise CheckpointError(name, "is a directory, not a checkpoint file", "pass the path of the .pt/.ckpt file")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it did not write; the error below says enough
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            return torch.load(name, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = _is_safe_load_refusal(str(exc))
        if blocked is not None:
            raise CheckpointError(
                name,
                f"refused to load: the file contains executable/non-data objects ({blocked}) "
                "that could run code when unpickled, and only plain tensors and containers are accepted",
                f"do not use this file unless you trust its source; {what}s must hold only tensors, "
                "numbers, strings, lists and dicts",
            ) from None
        raise CheckpointError(
            name,
            "not a readable torch checkpoint (corrupt, truncated, or not a torch.save file)",
            "re-download or re-save the file",
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError, IndexError,
            AttributeError, TypeError, UnicodeDecodeError, MemoryError, OverflowError) as exc:
        kind = "empty file" if isinstance(exc, EOFError) and os.path.getsize(name) == 0 else (
            "corrupt or truncated file, or not a torch.save file")
        raise CheckpointError(name, f"cannot read checkpoint: {kind}", "re-download or re-save the file") from None
    except OSError as exc:
        raise CheckpointError(name, f"cannot read file: {exc.strerror or exc}", "check permissions and the disk") from None


def read_tensors(path: Any, what: str = "checkpoint") -> Any:
    """Read any ``torch.save`` file of tensors and plain containers, never running code.

    For files that are not FlowGrad checkpoints (e.g. training's ``state.pt``).

    Args:
        path: the file.
        what: what the file is, for the refusal message (e.g. "training state").

    Returns:
        The loaded object, tensors on the CPU.

    Raises:
        CheckpointError: missing, unreadable, corrupt or truncated file, or one
            holding executable objects (refused with this module's one line,
            which never suggests ``weights_only=False``).
    """
    return _torch_load(path, "cpu", what=what)


def check_finite(path: Any, tensors: Mapping[str, Any], where: str = "") -> None:
    """Raise CheckpointError naming the first floating tensor holding NaN or infinity.

    Args:
        path: the file the tensors came from (for the message).
        tensors: name -> value; values that are not floating tensors are ignored.
        where: prefix for the names in the message (e.g. "model." for a nested dict).
    """
    bad = []
    for key, value in tensors.items():
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                bad.append((key, int((~finite).sum()), value.numel()))
    if bad:
        key, count, total = bad[0]
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise CheckpointError(
            path,
            f"weights hold NaN or infinite values: tensor {where}{key} has {count} of {total}{more}",
            "the file is damaged or its training diverged; use an earlier checkpoint",
        )


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _check_header(obj: Any, name: str) -> None:
    """Validate the format tag and version of a loaded checkpoint dict."""
    if not isinstance(obj, Mapping) or obj.get("format") != FORMAT:
        if _is_tensor_dict(obj) or (isinstance(obj, Mapping) and ("state_dict" in obj or "model" in obj)):
            what = "looks like a plain state dict or a foreign checkpoint"
        else:
            what = f"holds a {type(obj).__name__} without the {FORMAT!r} format tag"
        raise CheckpointError(
            name,
            f"not a FlowGrad checkpoint ({what})",
            "to import a published checkpoint use flowgrad.published.import_published(...)",
        )
    version = obj.get("version")
    if type(version) is not int or version < 1:
        raise CheckpointError(name, f"invalid checkpoint version {version!r}", "re-save the model with flowgrad.checkpoint.save")
    if version > VERSION:
        raise CheckpointError(
            name,
            f"checkpoint format version {version} is newer than this flowgrad supports (up to {VERSION})",
            "upgrade flowgrad to load it",
        )
    missing = [k for k in ("model", "config", "state_dict") if k not in obj]
    if missing:
        raise CheckpointError(name, f"checkpoint is missing entries: {listing(missing)}", "re-save the model with flowgrad.checkpoint.save")
    if not isinstance(obj["model"], str):
        raise CheckpointError(name, f"model name is a {type(obj['model']).__name__}, not a str", "re-save the model")
    if not isinstance(obj["config"], Mapping):
        raise CheckpointError(name, "config is not a dict", "re-save the model")
    if not isinstance(obj["state_dict"], Mapping):
        raise CheckpointError(name, "state_dict is not a dict", "re-save the model")


def build(model_name: str, config: Mapping[str, Any], name: str, *, imported: bool = False):
    """Registry model ``model_name`` built with ``config`` as read from the file ``name``.

    imported: the file is a published checkpoint (:mod:`flowgrad.published`), not ours
    (only changes the fix the messages suggest).

    Raises:
        CheckpointError: an unknown model name, or a config the model does not accept.
    """
    models = _models()
    known = list(models.names())
    if model_name not in known:
        raise CheckpointError(
            name,
            f"unknown model {model_name!r}",
            f"known models: {', '.join(known)}"
            + ("" if imported else " (is this checkpoint from a newer flowgrad?)"),
        )
    try:
        return models.create(model_name, **dict(config))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            name,
            f"config not accepted by model {model_name!r}: {exc}",
            "check the config keywords" if imported else "the checkpoint may come from a different flowgrad version",
        ) from None


def _state_dict_problems(expected: Mapping[str, torch.Tensor], given: Mapping[str, Any]):
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    mismatched = []
    for key, ref in expected.items():
        if key in given:
            value = given[key]
            if not isinstance(value, torch.Tensor):
                mismatched.append(f"{key} (a {type(value).__name__}, expected a tensor)")
            elif value.shape != ref.shape:
                mismatched.append(f"{key} (checkpoint {tuple(value.shape)}, model {tuple(ref.shape)})")
    return missing, unexpected, mismatched


class UncalibratedWarning(UserWarning):
    """A checkpoint from before the sounding-score calibration: it loads with an uncalibrated score."""


def _with_score_defaults(model: torch.nn.Module, state_dict: Any, name: str) -> Any:
    """``state_dict`` with the model's default (uncalibrated) score buffers added when the file
    has none of them (the format before the sounding score), with one warning; else unchanged."""
    from .models.base import SCORE_BUFFERS

    own = model.state_dict()
    if not isinstance(state_dict, Mapping) or not all(k in own for k in SCORE_BUFFERS):
        return state_dict
    if any(k in state_dict for k in SCORE_BUFFERS):
        return state_dict  # partly there: the usual mismatch check names what is missing
    # Located at the file itself (line 0 has no source to quote): one line where it is printed.
    warnings.warn_explicit("saved before the sounding score: it is uncalibrated (not a probability); calibrate "
                           "it with `python -m training.calibrate CKPT --data SET`", UncalibratedWarning, name, 0)
    return {**state_dict, **{k: own[k] for k in SCORE_BUFFERS}}


def _target_device(map_location: Any):
    if isinstance(map_location, (str, torch.device)):
        return torch.device(map_location)
    return None


# --------------------------------------------------------------------------- save / load


def save(path: Any, model: torch.nn.Module, **meta: Any) -> None:
    """Write ``model`` to ``path`` as a FlowGrad checkpoint.

    The file is a ``torch.save`` of a plain dict (format tag, version, registry
    name, ``asdict(model.config)``, CPU state dict and ``meta``), so it loads
    with ``weights_only=True`` and contains nothing executable.  It is written
    with :func:`flowgrad.files.atomic_write`, so an interrupted save never
    replaces a good checkpoint with a partial one.

    Args:
        path: destination file (str or path-like); its directory must exist.
        model: a model from ``flowgrad.models.create`` (has ``.name`` and a
            dataclass ``.config``).
        **meta: extra user data (e.g. ``epoch=3, note="..."``); only str, int,
            float, bool, None, lists/tuples and dicts with str keys.

    Raises:
        TypeError: ``meta`` or the model config holds a non-plain value, or
            ``model`` lacks ``name``/``config``.
        OSError: the file cannot be written (the old file, if any, is kept).
    """
    model_name = getattr(model, "name", None)
    config = getattr(model, "config", None)
    if not isinstance(model_name, str):
        raise TypeError("save() needs a flowgrad model with a str .name (create it with flowgrad.models.create)")
    if config is None or not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError("save() needs a flowgrad model whose .config is a dataclass instance")
    config_dict = dataclasses.asdict(config)
    _check_plain(config_dict, "model.config")
    _check_plain(meta, "meta")

    state_dict = {}
    for key, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict entry {key!r} is a {type(value).__name__}, not a tensor")
        state_dict[key] = value.detach().cpu()

    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_name,
        "config": config_dict,
        "state_dict": state_dict,
        "meta": dict(meta),
    }

    with atomic_write(_fspath(path)) as handle:
        torch.save(payload, handle)


def read_meta(path: Any) -> dict:
    """Read a FlowGrad checkpoint's header without building the model.

    Args:
        path: a file written by :func:`save`.

    Returns:
        ``{"format", "version", "model", "config", "meta"}`` from the file.

    Raises:
        CheckpointError: missing/unreadable/corrupt file, refused executable
            content, not a FlowGrad checkpoint, or a newer format version.
    """
    name = _fspath(path)
    obj = _torch_load(name, "cpu")
    _check_header(obj, name)
    return {
        "format": obj["format"],
        "version": obj["version"],
        "model": obj["model"],
        "config": dict(obj["config"]),
        "meta": dict(obj.get("meta") or {}),
    }


def load(path: Any, map_location: Any = "cpu") -> torch.nn.Module:
    """Load a FlowGrad checkpoint written by :func:`save` and rebuild its model.

    The file is read with ``torch.load(weights_only=True)`` only, the model is
    rebuilt with ``flowgrad.models.create(name, **config)``, the weights are
    loaded with ``strict=True`` and the model is put in eval mode.

    Args:
        path: checkpoint file.
        map_location: passed to ``torch.load``; if it is a device (str or
            ``torch.device``) the returned model is also moved there.

    Returns:
        The model, in eval mode.

    Raises:
        CheckpointError: (one line naming the file, the cause and the fix) the
            file is missing, unreadable, corrupt or truncated; it contains
            executable objects and was refused; it is not a FlowGrad checkpoint
            (use :func:`flowgrad.published.import_published` for published weights); its format
            version is newer; the model name is unknown; the state dict does
            not match the model (missing/unexpected keys, shape mismatches); or
            a weight tensor holds NaN or infinity (the message names it).
    """
    name = _fspath(path)
    obj = _torch_load(name, map_location)
    _check_header(obj, name)
    model = build(obj["model"], obj["config"], name)
    state_dict = _with_score_defaults(model, obj["state_dict"], name)

    missing, unexpected, mismatched = _state_dict_problems(model.state_dict(), state_dict)
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({listing(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({listing(unexpected)})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches ({listing(mismatched)})")
        raise CheckpointError(
            name,
            f"weights do not match model {obj['model']!r}: " + "; ".join(parts),
            "the file was saved from a different model or config; re-save it with flowgrad.checkpoint.save",
        )
    check_finite(name, state_dict)
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(
            name, f"weights could not be loaded into {obj['model']!r}: {one_line(str(exc))[:300]}",
            "re-save the model with flowgrad.checkpoint.save",
        ) from None
    device = _target_device(map_location)
    if device is not None:
        model = model.to(device)
    model.eval()
    return model


# --------------------------------------------------------------------------- command-line resolution


def shipped() -> list[Path]:
    """The trained checkpoints shipped with the repository (``assets/models/*.ckpt``), sorted."""
    return sorted(MODELS_DIR.glob("*.ckpt")) if MODELS_DIR.is_dir() else []


def display_path(path: Any) -> str:
    """``path`` for messages: relative to the working directory when it lies below it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def create_registered(name: str, *, allow_untrained: bool = False) -> torch.nn.Module:
    """Registry model ``name`` with freshly initialised (random, untrained) weights, in eval mode.

    Models without weights (``flow_only``) are always built. For the others a
    name alone is refused unless ``allow_untrained``: random full-width weights
    make maps that look like output but mean nothing.

    Raises:
        UntrainedError: a model with weights and ``allow_untrained`` False; the
            message points at the shipped checkpoints and at ``--untrained``.
        ValueError: ``name`` is not registered.
    """
    models = _models()
    model = models.create(name)
    if allow_untrained or not model.has_weights:
        return model
    files = shipped()
    same = [p for p in files if p.stem == name]
    if same:
        trained = f"the shipped {display_path(same[0])}"
    elif files:
        trained = f"a trained checkpoint (shipped: {', '.join(display_path(p) for p in files)})"
    else:
        trained = "a trained .ckpt checkpoint"
    raise UntrainedError(name, f"pass {trained}, or ask for untrained weights explicitly with --untrained "
                               "(allow_untrained=True in Python)")


def load_or_create(spec: Any, map_location: Any = "cpu", *,
                   allow_untrained: bool = False) -> tuple[torch.nn.Module, bool]:
    """Resolve a command-line model argument: a checkpoint file or a registry name.

    Returns (model in eval mode, trained) where trained is False for a registry
    name (freshly initialised weights, see :func:`create_registered`). Raises
    :class:`CheckpointError` for a file that cannot be loaded, for a spec that
    is neither an existing file nor a registered name (the message lists the
    names), and :class:`UntrainedError` for the name of a model with weights
    unless ``allow_untrained``.
    """
    path = os.fspath(spec)
    if os.path.exists(path) or os.path.splitext(path)[1]:
        return load(path, map_location=map_location), True
    models = _models()
    if path in models.names():
        return create_registered(path, allow_untrained=allow_untrained), False
    raise CheckpointError(path, "no such checkpoint file and not a registered model",
                          f"registered models: {', '.join(models.names())}")
