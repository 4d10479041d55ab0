"""Pictures an operator can read: a heatmap blended over its camera frame, with a
caption band under it that names the stream, the model and the capture time, says
what the map heard (sounding score, level) when the message carries it, and shows the
colour scale.

Used by the run's snapshot (``run_live.py --snapshot``), the recorded overlay
video (``python -m realtime.subscribe ADDRESS --record out.mp4``) and the still
demo (``python -m realtime.demo``), so all three draw the same colours.
"""
from __future__ import annotations

import datetime as dt
from typing import Sequence

import cv2
import numpy as np

OPACITY = 0.45  # weight of the colour map in the blend: the street stays readable under it
# A quiet map (nothing heard sounding: docs/PROTOCOL.md) is drawn this much fainter, as the dashboard does.
QUIET_FADE = 0.25
SCALE_LABEL = "relative sound-source likelihood"
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE = (255, 255, 255)


def map_opacity(quiet: bool | None, opacity: float = OPACITY) -> float:
    """The blend weight of a message's map: ``opacity``, times QUIET_FADE when the message is
    quiet (its sounding score below the publisher's --min-score); None (no score) is not quiet."""
    return opacity * (QUIET_FADE if quiet is True else 1.0)


def colourise(heatmap: np.ndarray, size_hw: tuple[int, int] | None = None) -> np.ndarray:
    """(h, w) float map in [0, 1] -> (H, W, 3) uint8 BGR in OpenCV's JET colour map.

    size_hw: (H, W) in pixels to resize the map to first (bilinear); None keeps (h, w).
    """
    heat = np.asarray(heatmap, np.float32)
    if size_hw is not None:
        # cv2.resize's dsize is (width, height).
        heat = cv2.resize(heat, size_hw[::-1], interpolation=cv2.INTER_LINEAR)
    return cv2.applyColorMap(np.rint(np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)


def blend(frame_bgr: np.ndarray, heatmap: np.ndarray, opacity: float = OPACITY,
          threshold: float = 0.0) -> np.ndarray:
    """The frame with the heatmap stretched over it in the JET colour map.

    frame_bgr: (H, W, 3) uint8 BGR. heatmap: (h, w) float in [0, 1] covering the
    whole frame (resized to W x H, bilinear). Pixels whose map value is below
    ``threshold`` keep the frame; the others are (1 - opacity) * frame + opacity * colour.
    Returns a new (H, W, 3) uint8 BGR image.
    """
    h, w = frame_bgr.shape[:2]
    heat = cv2.resize(np.asarray(heatmap, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    colour = colourise(heat)
    mixed = cv2.addWeighted(frame_bgr, 1 - opacity, colour, opacity, 0)
    return np.where((heat >= threshold)[..., None], mixed, frame_bgr)


def capture_clock(unix_s: float) -> str:
    """UNIX seconds -> '2026-12-02 15:04:05.250 +0100' in this machine's local time, with its offset."""
    moment = dt.datetime.fromtimestamp(unix_s, dt.timezone.utc).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} " + moment.strftime("%z")


def caption_lines(stream: str, model: str, capture_time: float, score: float | None = None,
                  quiet: bool | None = None, level_db: float | None = None, level_ref: str | None = None) -> list[str]:
    """The caption of one map: the stream and model, the capture time (local, with offset), then,
    when the message has them, its sounding score (0 to 1; "quiet" below the run's --min-score)
    and the A-weighted level of the sound heard (dB in ``level_ref``'s unit)."""
    lines = [f"stream {stream}   model {model}", f"captured {capture_clock(capture_time)}"]
    heard = ([] if score is None else [f"sounding score {score:.2f}{' (quiet)' if quiet else ''}"]) + \
        ([] if level_db is None else [f"level {level_db:.1f} {level_ref}"])
    return lines + (["   ".join(heard)] if heard else [])


def message_caption(msg) -> list[str]:
    """:func:`caption_lines` of a heatmap message (realtime.protocol.Heatmap)."""
    return caption_lines(msg.stream, msg.model, msg.capture_time, msg.score, msg.quiet, msg.level_db, msg.level_ref)


def band_height(width: int) -> int:
    """Height in pixels of the caption band under a picture ``width`` pixels wide (even, as
    video encoders with 4:2:0 chroma need)."""
    return max(44, 2 * round(width * 0.045))


def with_caption(picture_bgr: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """The picture (H, W, 3) uint8 BGR with a black band of ``band_height(W)`` rows
    appended below: ``lines`` of text on the left, the colour scale from 0 to 1 on the right.

    The text is ASCII (OpenCV's Hershey font); lines too long for the band are cut.
    """
    h, w = picture_bgr.shape[:2]
    bh = band_height(w)
    band = np.zeros((bh, w, 3), np.uint8)
    font = 0.35 * bh / 44
    thick = 1
    row = bh / (len(lines) + 0.5) if lines else bh
    text_w = scale_box(w)[0] - 12
    for k, text in enumerate(lines):
        cv2.putText(band, _fit(text, text_w, font, thick), (6, round(row * (k + 0.75))), _FONT, font, _WHITE,
                    thick, cv2.LINE_AA)
    _draw_scale(band, font)
    return np.concatenate([picture_bgr, band], axis=0)


def scale_box(width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the colour bar inside the band of a picture ``width`` pixels wide;
    column x0 shows the colour of map value 0 and column x1 - 1 that of value 1."""
    bh = band_height(width)
    scale_w = width * 2 // 5
    x0 = width - scale_w - 6
    return x0, round(bh * 0.12), x0 + scale_w, round(bh * 0.45)


def _draw_scale(band: np.ndarray, font: float) -> None:
    """The JET bar from 0 (left) to 1 (right), ticks at 0, 0.5 and 1, and what the colour means."""
    bx0, y0, bx1, y1 = scale_box(band.shape[1])
    ramp = np.linspace(0, 1, bx1 - bx0, dtype=np.float32)[None, :].repeat(y1 - y0, axis=0)
    band[y0:y1, bx0:bx1] = colourise(ramp)
    label_y = round(band.shape[0] * 0.68)
    for value in (0.0, 0.5, 1.0):
        text = f"{value:g}"
        (tw, _), _ = cv2.getTextSize(text, _FONT, font, 1)
        x = min(max(bx0 + round(value * (bx1 - bx0 - 1)) - tw // 2, bx0), bx1 - tw)
        cv2.putText(band, text, (x, label_y), _FONT, font, _WHITE, 1, cv2.LINE_AA)
    cv2.putText(band, _fit(SCALE_LABEL, bx1 - bx0, font * 0.8, 1), (bx0, round(band.shape[0] * 0.92)), _FONT,
                font * 0.8, _WHITE, 1, cv2.LINE_AA)


def _fit(text: str, width: int, font: float, thick: int) -> str:
    """``text`` cut (with '...') to fit ``width`` pixels in the Hershey font."""
    if cv2.getTextSize(text, _FONT, font, thick)[0][0] <= width:
        return text
    while text and cv2.getTextSize(text + "...", _FONT, font, thick)[0][0] > width:
        text = text[:-1]
    return text + "..."
