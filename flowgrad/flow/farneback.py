"""Gunnar Farneback dense optical flow in torch, following OpenCV step by step.

Every model we ship was defined on ``cv2.calcOpticalFlowFarneback`` output, so
this re-implementation reproduces OpenCV's algorithm (REFERENCE section 4): the
pyramid level rule, the level-0 3-tap blur, the replicate/reflect borders, the
border weights and the 1e-3 in the 2x2 solve. It runs on any torch device and
on a batch of frame pairs in one call (the GPU path for many camera streams).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

_MIN_SIZE = 32  # OpenCV stops adding pyramid levels below this many pixels
_BORDER_WEIGHTS = (0.14, 0.14, 0.4472, 0.4472, 0.4472)


@dataclass(frozen=True)
class FarnebackParams:
    """OpenCV's parameters; defaults are the papers' (REFERENCE section 4).

    pyr_scale: image scale (< 1) between pyramid levels.
    levels: maximum number of levels above the full-resolution one.
    winsize: averaging window, pixels (odd values behave as OpenCV's).
    iterations: solver iterations per level.
    poly_n: half-size of the polynomial-expansion neighbourhood (5 or 7).
    poly_sigma: Gaussian sigma of the polynomial expansion, pixels.
    gaussian: Gaussian instead of box averaging window (OPTFLOW_FARNEBACK_GAUSSIAN).
    """

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2
    gaussian: bool = False

    def __post_init__(self):
        for name in ("levels", "winsize", "iterations", "poly_n"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name} must be an int, got {v!r}")
        if not 0 < self.pyr_scale < 1:
            raise ValueError(f"pyr_scale must be in (0, 1), got {self.pyr_scale}")
        if self.levels < 0 or self.iterations < 1:
            raise ValueError("levels must be >= 0 and iterations >= 1")
        if self.winsize < 1:
            raise ValueError(f"winsize must be >= 1, got {self.winsize}")
        if self.poly_n not in (5, 7):
            raise ValueError(f"poly_n must be 5 or 7, got {self.poly_n}")
        if self.poly_sigma <= 0:
            raise ValueError(f"poly_sigma must be > 0, got {self.poly_sigma}")

    def opencv_kwargs(self) -> dict:
        """Keyword arguments for ``cv2.calcOpticalFlowFarneback`` with these parameters."""
        import cv2  # only the OpenCV path needs it

        flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if self.gaussian else 0
        return dict(pyr_scale=self.pyr_scale, levels=self.levels, winsize=self.winsize,
                    iterations=self.iterations, poly_n=self.poly_n, poly_sigma=self.poly_sigma, flags=flags)


def farneback(
    prev: torch.Tensor,
    next: torch.Tensor,
    *,
    pyr_scale: float = 0.5,
    levels: int = 3,
    winsize: int = 15,
    iterations: int = 3,
    poly_n: int = 5,
    poly_sigma: float = 1.2,
    gaussian: bool = False,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Dense flow from ``prev`` to ``next``, as ``cv2.calcOpticalFlowFarneback``.

    prev, next: grayscale frames, (H, W) or (B, H, W), uint8 or floating point
        (same scale as uint8: 0..255), on any device.
    dtype: computation and output dtype; float32 (the default, as OpenCV) or
        float64 (for parity studies; slower, and unavailable on some GPUs).
    Returns (B, 2, H, W) ``dtype`` on the frames' device: (dx, dy) in pixels of
    the input frames, OpenCV's convention (next(x + dx, y + dy) ~ prev(x, y);
    x to the right, y down).
    Raises ValueError for mismatched, empty, too small or non-finite frames.
    """
    params = FarnebackParams(pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, gaussian)
    return Farneback(params, dtype=dtype)(prev, next)


class Farneback:
    """:func:`farneback` with its parameters fixed, optionally fused by ``torch.compile``.

    params: Farneback parameters (the papers' when None).
    dtype: computation and output dtype, as in :func:`farneback`.
    compile: compile each pyramid level's polynomial expansion and the two halves
        of each solver iteration with ``torch.compile``. Memory traffic, not
        arithmetic, bounds this algorithm: eagerly one 1280x720 pair allocates
        ~2.9 GB of temporaries in ~3,000 kernels, which fusion should cut to far
        fewer (unmeasured on a GPU); that is what a GPU needs. On a 2-core CPU it takes 12-47 % off. Each
        (batch size, frame size) compiles on first use (tens of seconds, once per
        process); torch falls back to eager, with a warning, beyond 8 graphs per
        step, i.e. 2 (batch, size) pairs at 4 pyramid levels, so keep batch sizes
        fixed (:class:`realtime.batching.BatchingFlow` pads its batches).

    ``Farneback(params)(prev, next)`` takes and returns what :func:`farneback` does.
    """

    def __init__(self, params: FarnebackParams | None = None, *, dtype: torch.dtype = torch.float32,
                 compile: bool = False) -> None:
        self.params = FarnebackParams() if params is None else params
        if not isinstance(self.params, FarnebackParams):
            raise ValueError(f"farneback: params must be a FarnebackParams, got {type(self.params).__name__}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"farneback: dtype must be torch.float32 or torch.float64, got {dtype}")
        self.dtype, self.compiled = dtype, bool(compile)
        self._poly = _poly_filters(self.params.poly_n, self.params.poly_sigma)
        # Static shapes: each level keeps its own specialised graph instead of one symbolic one
        # (symbolic sizes were 2x slower on a CPU). The pyramid blur stays eager: one channel,
        # and inductor's CPU code generator fails on its reflected border (torch 2.13).
        self._expand = torch.compile(_poly_exp, dynamic=False) if compile else _poly_exp
        self._update = torch.compile(_update_matrices, dynamic=False) if compile else _update_matrices
        self._refine = torch.compile(_refine, dynamic=False) if compile else _refine

    def __call__(self, prev: torch.Tensor, next: torch.Tensor) -> torch.Tensor:
        prev, next = _check_frames(prev, next)
        return self._pyramid(prev.to(self.dtype), next.to(self.dtype))

    def _pyramid(self, prev: torch.Tensor, next: torch.Tensor) -> torch.Tensor:
        p = self.params
        b, h, w = prev.shape
        levels, scale = 0, 1.0
        while levels < p.levels:
            scale *= p.pyr_scale
            if w * scale < _MIN_SIZE or h * scale < _MIN_SIZE:
                break
            levels += 1
        flow = None
        for k in range(levels, -1, -1):
            scale = p.pyr_scale**k
            size = (_cv_round(h * scale), _cv_round(w * scale))
            if flow is None:
                flow = prev.new_zeros(b, 2, *size)
            else:
                flow = F.interpolate(flow, size=size, mode="bilinear", align_corners=False) / p.pyr_scale
            level = _Level(self._expand(_pyramid_level(prev, scale, size), self._poly),
                           self._expand(_pyramid_level(next, scale, size), self._poly))
            m = self._update(level, flow)
            for i in range(p.iterations):
                flow = self._refine(m, flow, p)
                if i < p.iterations - 1:
                    m = self._update(level, flow)
        return flow


def _check_frames(prev: torch.Tensor, next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    frames = []
    for name, x in (("prev", prev), ("next", next)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"farneback: {name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3:
            raise ValueError(f"farneback: {name} must be (H, W) or (B, H, W) grayscale, got {tuple(x.shape)}")
        if x.dtype != torch.uint8 and not x.is_floating_point():
            raise ValueError(f"farneback: {name} must be uint8 or floating point, got {x.dtype}")
        frames.append(x.float())
    prev, next = frames
    if prev.shape != next.shape:
        raise ValueError(f"farneback: prev {tuple(prev.shape)} and next {tuple(next.shape)} differ in shape")
    if prev.device != next.device:
        raise ValueError(f"farneback: prev on {prev.device} and next on {next.device}")
    if prev.numel() == 0:
        raise ValueError("farneback: empty frames")
    h, w = prev.shape[-2:]
    if min(h, w) < 16:
        raise ValueError(f"farneback: frames of {w}x{h} are smaller than the 16-pixel minimum")
    if not (torch.isfinite(prev).all() and torch.isfinite(next).all()):
        raise ValueError("farneback: frames contain NaN or infinite values")
    return prev, next


def _cv_round(x: float) -> int:
    """cvRound: round half to even, as lrint."""
    return int(round(x))


def _correlate(x: torch.Tensor, taps: list[float], dim: int, mode: str) -> torch.Tensor:
    """Correlate axis ``dim`` (-1 = x, -2 = y) of (B, C, H, W) with odd-length ``taps``.

    A shift-and-add loop rather than conv2d: for thin 1-D kernels it is 6-7x
    faster on CPU (oneDNN handles 1xk depthwise kernels poorly) and gives the
    same sums. ``mode`` is the border: "reflect" (OpenCV's reflect-101) or "replicate".
    """
    r = len(taps) // 2
    y = F.pad(x, (r, r, 0, 0) if dim == -1 else (0, 0, r, r), mode=mode)
    n = x.shape[dim]
    out = y.narrow(dim, 0, n) * taps[0]
    for i in range(1, len(taps)):
        out.add_(y.narrow(dim, i, n), alpha=taps[i])
    return out


def _gaussian_kernel(ksize: int, sigma: float) -> list[float]:
    """cv::getGaussianKernel for float images (the fixed 3-tap table when sigma <= 0)."""
    if sigma <= 0 and ksize == 3:
        return [0.25, 0.5, 0.25]
    if sigma <= 0:
        sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    x = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma * sigma))
    return (g / g.sum()).float().tolist()


def _pyramid_level(img: torch.Tensor, scale: float, size: tuple[int, int]) -> torch.Tensor:
    """Full-resolution (B, H, W) -> blurred and resized (B, *size), as OpenCV builds each level."""
    sigma = (1.0 / scale - 1.0) * 0.5
    ksize = max(3, _cv_round(sigma * 5) | 1)
    kernel = _gaussian_kernel(ksize, sigma)
    x = _correlate(_correlate(img[:, None], kernel, -1, "reflect"), kernel, -2, "reflect")
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x[:, 0]


def _poly_filters(n: int, sigma: float):
    """1-D filters g, x g, x^2 g over x = -n..n and the inverse-moment entries."""
    x = torch.arange(-n, n + 1, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2 * sigma * sigma))
    g = (g / g.sum()).float().double()  # OpenCV stores the weights as float
    xg, xxg = (x * g).float().double(), (x * x * g).float().double()
    gy, gx = g[:, None], g[None, :]
    xx = x[None, :] ** 2
    yy = x[:, None] ** 2
    G = torch.zeros(6, 6, dtype=torch.float64)
    G[0, 0] = (gy * gx).sum()
    G[1, 1] = (gy * gx * xx).sum()
    G[3, 3] = (gy * gx * xx * xx).sum()
    G[5, 5] = (gy * gx * xx * yy).sum()
    G[2, 2] = G[0, 3] = G[0, 4] = G[3, 0] = G[4, 0] = G[1, 1]
    G[4, 4] = G[3, 3]
    G[3, 4] = G[4, 3] = G[5, 5]
    inv = torch.linalg.inv(G)
    ig = {"11": inv[1, 1].item(), "03": inv[0, 3].item(), "33": inv[3, 3].item(), "55": inv[5, 5].item()}
    return (g.float().tolist(), xg.float().tolist(), xxg.float().tolist()), ig


def _poly_exp(img: torch.Tensor, poly) -> torch.Tensor:
    """Polynomial expansion: (B, H, W) -> (B, 5, H, W) coefficients
    (linear y, linear x, yy, xx, xy), replicate border, as FarnebackPolyExp."""
    (g, xg, xxg), ig = poly
    x = img[:, None]
    # vertical pass: 0th, 1st and 2nd moments in y (replicate border)
    v0, v1, v2 = (_correlate(x, k, -2, "replicate") for k in (g, xg, xxg))
    # horizontal pass: b1 ~ 1, b2 ~ x, b3 ~ y, b4 ~ x^2, b5 ~ y^2, b6 ~ xy
    b1, b2, b4 = (_correlate(v0, k, -1, "replicate")[:, 0] for k in (g, xg, xxg))
    b3, b6 = (_correlate(v1, k, -1, "replicate")[:, 0] for k in (g, xg))
    b5 = _correlate(v2, g, -1, "replicate")[:, 0]
    return torch.stack(
        [b3 * ig["11"], b2 * ig["11"], b1 * ig["03"] + b5 * ig["33"], b1 * ig["03"] + b4 * ig["33"], b6 * ig["55"]],
        dim=1,
    )


def _refine(m: torch.Tensor, flow: torch.Tensor, p: FarnebackParams) -> torch.Tensor:
    """Window-average the (B, 5, H, W) system terms and solve: the refined (B, 2, H, W) flow."""
    return _solve(_window_average(m, p), flow)


def _border_scale(h: int, w: int, device) -> torch.Tensor:
    """(h, w) weights that damp the 5-pixel frame border, as OpenCV."""
    def axis(n):
        s = torch.ones(n, device=device)
        for i, v in enumerate(_BORDER_WEIGHTS):
            if i < n:
                s[i] = s[i] * v
            if n - 1 - i >= 0:
                s[n - 1 - i] = s[n - 1 - i] * v
        return s

    ys, xs = axis(h), axis(w)
    inner = torch.zeros(h, w, dtype=torch.bool, device=device)
    inner[5 : h - 5, 5 : w - 5] = True
    # OpenCV multiplies the per-axis weights only outside the inner rectangle
    scale = ys[:, None] * xs[None, :]
    return torch.where(inner, torch.ones_like(scale), scale)


class _Level:
    """What the update step needs of one pyramid level, made once per level rather than per iteration.

    r0, r1: (B, 5, H, W) coefficients of the two frames (r1 also flattened to
    (B, 5, H*W) for the bilinear gathers); xs, ys: pixel coordinates; scale: border weights.
    """

    def __init__(self, r0: torch.Tensor, r1: torch.Tensor) -> None:
        b, _, h, w = r0.shape
        dev, dt = r0.device, r0.dtype
        self.r0, self.flat1, self.shape = r0, r1.flatten(2), (b, h, w)
        self.xs = torch.arange(w, device=dev, dtype=dt)[None, None, :]
        self.ys = torch.arange(h, device=dev, dtype=dt)[None, :, None]
        self.scale = _border_scale(h, w, dev).to(dt)


def _update_matrices(level: _Level, flow: torch.Tensor) -> torch.Tensor:
    """The five terms (G11, G12, G22, h1, h2) of each pixel's 2x2 system, (B, 5, H, W)."""
    b, h, w = level.shape
    r0 = level.r0
    dx, dy = flow[:, 0], flow[:, 1]
    fx, fy = level.xs + dx, level.ys + dy
    x1, y1 = torch.floor(fx), torch.floor(fy)
    ax, ay = fx - x1, fy - y1
    x1, y1 = x1.long(), y1.long()
    inside = (x1 >= 0) & (x1 < w - 1) & (y1 >= 0) & (y1 < h - 1)
    idx = (y1.clamp(0, h - 2) * w + x1.clamp(0, w - 2)).view(b, 1, h * w)

    def tap(offset):  # the offset is added before expanding to 5 channels: 5x less index arithmetic
        return torch.gather(level.flat1, 2, (idx + offset).expand(-1, 5, -1)).view(b, 5, h, w)

    bx, by = 1 - ax, 1 - ay
    # In place where a fresh temporary would do: each one is a page-faulted allocation on a CPU.
    s = tap(0).mul_((bx * by)[:, None])
    s.add_(tap(1).mul_((ax * by)[:, None]))
    s.add_(tap(w).mul_((bx * ay)[:, None]))
    s.add_(tap(w + 1).mul_((ax * ay)[:, None]))
    ins = inside[:, None]
    r23 = torch.where(ins, s[:, :2], 0.0)
    r4 = torch.where(inside, s[:, 2].add_(r0[:, 2]).mul_(0.5), r0[:, 2])
    r5 = torch.where(inside, s[:, 3].add_(r0[:, 3]).mul_(0.5), r0[:, 3])
    r6 = torch.where(inside, s[:, 4].add_(r0[:, 4]).mul_(0.25), r0[:, 4] * 0.5)
    r2 = (r0[:, 0] - r23[:, 0]).mul_(0.5).addcmul_(r4, dy).addcmul_(r6, dx)
    r3 = (r0[:, 1] - r23[:, 1]).mul_(0.5).addcmul_(r6, dy).addcmul_(r5, dx)
    for t in (r2, r3, r4, r5, r6):
        t.mul_(level.scale)
    out = torch.empty_like(r0)
    # Written into the channels of one tensor rather than stacked; in place rather than out=
    # (torch.compile mishandles out= into a channel view).
    g11, g12, g22, h1, h2 = out.unbind(1)
    g11.copy_(r4).mul_(r4).addcmul_(r6, r6)
    g12.copy_(r4).add_(r5).mul_(r6)
    g22.copy_(r5).mul_(r5).addcmul_(r6, r6)
    h1.copy_(r4).mul_(r2).addcmul_(r6, r3)
    h2.copy_(r6).mul_(r2).addcmul_(r5, r3)
    return out


def _window_average(m: torch.Tensor, p: FarnebackParams) -> torch.Tensor:
    """Average the system terms over the winsize x winsize window (replicate border)."""
    r = p.winsize // 2
    if p.gaussian and r > 0:
        sigma = r * 0.3
        i = torch.arange(-r, r + 1, dtype=torch.float64)
        k = torch.exp(-(i**2) / (2 * sigma * sigma))
        taps = (k / k.sum()).float().tolist()
        return _correlate(_correlate(m, taps, -2, "replicate"), taps, -1, "replicate")
    n = 2 * r + 1
    return _box_sum(_box_sum(m, n, -2), n, -1) * (1.0 / (n * n))


def _box_sum(x: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """Sum over a centred window of odd width ``n`` along ``dim`` (replicate border).

    Built from sums of power-of-two widths (1, 2, 4, ...), each the previous one
    plus itself shifted: about 2 log2(n) additions instead of the n - 1 of a
    shift-and-add filter (6 instead of 14 for the papers' 15-pixel window).
    """
    r = n // 2
    y = F.pad(x, (r, r, 0, 0) if dim == -1 else (0, 0, r, r), mode="replicate")
    length = y.shape[dim]
    sums = {1: y}  # sums[w][i] = y[i] + ... + y[i + w - 1], valid for i < length - w + 1
    w = 1
    while 2 * w <= n:
        prev = sums[w]
        valid = length - 2 * w + 1
        sums[2 * w] = prev.narrow(dim, 0, valid) + prev.narrow(dim, w, valid)
        w *= 2
    out_len = x.shape[dim]
    out, offset = None, 0
    for width in sorted(sums, reverse=True):  # n in binary: the widest parts first
        if n - offset >= width:
            part = sums[width].narrow(dim, offset, out_len)
            out = part.clone() if out is None else out.add_(part)
            offset += width
    return out


def _solve(g: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Per-pixel 2x2 solve with OpenCV's 1e-3 regulariser -> (B, 2, H, W)."""
    # OpenCV solves in double; float32 loses digits in the determinant
    g11, g12, g22, h1, h2 = g.double().unbind(1)
    idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3)
    return torch.stack([(g11 * h2 - g12 * h1) * idet, (g22 * h1 - g12 * h2) * idet], 1).to(flow.dtype)
