"""Writing files so that a reader never sees half of one.

>>> with atomic_write("runs/best.ckpt") as handle:
...     torch.save(payload, handle)

The data goes to a temporary file next to the target (same directory, so the
final rename stays on one file system), is flushed and fsync'ed, and only then
replaces the target with ``os.replace``. An exception (or Ctrl-C) inside the
block removes the temporary file and leaves the old target untouched.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_write"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the block ends without an exception.

    Args:
        path: the file to write; its directory must exist.
        mode: "wb" (bytes) or "w" (text, UTF-8).

    Yields:
        The open temporary file.

    Raises:
        ValueError: ``mode`` is not "wb" or "w".
        OSError: the directory is not writable, the disk is full, ...; the old
            file at ``path``, if any, is kept.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    target = Path(os.path.abspath(os.fspath(path)))
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never write through a file (or link) someone else put there; 0o666 filtered by the umask.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
