"""Camera-shake (ego-motion) compensation of one flow field.

A shaking or panning camera adds the same smooth motion to every pixel of a
distant scene. :func:`compensate` fits that motion robustly to a grid of flow
samples and subtracts it, so that what is left is the motion of things moving
relative to the background.

The model is a homography: for a scene far from the camera (a street seen from
a pole or a window) a camera rotation maps one frame onto the other by a
homography exactly, and it covers shift, in-plane rotation, zoom and the
perspective change of a small pan/tilt. An affine model cannot express the
last; a similarity (estimateAffinePartial2D) not even shear.

Guards, each tested: a still camera is kept when it explains the samples as
tightly as the fit (slow motion under ``reproj_px`` cannot bend the fit); a
fit whose inliers reach fewer than 5 of the frame's 3 x 3 parts is an object,
not the camera; with a frame, only clearly textured samples are fitted, since
Farneback reports ~0 on faint texture (a codec-flattened sky) whatever the
camera does. Farneback also reports only part of the camera's motion, or none,
where texture is weak, so the motion is subtracted at each pixel only as far as
it explains the flow there (the flow's projection on the segment from 0 to the
camera's displacement): such a pixel comes out ~0, not the camera motion's
negative, and no pixel comes out larger than its flow or its flow minus the
camera's motion. The price: a mover going against the camera's motion keeps
only |own| - |camera| of its motion (nothing when it is the slower), one going
along or across it keeps its own. Content the camera moved into or out of the
frame has no counterpart: within the camera's displacement plus ``edge_px`` of
an edge the flow is set to 0, a mover included.

Where it fails: the fit takes the dominant motion to be "the background".
When a vehicle fills most of the frame (over about half of the samples, and
rigid enough to fit one homography within ``reproj_px``), the fit follows the
vehicle. If the rest of the frame stands still (at least
``max_still_fraction`` of the samples have ~0 flow that the fit calls
outliers), a still camera explains that part and a shaking one cannot, so the
fit is refused: the flow comes back unchanged and the vehicle keeps its own
motion (``info.compensated`` False, a fallback). Only when the camera shakes
too, or the still part is under that fraction, does the fit follow the
vehicle: its flow becomes ~0 and the background keeps the part of its flow
that the vehicle's motion does not explain.
When neither the background nor the vehicle holds ``min_inlier_fraction`` of
the samples, no model is trusted and the flow also comes back unchanged. A
blank, textureless frame has no samples to fit and falls back. A shake under
about ``reproj_px / 4`` per pair is taken for a still camera and stays.

Units: flow in pixels of the grid it is sampled on, (dx, dy) per frame pair.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

# Denominator of the homography below which a pixel maps to (near) infinity:
# the model then folds the frame over, which no camera shake does.
_MIN_W = 1e-3
# Fewest of the frame's 3 x 3 parts the background fit's inliers must reach.
_MIN_CELLS = 5
# Shortest side, px, of a field worth a background fit (a few hundred grid samples).
_MIN_SIDE = 32


# Names this estimator and its settings in flow-cache keys: change it whenever compensate's
# result changes, so that entries made by an older version are not reused.
METHOD = "ransac-homography/6"
# StabiliseInfo.reason of a field a still camera explains as well as any fitted motion.
STILL = "ok: still camera"


@dataclass(frozen=True)
class StabiliseInfo:
    """What :func:`compensate` did to one flow field.

    compensated: True when the background motion was subtracted; False when the
        flow came back unchanged because the fit could not be trusted.
    inlier_fraction: fraction of the fitted (finite, textured) grid samples within reproj_px of the
        fitted model (0.0 when no model was found), in [0, 1].
    reason: "ok", STILL (nothing to subtract: a still camera explains the samples at least as
        tightly, within reproj_px / 4, as the fitted motion), or a short sentence saying why
        the flow was left unchanged.
    camera_px: (dx, dy) the camera's displacement of the picture over the pair, pixels of the
        flow's grid, averaged over the frame: the fitted motion for "ok", (0.0, 0.0) for STILL,
        None when the flow was left unchanged (the camera's motion is unknown).
    """

    compensated: bool
    inlier_fraction: float
    reason: str
    camera_px: Optional[tuple[float, float]] = None


def compensate(flow: np.ndarray, *, frame: np.ndarray | None = None, min_texture: float = 3e-4,
               step: int = 8, border: int = 16, reproj_px: float = 1.0, min_inliers: int = 24,
               min_inlier_fraction: float = 0.5,
               max_still_fraction: float = 0.1, edge_px: int = 16) -> tuple[np.ndarray, StabiliseInfo]:
    """Subtract the background's motion, fitted as a homography, from a flow field.

    flow: (2, H, W) float, (dx, dy) in pixels from the first frame to the second,
        sampled on the first frame's pixel grid.
    frame: optional (H, W) uint8 gray frame the flow is sampled on (its first
        frame). When given, only samples where it has texture in two directions
        (cv2.cornerMinEigenVal, 7 px block, >= min_texture) are fitted: Farneback
        reports ~0 flow on flat or faintly textured areas (sky, walls, blur), which
        would otherwise vote for a still camera, trip the large-object guard below
        or outvote the background.
    min_texture: that threshold, in cornerMinEigenVal's units for uint8 frames. 3e-4
        keeps edges, corners and a clear noise texture; it leaves out the 1e-4 to 2e-4
        that H.264 leaves of a noisy sky, which Farneback reports still under a shake
        of up to 10 px (synthetic shaken clips: such samples, 12 % of a frame, refused
        most of a clip's fits).
    step: spacing in pixels of the grid of samples the model is fitted to; a field
        under 160 px on its short side uses a finer one (short side / 20, at least 2),
        since a homography fitted to a few dozen samples bends to fit a moving object too.
    border: pixels skipped at each edge, where Farneback's flow is least reliable
        (a tenth of the short side at most).
    reproj_px: RANSAC threshold in pixels: a sample whose end point is within it
        of the model's prediction is an inlier (background).
    min_inliers: fewest inlier samples for the model to be trusted.
    min_inlier_fraction: smallest inlier fraction (of the fitted samples) for the
        model to be trusted; 0.5 means the background must be the majority.
    edge_px: after a compensation that moved the frame, the flow is set to 0 within
        the camera's displacement plus edge_px of each edge of the frame, where that
        displacement reaches reproj_px / 4 (16: Farneback's
        15 px window): that content entered or left the frame, and Farneback's flow
        there is an artefact of whatever it found instead (up to 14 px on a shifted real
        frame), which outgrew every vehicle of some shaken synthetic frames.
    max_still_fraction: largest fraction of the fitted samples that may stand
        still (flow within reproj_px of 0) while the fit calls them outliers; more
        means a still camera and a large moving object, and the fit is refused.
    Returns (flow_out, info): flow_out is a new (2, H, W) float32 array, flow minus
    the share in [0, 1] of the model's displacement that best explains it at each pixel
    (the flow's nearest point on the segment from 0 to that displacement) and 0 near the
    edges (edge_px), or an unchanged float32 copy when
    info.compensated is False (too few samples or inliers, no or a degenerate
    model). Non-finite samples are left out of the fit (and stay non-finite).
    Raises ValueError for a flow that is not a (2, H, W) array or a frame that is
    not (H, W) uint8.
    """
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[0] != 2:
        shape = getattr(flow, "shape", type(flow).__name__)
        raise ValueError(f"flow must be a (2, H, W) array, got {shape}")
    flow = np.array(flow, dtype=np.float32, copy=True)
    _, h, w = flow.shape

    def unchanged(reason: str, fraction: float = 0.0) -> tuple[np.ndarray, StabiliseInfo]:
        return flow, StabiliseInfo(False, fraction, reason)

    step = max(2, min(step, min(h, w) // 20))
    border = min(border, min(h, w) // 10)
    if min(h, w) < _MIN_SIDE:
        return unchanged(f"a {w}x{h} field is too small for a background fit (under {_MIN_SIDE} px)")
    ys, xs = np.mgrid[border:h - border:step, border:w - border:step]
    src = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    d = flow[:, ys.ravel(), xs.ravel()].T
    usable = np.isfinite(d).all(axis=1)
    texture = None
    if frame is not None:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (h, w):
            raise ValueError(f"frame must be a ({h}, {w}) uint8 gray array, got "
                             f"{getattr(frame, 'shape', type(frame).__name__)}")
        texture = cv2.cornerMinEigenVal(frame, 7, ksize=3)
        usable &= texture[ys.ravel(), xs.ravel()] >= min_texture
    src, d = src[usable], d[usable]
    n = len(src)
    if n < max(min_inliers, 4):
        return unchanged(f"too few finite, textured flow samples ({n}) for a background fit")

    hom, mask = cv2.findHomography(src, src + d, cv2.RANSAC, reproj_px)
    if hom is None or mask is None or not np.isfinite(hom).all():
        return unchanged("no background model found")
    inliers = int(mask.sum())
    fraction = inliers / n
    if inliers < min_inliers or fraction < min_inlier_fraction:
        return unchanged(f"background fit untrusted: {inliers} of {n} samples are inliers "
                         f"({fraction:.2f} < {min_inlier_fraction:g} or < {min_inliers})", fraction)

    # Shake moves every background pixel, so a still part the fit rejects is background seen
    # by a still camera: the "background" fitted is then a large moving object.
    inlier = mask.ravel().astype(bool)
    # Camera motion moves the whole picture: inliers crowded into a small part of it are an object.
    cells = np.unique((src[inlier, 1] * 3 // h) * 3 + src[inlier, 0] * 3 // w).size
    if cells < _MIN_CELLS:
        return unchanged(f"the fitted motion holds in {cells} of 9 parts of the frame only: an object, "
                         "not camera motion", fraction)
    still = int((~inlier & (np.hypot(d[:, 0], d[:, 1]) < reproj_px)).sum())
    if still >= max(min_inliers, max_still_fraction * n):
        return unchanged(f"a still part of the frame ({still} of {n} samples) contradicts the fit: "
                         "a large moving object, not camera motion", fraction)

    # A still camera is the simpler model: where it explains the samples as tightly as the fit,
    # keep it, so that slow motion under reproj_px cannot bend the fit towards a moving object.
    pred = cv2.perspectiveTransform(src[:, None], hom)[:, 0] - src
    tight = reproj_px / 4
    if (np.hypot(d[:, 0], d[:, 1]) < tight).sum() >= (np.hypot(*(d - pred).T) < tight).sum():
        return flow, StabiliseInfo(True, fraction, STILL, (0.0, 0.0))

    # A column and a row that broadcast to (H, W): half the work of a full grid.
    gy, gx = np.arange(h, dtype=np.float64)[:, None], np.arange(w, dtype=np.float64)[None, :]
    den = hom[2, 0] * gx + hom[2, 1] * gy + hom[2, 2]
    # findHomography scales the model so that hom[2, 2] == 1: den > 0 keeps the frame unfolded.
    if not np.all(den > _MIN_W):
        return unchanged("degenerate background model (folds the frame)", fraction)
    px = (hom[0, 0] * gx + hom[0, 1] * gy + hom[0, 2]) / den
    py = (hom[1, 0] * gx + hom[1, 1] * gy + hom[1, 2]) / den
    dx, dy = (px - gx).astype(np.float32), (py - gy).astype(np.float32)
    # Farneback reports a fraction of the camera's motion, or none, where texture is weak (a sky, a wall,
    # a night scene): subtract the camera's motion only as far as it explains the flow, i.e. the flow's
    # projection on the segment from 0 to the camera's displacement, so that such a pixel comes out ~0
    # instead of the camera motion's negative.
    norm = dx * dx + dy * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.clip((flow[0] * dx + flow[1] * dy) / norm, 0, 1)
    share[norm == 0] = 0  # no camera motion to subtract there
    flow[0] -= share * dx
    flow[1] -= share * dy
    # Near an edge the camera moved content into or out of the frame: those pixels have no counterpart in
    # the other frame and Farneback's window reports what it finds there instead (mirrored or new content).
    # Where the camera moved a pixel by less than a still camera's tolerance, nothing crossed the edge.
    to_x = np.minimum(gx, w - 1 - gx).astype(np.float32)  # distance to the nearest edge, px
    to_y = np.minimum(gy, h - 1 - gy).astype(np.float32)
    near = (np.abs(dx) + edge_px > to_x) | (np.abs(dy) + edge_px > to_y)
    near &= norm >= tight * tight
    flow *= ~near
    return flow, StabiliseInfo(True, fraction, "ok", (float(dx.mean()), float(dy.mean())))
