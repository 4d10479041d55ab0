"""The project's one size convention and the one reader of a person's "WxH".

In code every size is ``(H, W)``: height then width in pixels, as numpy and torch
shapes are, in names ending ``_hw``. People write resolutions width first
("1280x720"), so every command-line size option is a "WxH" string read by
:func:`parse_wxh` (or :func:`wxh_arg` for argparse) and shown by :func:`format_wxh`.
The two places a (W, H) pair is inherent convert at their boundary: OpenCV's
``dsize`` and the wire protocol's ``frame_size`` [W, H] (docs/PROTOCOL.md).
"""
from __future__ import annotations

import argparse
import re
from typing import Callable

from .errors import InputError

_WXH = re.compile(r"(\d+)[xX](\d+)")


class SizeError(InputError, ValueError):
    """A size a person gave is not "WxH" in whole pixels, or is below the minimum."""


def parse_wxh(text: str, *, minimum: int = 1) -> tuple[int, int]:
    """A person's "WxH" (width first, e.g. "1280x720") -> (H, W) in pixels.

    Surrounding spaces and an upper-case X are accepted. SizeError (an InputError and a
    ValueError) naming the text and an example when it is not two whole numbers joined
    by "x", or when either side is under ``minimum`` pixels.
    """
    match = _WXH.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise SizeError(f"size {text!r} is not WIDTHxHEIGHT in pixels, e.g. 320x180")
    width, height = int(match[1]), int(match[2])
    if min(width, height) < minimum:
        raise SizeError(f"size {text!r} is too small: it must be at least {minimum}x{minimum} px, "
                        f"e.g. {format_wxh((max(minimum, 180), max(minimum, 320)))}")
    return height, width


def format_wxh(size_hw: tuple[int, int]) -> str:
    """(H, W) in pixels -> "WxH", the way people write a resolution."""
    height, width = size_hw
    return f"{width}x{height}"


def wxh_arg(minimum: int = 1) -> Callable[[str], tuple[int, int]]:
    """An argparse ``type=`` reading "WxH" into (H, W) with :func:`parse_wxh`; its message
    becomes argparse's error (exit status 2)."""

    def parse(text: str) -> tuple[int, int]:
        try:
            return parse_wxh(text, minimum=minimum)
        except SizeError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = "WxH size"  # argparse names the type in some messages
    return parse
