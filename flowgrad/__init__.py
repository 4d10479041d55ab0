"""FlowGrad Live core: models, audio front-ends, maps, checkpoints and the inference engine.

Pure computation on torch tensors; no threads, devices or sockets here (those
live in the ``realtime`` package), and nothing here imports the application
packages (``realtime``, ``export``, ``training``; tests/test_imports.py checks).
What they share lives here: the model registry (:mod:`flowgrad.models`: each
model carries everything known about it), the file formats (:mod:`checkpoint`,
:mod:`published`, :mod:`onnx_meta`), :mod:`files` (atomic writes),
:mod:`assets` (shipped paths) and :mod:`errors` (the one error root).
"""

__version__ = "0.1.0"
