"""The localiser registry: one table of models, one factory, one contract.

>>> from flowgrad import models
>>> models.names()
['flow_only', 'flowgrad_en', 'flowgrad_h', 'flowgrad_ic', 'htf', 'rcgrad']
>>> m = models.create("flowgrad_en", width=0.25)

Every model follows :mod:`flowgrad.models.base` (shapes, dtypes, colour order,
units); export, the live engine and the tests loop over :func:`names`.
"""
from __future__ import annotations

import dataclasses

from .base import Localiser
from .flow_only import FlowOnly
from .flowgrad_family import FlowGradEN, FlowGradH, FlowGradIC, RCGrad
from .htf import HearTheFlow

_MODELS: dict[str, type[Localiser]] = {
    "rcgrad": RCGrad,
    "flowgrad_h": FlowGradH,
    "flowgrad_ic": FlowGradIC,
    "flowgrad_en": FlowGradEN,
    "htf": HearTheFlow,
    "flow_only": FlowOnly,
}


def names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def config_class(name: str):
    """The configuration dataclass of model ``name``."""
    return _model_class(name).Config


def create(name: str, **config) -> Localiser:
    """Build registry model ``name`` with its config fields set from keywords.

    Lists given for tuple fields are accepted (checkpoints store JSON-like values).
    Raises ValueError for an unknown name or an unknown config field.
    """
    cls = _model_class(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f"{name}: unknown config field(s) {unknown}; valid: {sorted(fields)}")
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    model = cls(cls.Config(**config))
    model.name = name
    return model.eval()


def _model_class(name: str) -> type[Localiser]:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(names())}")
    return _MODELS[name]


__all__ = ["Localiser", "names", "create", "config_class"]
