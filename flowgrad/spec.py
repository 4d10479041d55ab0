"""How a model is named wherever one is chosen: ``BASE[+doa][+memory|+nomemory]``.

``run_live --model``, ``training.evaluate --model`` and ``export`` all take the same
spec: a checkpoint, an ONNX export (or its prefix), a registry name, or
``flowgrad_h:RCGRAD.ckpt``, followed by suffixes in any order:

* ``+doa``: the map times the direction heard by a microphone array, renormalised
  (flowgrad.spatial.with_doa); needs a geometry (``--mics``, or a dataset's
  ``annotations/array.json``).
* ``+memory`` / ``+nomemory``: feed the 5 s motion memory instead of one flow pair, or
  not (flowgrad.flow.memory); without either, the model's default.

A spec naming an existing file is that file, whatever it ends with.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from .errors import InputError

__all__ = ["ModelSpec", "SpecError", "parse_spec", "SUFFIXES"]

# suffix -> (field, value)
SUFFIXES = {"+doa": ("doa", True), "+memory": ("memory", True), "+nomemory": ("memory", False)}


class SpecError(InputError):
    """A model spec whose suffixes repeat or contradict each other."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec.

    base: the model itself (path, export prefix, registry name or ``NAME:CKPT``).
    doa: fuse the map with the direction of arrival.
    memory: motion memory on (True), off (False) or the model's default (None).
    """

    base: str
    doa: bool = False
    memory: Optional[bool] = None

    def __str__(self) -> str:
        memory = {None: "", True: "+memory", False: "+nomemory"}[self.memory]
        return f"{self.base}{'+doa' * self.doa}{memory}"


def parse_spec(spec: str) -> ModelSpec:
    """``spec`` split into its model and suffixes; SpecError for a suffix given twice or
    ``+memory`` with ``+nomemory``, or nothing before the suffixes."""
    spec = str(spec)
    if Path(spec).exists():
        return ModelSpec(spec)
    found: dict[str, object] = {}
    base = spec
    while True:
        suffix = next((s for s in SUFFIXES if base.endswith(s)), None)
        if suffix is None:
            break
        name, value = SUFFIXES[suffix]
        if name in found:
            raise SpecError(f"model {spec!r}: {suffix} conflicts with another {name} suffix; give each at most once")
        found[name] = value
        base = base[:-len(suffix)]
    if not base:
        raise SpecError(f"model {spec!r}: name a model before its suffixes (e.g. flow_only+doa)")
    return ModelSpec(base, **found)
