"""Importing published weights (RCGrad, FlowGrad, Hear The Flow) into registry models.

>>> model, report = import_published("rc_grad.pt")          # layout guessed from the keys
>>> print(report.summary())                                 # loaded / missing / unexpected / ignored keys
>>> checkpoint.save("rcgrad.ckpt", model)                   # then it is one of ours

Files are read with ``torch.load(weights_only=True)`` only
(:func:`flowgrad.checkpoint.read_tensors`), so a published file never runs code;
a Lightning checkpoint that pickles hyper-parameter classes is refused with the
one line that says how to extract its weights. Every problem is a one-line
:class:`~flowgrad.checkpoint.CheckpointError` naming the file.

Which registry model a file becomes is the registry's knowledge: each model
class lists the forms its published weights come in
(:attr:`flowgrad.models.base.Localiser.published_forms`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from .checkpoint import FORMAT, CheckpointError, build, check_finite, read_tensors
from .errors import listing, one_line
from .models.base import SCORE_BUFFERS

__all__ = ["LAYOUTS", "ImportReport", "import_published"]

LAYOUTS = ("rcgrad", "flowgrad", "htf")

_FLOWGRAD_ENCODERS = ("image_encoder", "audio_encoder", "flow_encoder")
_HTF_MODULES = ("imgnet", "audnet", "flownet", "flowatt")
_WRAPPER_PREFIXES = ("module.", "model.")


@dataclass
class ImportReport:
    """What :func:`import_published` did with each key of a published checkpoint.

    Attributes:
        model_name: registry name of the model that was built.
        loaded: our parameter/buffer names that received published weights.
        missing: our names that the file did not provide (left as initialised).
        unexpected: file keys (in our naming) that are not used and not known
            to be unused; worth a look.
        ignored: file keys known to be unused by the published models
            (``fc.*``, ``conv1_a.*``, the unused alternative first conv).
    """

    model_name: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing and nothing unexpected was found."""
        return not self.missing and not self.unexpected

    def summary(self) -> str:
        """Return a short human-readable multi-line description of the import."""
        lines = [
            f"imported {self.model_name}: {len(self.loaded)} tensors loaded, "
            f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, {len(self.ignored)} ignored"
        ]
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected), ("ignored", self.ignored)):
            if keys:
                lines.append(f"  {label}: {listing(keys)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _strip_wrappers(key: str, roots: tuple) -> str:
    """Remove DataParallel / Lightning prefixes ("module.", "model.") before a known root."""
    while not key.startswith(tuple(r + "." for r in roots)):
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        else:
            break
    return key


def _extract_state_dict(obj: Any, layout: str | None, name: str) -> tuple[dict, str]:
    """Find the state dict inside a published file and decide (or check) its layout."""
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        raise CheckpointError(name, "this is already a FlowGrad checkpoint", "load it with flowgrad.checkpoint.load(...)")
    if not isinstance(obj, Mapping):
        raise CheckpointError(name, f"holds a {type(obj).__name__}, not a state dict or checkpoint dict",
                              "pass a published rcgrad, FlowGrad or HTF checkpoint")

    if isinstance(obj.get("model"), Mapping) and not isinstance(obj.get("model"), torch.Tensor):
        raw, guessed = obj["model"], "htf"
    elif isinstance(obj.get("state_dict"), Mapping):
        raw, guessed = obj["state_dict"], "flowgrad"
    else:
        raw, guessed = obj, "rcgrad"

    state = {k: v for k, v in raw.items() if isinstance(k, str)}
    if not state:
        raise CheckpointError(name, "contains no weights", "pass a published rcgrad, FlowGrad or HTF checkpoint")
    stripped = [_strip_wrappers(k, _FLOWGRAD_ENCODERS + _HTF_MODULES) for k in state]
    roots = {k.split(".", 1)[0] for k in stripped}
    if roots & set(_HTF_MODULES):
        guessed = "htf"
    elif roots & set(_FLOWGRAD_ENCODERS):
        if guessed == "htf":  # {"model": {...}} holding FlowGrad keys
            guessed = "flowgrad"
        if guessed == "rcgrad" and "flow_encoder" in roots:
            guessed = "flowgrad"  # rcgrad has no flow encoder: a bare FlowGrad-EN state dict
    else:
        raise CheckpointError(
            name,
            f"unrecognised key layout (first keys: {listing(list(state)[:3], 3)})",
            "expected image_encoder./audio_encoder./flow_encoder. (rcgrad, FlowGrad) or imgnet./audnet./flownet./flowatt. (HTF) keys",
        )
    if layout is None:
        layout = guessed
    elif layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)} or None, not {layout!r}")
    return state, layout


def _default_model(layout: str, roots: set, state: Mapping[str, Any], name: str) -> str:
    """The registry model a published file becomes: the one with the most specific of the
    registry's published forms (``Localiser.published_forms``) that the file matches."""
    from flowgrad import models  # imported lazily, as in flowgrad.checkpoint

    scored = sorted(((form.specificity(layout, roots, state), model)
                     for model in models.names() for form in models.model_class(model).published_forms),
                    reverse=True)
    score, best = scored[0] if scored else (-1, None)
    if score < 0:
        raise CheckpointError(name, f"no registry model is published in the {layout!r} layout",
                              "pass the model to build with model=...")
    tied = sorted({model for s, model in scored if s == score})
    if len(tied) > 1:
        raise CheckpointError(name, f"the keys fit published {' and '.join(tied)} alike",
                              "pass the model to build with model=...")
    return best


def _first_conv_choice(encoder: str, state: Mapping[str, Any], expected: Mapping[str, torch.Tensor]):
    """Pick which of ``<enc>.conv1`` / ``<enc>.conv1_flow`` feeds our ``<enc>.conv1``.

    The published FlowGrad models keep two first convolutions: ``conv1``
    (3-channel RGB) and ``conv1_flow`` (4-channel image+flow for IC, 1-channel
    flow for EN's flow encoder).  Only one is used; the other is ignored.
    Returns (source_key or None, [ignored keys]).
    """
    ours = expected.get(f"{encoder}.conv1.weight")
    plain, flow = f"{encoder}.conv1.weight", f"{encoder}.conv1_flow.weight"
    present = [k for k in (plain, flow) if k in state]
    if ours is None or not present:
        return None, []
    prefer_flow = encoder == "flow_encoder" or (ours.dim() == 4 and ours.shape[1] != 3)
    order = [flow, plain] if prefer_flow else [plain, flow]
    order = [k for k in order if k in present]
    chosen = next(
        (k for k in order if isinstance(state[k], torch.Tensor) and state[k].shape == ours.shape), order[0]
    )
    return chosen, [k for k in present if k != chosen]


def import_published(path: Any, layout: str | None = None, *, model: str | None = None, **config: Any):
    """Import a published rcgrad / FlowGrad / HTF checkpoint into a registry model.

    Supported layouts:

    * ``"rcgrad"``: a plain state dict (``rc_grad.pt``) with ``image_encoder.*``
      and ``audio_encoder.*`` keys; ``image_encoder.conv1_flow.*``,
      ``image_encoder.conv1_a.*`` and ``*.fc.*`` are ignored.  Builds ``rcgrad``.
    * ``"flowgrad"``: a PyTorch Lightning ``.ckpt`` (``{"state_dict": ...}``,
      keys optionally prefixed ``model.``).  Builds ``flowgrad_en`` if there
      are ``flow_encoder.*`` keys, else ``flowgrad_ic`` if
      ``image_encoder.conv1_flow.weight`` has 4 input channels, else
      ``rcgrad``.  The used first conv (``conv1_flow`` for IC's image encoder
      and EN's flow encoder) becomes our ``conv1``; the other one is ignored.
    * ``"htf"``: ``{"model": state dict}`` with ``imgnet./audnet./flownet./flowatt.``
      keys, optionally prefixed ``module.`` (DataParallel).  Builds ``htf``.

    Files are read with ``torch.load(weights_only=True)`` only.

    Args:
        path: the published checkpoint file.
        layout: one of ``"rcgrad"``, ``"flowgrad"``, ``"htf"``, or None to
            guess from the keys.
        model: registry name to build instead of the default for the layout
            (e.g. ``model="flowgrad_h"`` to load ``rc_grad.pt`` weights into
            FlowGrad-H).
        **config: passed to ``flowgrad.models.create`` (e.g. ``width=0.25``).

    Returns:
        ``(model, report)``: the model in eval mode and an :class:`ImportReport`.

    Raises:
        CheckpointError: missing/corrupt file; the file holds objects that
            cannot be loaded safely (e.g. a Lightning checkpoint with pickled
            hyper-parameter classes; the message says how to extract the
            weights); unrecognised key layout; unknown model name; or a tensor
            whose shape differs from the model's (names the key, both shapes);
            or a tensor holding NaN or infinity (names the key).
        ValueError: ``layout`` is not a known layout.
    """
    name = os.fspath(path)
    try:
        obj = read_tensors(name, what="published checkpoint")
    except CheckpointError as exc:
        if exc.cause.startswith("refused"):
            blocked = exc.cause[exc.cause.find("(") + 1: exc.cause.find(")")]
            raise CheckpointError(
                name,
                f"refused to load: the file contains pickled executable/non-data objects ({blocked}) that cannot "
                "be loaded safely with weights_only=True (Lightning checkpoints often pickle hyper-parameter classes)",
                "only if you trust its source, extract the weights with "
                f"torch.save(torch.load({name!r}, weights_only=False)['state_dict'], 'weights.pt') "
                "and import 'weights.pt' with layout='flowgrad'",
            ) from None
        raise
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)} or None, not {layout!r}")
    state, layout = _extract_state_dict(obj, layout, name)

    roots_all = _FLOWGRAD_ENCODERS + _HTF_MODULES
    renamed: dict[str, Any] = {}
    for key, value in state.items():
        renamed[_strip_wrappers(key, roots_all)] = value
    roots = {k.split(".", 1)[0] for k in renamed}

    model_name = model or _default_model(layout, roots, renamed, name)
    net = build(model_name, config, name, imported=True)
    expected = net.state_dict()

    # Map the published keys onto ours.
    mapping: dict[str, str] = {}  # our key -> file key (in stripped naming)
    ignored: list[str] = []
    for encoder in _FLOWGRAD_ENCODERS + ("imgnet", "audnet", "flownet"):
        chosen, unused = _first_conv_choice(encoder, renamed, expected)
        if chosen is not None:
            mapping[f"{encoder}.conv1.weight"] = chosen
            ignored.extend(unused)
    used_sources = set(mapping.values())
    for key in renamed:
        if key in used_sources or key in ignored:
            continue
        parts = key.split(".")
        if len(parts) >= 2 and parts[1] in ("fc", "conv1_a", "conv1_flow") and parts[0] in roots_all:
            if key not in expected:
                ignored.append(key)
                continue
        mapping.setdefault(key, key)

    loaded_sd: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for ours, source in mapping.items():
        value = renamed[source]
        if ours not in expected:
            unexpected.append(source)
            continue
        ref = expected[ours]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(name, f"{source} is a {type(value).__name__}, not a tensor",
                                  "the file is not a valid published checkpoint")
        if value.shape != ref.shape:
            where = source if source == ours else f"{source} (-> {ours})"
            raise CheckpointError(
                name,
                f"shape mismatch for {where}: file {tuple(value.shape)}, model {model_name!r} {tuple(ref.shape)}",
                "pick the matching model with model=... / layout=..., or matching config (e.g. width=)",
            )
        loaded_sd[ours] = value
    check_finite(name, {mapping[k]: v for k, v in loaded_sd.items()})
    # published weights never carry our score calibration: it stays at its uncalibrated default
    missing = [k for k in expected if k not in loaded_sd and k not in SCORE_BUFFERS]
    try:
        net.load_state_dict(loaded_sd, strict=False)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(name, f"weights could not be loaded into {model_name!r}: {one_line(str(exc))[:300]}",
                              "pick the matching model with model=...") from None
    net.eval()
    report = ImportReport(
        model_name=model_name,
        loaded=sorted(loaded_sd, key=list(expected).index),
        missing=missing,
        unexpected=unexpected,
        ignored=ignored,
    )
    return net, report
