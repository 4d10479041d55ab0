"""The one contract every localiser in the registry follows.

A localiser has two paths, run at their own rates:

* ``embed_audio(wave)``: wave (B, T) float32 mono in [-1, 1] sampled at
  ``audio_rate`` Hz, normally ``audio_seconds`` long (the most recent window in
  a live system) -> audio embedding (B, embed_dim) float32.
* ``forward(frame, flow, audio_embedding)``:
    frame (B, 3, H, W) float32 RGB (not BGR) in [0, 1], H, W = ``input_size``;
    flow (B, 2, H, W) float32 (dx, dy) from this frame to the one ~0.125 s
    later, sampled on the same H x W grid but in PIXELS OF THE FULL CAMERA FRAME
    (see :func:`flowgrad.inputs.prepare_flow`);
    audio_embedding (B, embed_dim) from ``embed_audio``
  -> ``(heatmap, score)``: heatmap (B, *map_size) float32 in [0, 1], on the same
  grid as the frame input (pixel (i, j) of the map covers pixel (i, j) of the
  224x224 frame); score (B,) float32 in [0, 1], the sounding score: once
  calibrated, the probability that a source visible in the frame is sounding.

The sounding score is ``sigmoid(score_scale * evidence + score_bias)``, where
``sounding_evidence(frame, flow, audio_embedding)`` -> (B,) is raw audio-visual
agreement taken before the map's min-max normalisation (each model says which).
``score_scale``, ``score_bias`` and ``score_calibrated`` are buffers, so the
calibration (:func:`flowgrad.calibration.fit_platt`, ``python -m
training.calibrate``) travels in every checkpoint and is a constant of the ONNX
graph; :meth:`Localiser.set_score_calibration` sets it. Uncalibrated (scale 1,
bias 0) the score is NOT a probability: it only orders frames. A model without
audio (``uses_audio`` False) has no such buffers and scores a constant 1.

``cams(...)`` exposes the raw closed-form Grad-CAM maps, where a model has them,
for tests and diagnostics.

Everything the rest of the project needs to know about a model is asked of the
model (or its class) here, never decided by testing its name:

* ``name``: its registry name (a class attribute, so a model built directly,
  ``RCGrad(config)``, saves a checkpoint that loads);
* ``has_weights``; ``tracing()``: export-friendly code paths on this instance;
* training (:mod:`training.objectives`, :mod:`training.train`): ``objective``,
  ``not_trained_because``, ``init_from(source)``, ``init_sources``,
  ``has_flow_filters`` / ``init_flow_filters_from_rgb()``;
* evaluation (:mod:`training.evaluate`): ``reference_config``, ``derived_from``
  and ``derive(base)``;
* importing published weights (:mod:`flowgrad.published`): ``published_forms``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Mapping, Optional

import torch
from torch import nn

from ..errors import InputError


class InitError(InputError):
    """Trained weights that cannot start this model (another model, another width); one line."""


@dataclass(frozen=True)
class PublishedForm:
    """How a publisher's checkpoint of a model looks (:func:`flowgrad.published.import_published`).

    layout: the publisher's key layout, one of ``flowgrad.published.LAYOUTS``.
    root: a top-level module the file must have (e.g. ``"flow_encoder"``), or None.
    channels: (key, in_channels): a convolution weight the file must hold with
        that many input channels, or None.

    Of the registry's forms that match a file, the most specific (the most
    conditions) names the model the file becomes.
    """

    layout: str
    root: Optional[str] = None
    channels: Optional[tuple[str, int]] = None

    def specificity(self, layout: str, roots: set, state: Mapping[str, Any]) -> int:
        """-1 when the file (its layout, its top-level module names, its tensors) is not of
        this form, else the number of conditions it meets beyond the layout."""
        if layout != self.layout or (self.root is not None and self.root not in roots):
            return -1
        if self.channels is not None:
            key, channels = self.channels
            value = state.get(key)
            if not (isinstance(value, torch.Tensor) and value.dim() == 4 and value.shape[1] == channels):
                return -1
        return (self.root is not None) + (self.channels is not None)


#: The sounding-score calibration buffers of a model that uses audio (checkpoints before them load uncalibrated).
SCORE_BUFFERS = ("score_scale", "score_bias", "score_calibrated")


class Localiser(nn.Module):
    """Base class of registry models; see the module docstring for the contract."""

    #: Registry name; every registered class sets its own (``flowgrad.models.names()``).
    name: ClassVar[str] = ""
    input_size: tuple[int, int] = (224, 224)
    map_size: tuple[int, int] = (224, 224)
    uses_audio: bool = True
    #: Export-friendly code paths (see :meth:`tracing`); set on an instance, never on the class.
    traceable: bool = False

    #: Key of the training objective (``training.objectives``), None for a model that is not trained.
    objective: ClassVar[Optional[str]] = None
    #: Why the model is not trained, when ``objective`` is None (for messages).
    not_trained_because: ClassVar[str] = ""
    #: Registry names of other models whose trained weights can start this one (:meth:`init_from`).
    init_sources: ClassVar[tuple[str, ...]] = ()
    #: Whether the model has flow input filters that :meth:`init_flow_filters_from_rgb` can set.
    has_flow_filters: ClassVar[bool] = False
    #: Config changes that give the published post-processing: {} when the default already is
    #: it, None when the model has no reference mode (:meth:`reference_twin`).
    reference_config: ClassVar[Optional[dict]] = None
    #: Registry name of the trained model this one is built from (:meth:`derive`), or None.
    derived_from: ClassVar[Optional[str]] = None
    #: The forms published weights of this model come in (:mod:`flowgrad.published`).
    published_forms: ClassVar[tuple[PublishedForm, ...]] = ()

    def __init__(self, config):
        super().__init__()
        self.config = config
        if self.uses_audio:
            self.register_buffer("score_scale", torch.tensor(1.0))
            self.register_buffer("score_bias", torch.tensor(0.0))
            self.register_buffer("score_calibrated", torch.tensor(False))

    @property
    def has_weights(self) -> bool:
        """Whether the model has parameters or buffers (False: nothing to load or train)."""
        return bool(self.state_dict())

    @contextlib.contextmanager
    def tracing(self) -> Iterator["Localiser"]:
        """Export-friendly code paths on THIS instance while inside (``export.onnx``, ``export.trt``).

        The spectrogram becomes a convolution with a fixed DFT basis, ``einsum``
        becomes Mul + ReduceSum and input-statistics BatchNorm explicit
        reductions: the same maps to float rounding (tests/test_export_onnx.py),
        in operators ONNX export and TensorRT take. Only this model's modules
        change (their ``traceable`` attribute); nothing process-wide does.
        """
        modules = [m for m in self.modules() if hasattr(m, "traceable")]
        before = [m.traceable for m in modules]
        for m in modules:
            m.traceable = True
        try:
            yield self
        finally:
            for m, value in zip(modules, before):
                m.traceable = value

    @property
    def audio_rate(self) -> int:
        """Sample rate, Hz, that ``embed_audio`` expects."""
        return self.config.audio_rate

    @property
    def audio_seconds(self) -> float:
        """Length, seconds, of the audio window the model was defined on."""
        return self.config.audio_seconds

    @property
    def embed_dim(self) -> int:
        """Width of the audio embedding."""
        raise NotImplementedError

    def embed_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) float32 wave at ``audio_rate`` -> (B, embed_dim)."""
        raise NotImplementedError

    def localise(self, frame: torch.Tensor, flow: torch.Tensor,
                 wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both paths at once: ``forward(frame, flow, embed_audio(wave))`` -> (heatmap, score)."""
        return self(frame, flow, self.embed_audio(wave))

    # ------------------------------------------------------------ the sounding score

    def sounding_evidence(self, frame: torch.Tensor, flow: torch.Tensor, audio_embedding: torch.Tensor) -> torch.Tensor:
        """Raw, uncalibrated evidence (B,) float32 that the frame holds a sounding source (higher:
        more); inputs as ``forward``. What calibration (:mod:`flowgrad.calibration`) is fitted on."""
        raise NotImplementedError

    def score_from_evidence(self, evidence: torch.Tensor) -> torch.Tensor:
        """(B,) evidence -> (B,) float32 score in [0, 1]: sigmoid(score_scale * evidence + score_bias)."""
        return torch.sigmoid(self.score_scale * evidence + self.score_bias)

    @property
    def score_is_calibrated(self) -> bool:
        """Whether the score is a calibrated probability (always True without audio: a constant 1)."""
        return bool(self.score_calibrated) if self.uses_audio else True

    def set_score_calibration(self, scale: float, bias: float) -> None:
        """Store a Platt calibration (score = sigmoid(scale * evidence + bias)), in place; marks the
        score calibrated. ValueError for a model without audio or a non-finite value."""
        if not self.uses_audio:
            raise ValueError(f"{self.name} has no audio: its score is a constant 1 and takes no calibration")
        if not (math.isfinite(scale) and math.isfinite(bias)):
            raise ValueError(f"{self.name}: calibration scale and bias must be finite, got {scale!r}, {bias!r}")
        with torch.no_grad():
            self.score_scale.fill_(float(scale))
            self.score_bias.fill_(float(bias))
            self.score_calibrated.fill_(True)

    def check_inputs(self, frame: torch.Tensor, flow: torch.Tensor, emb: torch.Tensor) -> None:
        """Raise ValueError unless the inputs follow the contract's shapes."""
        b = frame.shape[0] if frame.ndim == 4 else None
        expected = {
            "frame": (frame, (b, 3, *self.input_size)),
            "flow": (flow, (b, 2, *self.input_size)),
            "audio_embedding": (emb, (b, self.embed_dim)),
        }
        for what, (t, shape) in expected.items():
            if tuple(t.shape) != shape:
                raise ValueError(f"{self.name}: {what} must have shape {shape}, got {tuple(t.shape)}")
            if not t.is_floating_point():
                raise ValueError(f"{self.name}: {what} must be floating point, got {t.dtype}")

    # ------------------------------------------------------------ training and evaluation

    def init_from(self, source: "Localiser") -> str:
        """Start from the trained ``source`` model, in place; returns how, for logs.

        The same model: its weights are copied. A model named in ``init_sources``:
        the model's own rule (e.g. FlowGrad-IC from RCGrad). Raises InitError for
        any other source, or weights of another size.
        """
        if type(source) is type(self):
            try:
                self.load_state_dict(source.state_dict())
            except RuntimeError:
                raise InitError(f"the {source.name} weights have other shapes than this {self.name}; "
                                 "create both with the same config (e.g. width)") from None
            return f"{source.name} weights"
        if source.name in self.init_sources:
            return self._init_from_source(source)
        others = f" or a {' / '.join(self.init_sources)} one" if self.init_sources else ""
        raise InitError(f"a {source.name} checkpoint cannot initialise {self.name}; give a {self.name} "
                         f"checkpoint{others}")

    def _init_from_source(self, source: "Localiser") -> str:  # pragma: no cover - only with init_sources
        raise NotImplementedError

    def init_flow_filters_from_rgb(self) -> None:
        """Set the flow input filters from the RGB filters (the papers' initialisation), in place.
        Raises ValueError for a model without flow filters (``has_flow_filters`` False)."""
        raise ValueError(f"init_flow_filters_from_rgb: {self.name} has no flow filters (only models with "
                         f"has_flow_filters do)")

    def reference_twin(self) -> Optional["Localiser"]:
        """This model with the published post-processing (``reference_config``) and the same
        weights, in eval mode: ``self`` when the default already is it, None when the model has
        no reference mode."""
        if self.reference_config is None:
            return None
        if not self.reference_config:
            return self
        twin = type(self)(dataclasses.replace(self.config, **self.reference_config))
        twin.load_state_dict(self.state_dict())
        return twin.eval()

    @classmethod
    def derive(cls, base: "Localiser") -> "Localiser":
        """This model built from a trained ``derived_from`` model; ValueError where there is no such rule."""
        raise ValueError(f"{cls.name} is not derived from another model")


def check_wave(wave: torch.Tensor, who: str) -> None:
    """Raise ValueError unless ``wave`` is a (B, T) floating-point tensor."""
    if wave.ndim != 2 or not wave.is_floating_point():
        raise ValueError(f"{who}: wave must be (B, T) float, got {tuple(wave.shape)} {wave.dtype}")
