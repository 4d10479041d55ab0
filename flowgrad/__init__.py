"""FlowGrad Live core: models, audio front-ends, maps and checkpoints.

Pure computation on torch tensors; no threads, devices or sockets here (those
live in the ``realtime`` package), and nothing here imports the application
packages (``realtime``, ``export``, ``training``).
"""

__version__ = "0.1.0"
