"""The project's one error root, shared by the core and every application package.

* :class:`FlowGradError`: every error this project raises on purpose. Each domain
  has its own subclass, defined next to the code that raises it (CheckpointError,
  SourceError, ProtocolError, ...).
* :class:`InputError`: what the user gave is wrong or missing (a file, an option, a
  device, a peer's bytes). Command-line tools print its message as one line and exit
  with status 2. Anything else that escapes a tool is a bug and shows as one
  (a traceback, exit status 1), never as "bad input".
"""
from __future__ import annotations

import re
from typing import Iterable


class FlowGradError(Exception):
    """Root of the errors this project raises on purpose; the message is one line."""


class InputError(FlowGradError):
    """Bad or missing input from the user: the message says what and how to fix it (exit status 2)."""


def one_line(error: BaseException | str) -> str:
    """The error's message (or a text) on one line: runs of whitespace, newlines included, become
    one space, and terminal colour codes (torch puts some in its messages) are dropped."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())


def listing(items: Iterable, limit: int = 5) -> str:
    """``items`` for a message: the first ``limit`` joined by ", ", then how many more there are."""
    items = list(items)
    shown = ", ".join(str(i) for i in items[:limit])
    if len(items) > limit:
        shown += f", ... ({len(items) - limit} more)"
    return shown
