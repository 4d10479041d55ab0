"""The localiser registry: one table of models, one factory, one contract.

>>> from flowgrad import models
>>> models.names()
['flow_only', 'flowgrad_en', 'flowgrad_h', 'flowgrad_ic', 'htf', 'rcgrad']
>>> m = models.create("flowgrad_en", width=0.25)

Every model follows :mod:`flowgrad.models.base` (shapes, dtypes, colour order,
units) and carries what the rest of the project needs to know about it (its
name, export-friendly paths, training objective and initialisation rules,
reference mode, published forms): nothing outside this package tests a model's
name. Export, the live engine and the tests loop over :func:`names`.
"""
from __future__ import annotations

import dataclasses

from .base import InitError, Localiser, PublishedForm
from .flow_only import FlowOnly
from .flowgrad_family import (FlowGradEN, FlowGradH, FlowGradIC, RCGrad, derive_flowgrad_h, init_flow_filters_from_rgb,
                              init_from_rcgrad)
from .htf import HearTheFlow

# Each class carries its own registry name (and everything else known about it).
_MODELS: dict[str, type[Localiser]] = {cls.name: cls for cls in (RCGrad, FlowGradH, FlowGradIC, FlowGradEN,
                                                                  HearTheFlow, FlowOnly)}


def names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def model_class(name: str) -> type[Localiser]:
    """The class of registry model ``name`` (its class attributes describe it without building it).
    Raises ValueError for an unknown name."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(names())}")
    return _MODELS[name]


def config_class(name: str):
    """The configuration dataclass of model ``name``."""
    return model_class(name).Config


def create(name: str, **config) -> Localiser:
    """Build registry model ``name`` with its config fields set from keywords, in eval mode.

    Lists given for tuple fields are accepted (checkpoints store JSON-like values).
    Raises ValueError for an unknown name or an unknown config field.
    """
    cls = model_class(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f"{name}: unknown config field(s) {unknown}; valid: {sorted(fields)}")
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    return cls(cls.Config(**config)).eval()


__all__ = ["Localiser", "InitError", "PublishedForm", "names", "model_class", "create", "config_class", "derive_flowgrad_h",
           "init_flow_filters_from_rgb", "init_from_rcgrad"]
