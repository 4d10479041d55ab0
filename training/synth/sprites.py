"""Vehicle pictures: one textured BGR sprite and its mask per vehicle.

Classes: car, bus, truck, motorbike (an electric vehicle looks like its class) and
the silent movers bicycle and e-scooter (with their riders).
Sprites are drawn once per clip (vehicles keep their look) facing right and
mirrored for leftward traffic. Coordinates below are fractions of the sprite's
width ``w`` and height ``h`` so every class scales with depth.
"""
from __future__ import annotations

import cv2
import numpy as np

_GLASS = (70, 55, 45)
_TYRE = (25, 25, 25)
_HUB = (150, 150, 150)
_HEADLIGHT = (200, 230, 240)
_TAIL = (30, 30, 190)
# At night the body keeps this fraction of its brightness; lamps are lit.
NIGHT_LEVEL = 0.3
_LIT_HEAD = (235, 255, 255)
_LIT_TAIL = (60, 60, 255)


class _Canvas:
    """A sprite being drawn: picture, mask and lamp masks, drawn in step."""

    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.img = np.zeros((h, w, 3), np.uint8)
        self.mask = np.zeros((h, w), np.uint8)
        self.head = np.zeros((h, w), np.uint8)
        self.tail = np.zeros((h, w), np.uint8)

    def _pts(self, fractions) -> np.ndarray:
        return np.array([[round(fx * (self.w - 1)), round(fy * (self.h - 1))] for fx, fy in fractions], np.int32)

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour, layer: np.ndarray | None = None) -> None:
        self.poly(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), colour, layer)

    def poly(self, fractions, colour, layer: np.ndarray | None = None) -> None:
        pts = self._pts(fractions)
        cv2.fillPoly(self.img, [pts], colour)
        cv2.fillPoly(self.mask, [pts], 255)
        if layer is not None:
            cv2.fillPoly(layer, [pts], 255)

    def wheel(self, fx: float, radius: float) -> None:
        """A wheel touching the bottom edge; ``radius`` as a fraction of h."""
        r = max(1, round(radius * self.h))
        centre = (round(fx * (self.w - 1)), self.h - 1 - r)
        for colour, scale in ((_TYRE, 1.0), (_HUB, 0.45)):
            cv2.circle(self.img, centre, max(1, round(r * scale)), colour, -1)
            cv2.circle(self.mask, centre, max(1, round(r * scale)), 255, -1)


def _car(c: _Canvas, colour) -> None:
    c.rect(0.0, 0.42, 1.0, 0.82, colour)
    c.poly(((0.18, 0.44), (0.32, 0.03), (0.70, 0.03), (0.86, 0.44)), colour)
    c.poly(((0.24, 0.42), (0.35, 0.10), (0.49, 0.10), (0.49, 0.42)), _GLASS)
    c.poly(((0.52, 0.42), (0.52, 0.10), (0.67, 0.10), (0.79, 0.42)), _GLASS)
    c.rect(0.95, 0.48, 1.0, 0.58, _HEADLIGHT, c.head)
    c.rect(0.0, 0.48, 0.03, 0.60, _TAIL, c.tail)
    c.wheel(0.2, 0.21)
    c.wheel(0.8, 0.21)


def _bus(c: _Canvas, colour) -> None:
    c.rect(0.0, 0.04, 1.0, 0.88, colour)
    for k in range(7):
        x0 = 0.06 + 0.115 * k
        c.rect(x0, 0.15, x0 + 0.095, 0.45, _GLASS)
    c.rect(0.88, 0.12, 0.99, 0.55, _GLASS)
    c.rect(0.80, 0.50, 0.86, 0.86, (60, 60, 60))
    c.rect(0.88, 0.05, 0.99, 0.11, (20, 160, 220))
    c.rect(0.97, 0.68, 1.0, 0.76, _HEADLIGHT, c.head)
    c.rect(0.0, 0.66, 0.015, 0.78, _TAIL, c.tail)
    c.wheel(0.15, 0.12)
    c.wheel(0.76, 0.12)


def _truck(c: _Canvas, colour, box_colour) -> None:
    c.rect(0.0, 0.0, 0.70, 0.80, box_colour)
    c.rect(0.02, 0.45, 0.68, 0.52, colour)
    c.poly(((0.72, 0.20), (0.92, 0.20), (1.0, 0.48), (1.0, 0.84), (0.72, 0.84)), colour)
    c.poly(((0.76, 0.26), (0.90, 0.26), (0.96, 0.46), (0.76, 0.46)), _GLASS)
    c.rect(0.66, 0.76, 1.0, 0.86, (50, 50, 50))
    c.rect(0.97, 0.60, 1.0, 0.70, _HEADLIGHT, c.head)
    c.rect(0.0, 0.66, 0.015, 0.76, _TAIL, c.tail)
    for fx in (0.12, 0.28, 0.86):
        c.wheel(fx, 0.12)


def _motorbike(c: _Canvas, colour, rider) -> None:
    c.poly(((0.22, 0.70), (0.40, 0.52), (0.72, 0.52), (0.82, 0.70), (0.55, 0.78)), colour)
    c.rect(0.36, 0.16, 0.56, 0.55, rider)
    c.poly(((0.50, 0.22), (0.72, 0.38), (0.68, 0.44), (0.48, 0.32)), rider)
    c.rect(0.42, 0.00, 0.60, 0.16, (30, 30, 30))
    c.rect(0.88, 0.48, 0.98, 0.58, _HEADLIGHT, c.head)
    c.rect(0.08, 0.54, 0.14, 0.62, _TAIL, c.tail)
    c.wheel(0.18, 0.20)
    c.wheel(0.82, 0.20)


def _spoked_wheel(c: _Canvas, fx: float, radius: float) -> None:
    """A thin bicycle wheel (tyre ring, hub) touching the bottom edge; ``radius`` as a fraction of h."""
    r = max(2, round(radius * c.h))
    centre = (round(fx * (c.w - 1)), c.h - 1 - r)
    thick = max(1, r // 5)
    for layer in (c.img, c.mask):
        cv2.circle(layer, centre, r, _TYRE if layer is c.img else 255, thick)
        cv2.circle(layer, centre, max(1, r // 4), _HUB if layer is c.img else 255, -1)


def _line(c: _Canvas, a, b, colour, width: float) -> None:
    """A stroke from fraction ``a`` to ``b``, ``width`` a fraction of w."""
    pts = c._pts((a, b))
    thick = max(1, round(width * c.w))
    cv2.line(c.img, tuple(pts[0]), tuple(pts[1]), colour, thick)
    cv2.line(c.mask, tuple(pts[0]), tuple(pts[1]), 255, thick)


def _bicycle(c: _Canvas, colour, rider) -> None:
    """A cyclist seen side-on: two thin wheels, a diamond frame, a seated rider."""
    _spoked_wheel(c, 0.2, 0.19)
    _spoked_wheel(c, 0.8, 0.19)
    for a, b in (((0.2, 0.8), (0.45, 0.8)), ((0.45, 0.8), (0.72, 0.58)), ((0.72, 0.58), (0.40, 0.58)),
                 ((0.40, 0.58), (0.2, 0.8)), ((0.40, 0.58), (0.45, 0.8)), ((0.72, 0.58), (0.8, 0.8))):
        _line(c, a, b, colour, 0.04)
    c.poly(((0.34, 0.58), (0.46, 0.58), (0.62, 0.22), (0.50, 0.18)), rider)  # back, leaning forward
    _line(c, (0.58, 0.24), (0.74, 0.50), rider, 0.06)  # arm to the handlebar
    _line(c, (0.42, 0.58), (0.50, 0.80), (40, 40, 40), 0.07)  # leg to the pedal
    c.rect(0.50, 0.02, 0.68, 0.17, (30, 30, 30))  # helmet / head
    c.rect(0.76, 0.52, 0.82, 0.58, _HEADLIGHT, c.head)
    c.rect(0.30, 0.52, 0.35, 0.57, _TAIL, c.tail)


def _scooter(c: _Canvas, colour, rider) -> None:
    """An e-scooter with a standing rider: small wheels, a low deck, a tall stem."""
    c.wheel(0.15, 0.07)
    c.wheel(0.85, 0.07)
    c.rect(0.12, 0.86, 0.80, 0.91, colour)  # deck
    _line(c, (0.82, 0.88), (0.74, 0.30), colour, 0.06)  # stem
    _line(c, (0.64, 0.30), (0.84, 0.30), (40, 40, 40), 0.06)  # handlebar
    c.rect(0.36, 0.48, 0.56, 0.86, (50, 50, 60))  # legs
    c.rect(0.34, 0.14, 0.58, 0.50, rider)  # body
    _line(c, (0.52, 0.22), (0.72, 0.32), rider, 0.08)  # arm
    c.rect(0.38, 0.0, 0.56, 0.13, (120, 160, 210))  # head
    c.rect(0.76, 0.34, 0.84, 0.40, _HEADLIGHT, c.head)
    c.rect(0.10, 0.80, 0.16, 0.86, _TAIL, c.tail)


def vehicle_sprite(kind: str, length: float, height: float, colour, direction: int, night: bool,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Picture of one vehicle: ((h, w, 3) uint8 BGR, (h, w) bool mask).

    ``length``/``height`` in pixels (rounded to the sprite size); facing right
    for ``direction`` +1, left for -1. Body pixels get a little fixed noise so
    optical flow has texture to track; at night the body is dimmed and the
    head and tail lamps are lit.
    """
    c = _Canvas(max(4, round(length)), max(4, round(height)))
    if kind == "car":
        _car(c, colour)
    elif kind == "bus":
        _bus(c, colour)
    elif kind == "truck":
        _truck(c, colour, tuple(int(v) for v in rng.integers(150, 240, 3)))
    elif kind == "motorbike":
        _motorbike(c, colour, tuple(int(v) for v in rng.integers(20, 120, 3)))
    elif kind == "bicycle":
        _bicycle(c, colour, tuple(int(v) for v in rng.integers(20, 200, 3)))
    elif kind == "e-scooter":
        _scooter(c, colour, tuple(int(v) for v in rng.integers(20, 200, 3)))
    else:
        raise ValueError(f"unknown vehicle class {kind!r}")
    img = np.clip(c.img.astype(np.int16) + rng.integers(-10, 11, c.img.shape), 0, 255).astype(np.uint8)
    if night:
        img = (img * NIGHT_LEVEL).astype(np.uint8)
        img[c.head > 0] = _LIT_HEAD
        img[c.tail > 0] = _LIT_TAIL
    mask = c.mask > 0
    if direction < 0:
        img, mask = img[:, ::-1].copy(), mask[:, ::-1].copy()
    return img, mask
