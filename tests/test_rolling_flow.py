"""RollingFlow on synthetic camera streams: a smooth texture translated at a known speed.

A whole-frame translation is what camera-shake compensation removes, so the tests of the raw flow
measurement turn it off (stabilise=False); the stabilise tests at the end turn it on."""
import math

import cv2
import numpy as np
import pytest
import torch

from flowgrad.flow import FarnebackParams, FlowResult, RollingFlow, RollingFlowConfig

W, H = 320, 240
VX, VY = 40.0, 16.0  # px/s of the full camera frame
MARGIN = 32  # px kept away from the border, where reflection breaks the translation


def _texture(w=W, h=H, seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.random((h, w)).astype(np.float32)
    # Smoothing keeps the texture band-limited, so sub-pixel warps interpolate
    # cleanly and Farneback's quadratic model fits.
    tex = cv2.GaussianBlur(noise, (0, 0), 2.5)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    return (tex * 255).astype(np.uint8)


TEX = _texture()


def _frame(t, vx=VX, vy=VY, tex=TEX, bgr=True):
    m = np.float32([[1, 0, vx * t], [0, 1, vy * t]])
    h, w = tex.shape
    g = cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return cv2.merge([g, g, g]) if bgr else g


def _interior_median(flow, frac_margin):
    _, h, w = flow.shape
    my, mx = int(h * frac_margin), int(w * frac_margin)
    inner = flow[:, my:h - my, mx:w - mx]
    return np.median(inner[0]), np.median(inner[1])


def _stream(rf, fps, seconds, **kw):
    results = []
    for i in range(int(round(fps * seconds))):
        results.append(rf.push(_frame(i / fps, **kw), i / fps))
    return results


def _expected_dt(fps, interval=0.125):
    # Ages available are k / fps; the rule takes the one closest to interval,
    # at least interval / 2, ties to the older.
    ages = [k / fps for k in range(1, 200) if k / fps >= interval / 2]
    best = min(abs(a - interval) for a in ages)
    return max(a for a in ages if abs(abs(a - interval) - best) < 1e-9)


@pytest.mark.parametrize("gaussian", [False, True])
def test_accuracy_full_resolution_30fps(gaussian):
    rf = RollingFlow(RollingFlowConfig(stabilise=False, farneback=FarnebackParams(gaussian=gaussian)))
    res = [r for r in _stream(rf, 30, 0.5) if r is not None]
    assert res, "no flow after 0.5 s at 30 fps"
    r = res[-1]
    assert isinstance(r, FlowResult)
    assert r.flow.shape == (2, H, W) and r.flow.dtype == np.float32
    assert abs(r.dt - 0.125) <= 1 / 30
    assert r.frame_hw == (H, W) and r.work_hw == (H, W)
    assert r.t_prev == pytest.approx(r.t - r.dt)
    dx, dy = _interior_median(r.flow, MARGIN / H)
    assert dx == pytest.approx(VX * r.dt, abs=0.15)
    assert dy == pytest.approx(VY * r.dt, abs=0.15)


def test_accuracy_half_working_resolution_is_reported_in_full_frame_pixels():
    cfg = RollingFlowConfig(stabilise=False, working_hw=(H // 2, W // 2))
    rf = RollingFlow(cfg)
    r = [x for x in _stream(rf, 30, 0.5) if x is not None][-1]
    assert r.flow.shape == (2, H // 2, W // 2)
    assert r.frame_hw == (H, W) and r.work_hw == (H // 2, W // 2)
    dx, dy = _interior_median(r.flow, MARGIN / H)
    assert dx == pytest.approx(VX * r.dt, abs=0.3)
    assert dy == pytest.approx(VY * r.dt, abs=0.3)
    pdx, pdy = _interior_median(r.per_interval(), MARGIN / H)
    assert pdx == pytest.approx(VX * 0.125, abs=0.3)  # 5 px
    assert pdy == pytest.approx(VY * 0.125, abs=0.3)  # 2 px


@pytest.mark.parametrize("fps", [5, 8, 25, 60])
def test_pairing_rule(fps):
    calls = []

    def fake(prev, nxt):
        calls.append(1)
        return np.zeros(prev.shape + (2,), np.float32)

    rf = RollingFlow(RollingFlowConfig(), flow_fn=fake)
    gray = TEX[:48, :64]
    want = _expected_dt(fps)
    dts, nones, computed = [], 0, 0
    for i in range(int(fps * 1.5)):
        t = i / fps
        r = rf.push(gray, t)
        if r is None:
            assert not computed, "None after flow had started on a regular stream"
            nones += 1
            continue
        computed += 1
        # While no frame is older than the best age, the oldest one (t = 0) is
        # the closest; once warm, every pair spans the same best age.
        if t <= want + 1e-9:
            assert r.dt == pytest.approx(t, abs=1e-9)
        if t >= 0.25:
            dts.append(r.dt)
    assert dts and all(d == pytest.approx(want, abs=1e-9) for d in dts)
    # First flow comes as soon as a frame is at least interval / 2 old.
    assert nones == math.ceil(0.0625 * fps - 1e-9)
    assert rf.stats.computed == computed == len(calls)
    if fps == 60:
        assert want == pytest.approx(8 / 60)  # 7/60 and 8/60 tie; older wins


def test_jitter_dt_stays_close_and_flow_scales_with_dt():
    rng = np.random.default_rng(1)
    rf = RollingFlow(RollingFlowConfig(stabilise=False))
    t, res = 0.0, []
    for _ in range(30):
        t += 1 / 30 + rng.uniform(-0.01, 0.01)
        r = rf.push(_frame(t), t)
        if r is not None and t >= 0.25:  # past warm-up, when only young frames exist
            res.append(r)
    assert res
    for r in res:
        assert abs(r.dt - 0.125) <= 0.03
    r = res[-1]
    dx, dy = _interior_median(r.flow, MARGIN / H)
    assert dx == pytest.approx(VX * r.dt, abs=0.2)
    assert dy == pytest.approx(VY * r.dt, abs=0.2)
    pdx, pdy = _interior_median(r.per_interval(), MARGIN / H)
    assert pdx == pytest.approx(5.0, abs=0.3) and pdy == pytest.approx(2.0, abs=0.3)


def test_dropped_frames_within_history():
    rf = RollingFlow(RollingFlowConfig(), flow_fn=lambda a, b: np.zeros(a.shape + (2,), np.float32))
    g = TEX[:48, :64]
    times = [0.0, 1 / 30, 2 / 30, 3 / 30, 4 / 30]
    for t in times:
        rf.push(g, t)
    # 0.3 s without frames: the nearest-to-0.125 s frame is now 0.3 s old.
    r = rf.push(g, 4 / 30 + 0.3)
    assert r is not None and r.dt == pytest.approx(0.3)
    assert rf.stats.gaps == 0
    r = rf.push(g, 4 / 30 + 0.3 + 1 / 30)
    assert r is not None and r.dt == pytest.approx(0.3 + 1 / 30)


def test_gap_longer_than_history_clears():
    rf = RollingFlow(RollingFlowConfig(stabilise=False, history_s=1.0))
    _stream(rf, 30, 0.5)
    assert rf.stats.computed > 0
    t = 0.5 + 2.0
    assert rf.push(_frame(t), t) is None
    assert rf.stats.gaps == 1 and len(rf) == 1
    r = None
    for i in range(1, 6):
        r = rf.push(_frame(t + i / 30), t + i / 30)
    assert r is not None and r.t_prev >= t


def test_out_of_order_and_duplicate_timestamps_ignored():
    rf = RollingFlow(RollingFlowConfig(), flow_fn=lambda a, b: np.zeros(a.shape + (2,), np.float32))
    g = TEX[:48, :64]
    for i in range(6):
        rf.push(g, i / 30)
    n = len(rf)
    assert rf.push(g, 5 / 30) is None  # duplicate
    assert rf.push(g, 2 / 30) is None  # from the past
    assert rf.stats.out_of_order == 2 and len(rf) == n
    assert rf.stats.pushed == 8
    assert rf.push(g, 6 / 30) is not None


def test_resolution_change_resets():
    rf = RollingFlow(RollingFlowConfig(stabilise=False))
    _stream(rf, 30, 0.3)
    small = _texture(160, 120, seed=3)
    t0 = 0.3
    assert rf.push(_frame(t0, tex=small), t0) is None
    assert rf.stats.resets == 1 and rf.frame_hw == (120, 160)
    r = None
    for i in range(1, 6):
        r = rf.push(_frame(t0 + i / 30, tex=small), t0 + i / 30)
    assert r is not None
    assert r.frame_hw == (120, 160) and r.flow.shape == (2, 120, 160)
    # A gray frame of the same size is the same camera: no reset.
    rf.push(_frame(t0 + 6 / 30, tex=small, bgr=False), t0 + 6 / 30)
    assert rf.stats.resets == 1


def test_history_is_bounded():
    cfg = RollingFlowConfig(stabilise=False, history_s=10.0, max_frames=64)
    rf = RollingFlow(cfg, flow_fn=lambda a, b: np.zeros(a.shape + (2,), np.float32))
    g = TEX[:24, :32]
    longest = 0
    for i in range(2000):
        rf.push(g, i / 60)
        longest = max(longest, len(rf))
    assert longest <= 64
    # With the default 1 s history, 60 fps keeps about 61 frames, never more.
    rf = RollingFlow(RollingFlowConfig(), flow_fn=lambda a, b: np.zeros(a.shape + (2,), np.float32))
    for i in range(2000):
        rf.push(g, i / 60)
        assert len(rf) <= 61
    assert rf.stats.computed == 2000 - 4


@pytest.mark.parametrize("kind", ["numpy", "torch", "torch_batched"])
def test_flow_fn_output_scaled_to_full_frame(kind):
    seen = []

    def fake(prev, nxt):
        seen.append((prev.shape, prev.dtype, nxt.shape))
        h, w = prev.shape
        if kind == "numpy":
            out = np.empty((h, w, 2), np.float32)
            out[..., 0], out[..., 1] = 1.0, 2.0
            return out
        out = torch.stack([torch.ones(h, w), torch.full((h, w), 2.0)])
        return out[None] if kind == "torch_batched" else out

    cfg = RollingFlowConfig(stabilise=False, working_hw=(H // 2, W // 4), backend="torch")
    rf = RollingFlow(cfg, flow_fn=fake)
    r = [x for x in _stream(rf, 30, 0.3) if x is not None][-1]
    assert seen[0] == ((H // 2, W // 4), np.uint8, (H // 2, W // 4))
    assert r.flow.shape == (2, H // 2, W // 4) and r.flow.dtype == np.float32
    np.testing.assert_allclose(r.flow[0], 4.0)
    np.testing.assert_allclose(r.flow[1], 4.0)


def test_flow_fn_wrong_shape_raises():
    rf = RollingFlow(RollingFlowConfig(), flow_fn=lambda a, b: np.zeros((3, 3, 2), np.float32))
    g = TEX[:48, :64]
    rf.push(g, 0.0)
    with pytest.raises(ValueError, match="flow_fn"):
        rf.push(g, 0.1)


def test_bad_input_raises():
    rf = RollingFlow()
    with pytest.raises(ValueError, match="uint8"):
        rf.push(TEX.astype(np.float32), 0.0)
    with pytest.raises(ValueError, match="shape"):
        rf.push(np.zeros((H, W, 4), np.uint8), 0.0)
    with pytest.raises(ValueError, match="shape"):
        rf.push(np.zeros((2, H, W, 3), np.uint8), 0.0)
    with pytest.raises(ValueError, match="finite"):
        rf.push(TEX, float("nan"))
    with pytest.raises(ValueError, match="finite"):
        rf.push(TEX, float("inf"))
    with pytest.raises(ValueError):
        rf.push(TEX, "0.1")
    assert rf.stats.pushed == 0 and len(rf) == 0


@pytest.mark.parametrize("kwargs", [
    dict(interval_s=0.0), dict(interval_s=float("nan")), dict(history_s=0.1),
    dict(working_hw=(10, 0)), dict(working_hw=(10,)), dict(working_hw=(2, 1.5)),
    dict(backend="cuda"), dict(max_frames=1), dict(farneback=dict(levels=3)), dict(compile=True),
])
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        RollingFlowConfig(**kwargs)


@pytest.mark.parametrize("kwargs", [
    dict(pyr_scale=1.0), dict(levels=-1), dict(winsize=0), dict(iterations=0),
    dict(poly_sigma=0.0), dict(poly_n=6), dict(levels=2.0),
])
def test_farneback_params_validation(kwargs):
    with pytest.raises(ValueError):
        FarnebackParams(**kwargs)


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_torch_backend_matches_opencv_backend(compile):
    results = {}
    for backend in ("opencv", "torch"):
        config = RollingFlowConfig(stabilise=False, backend=backend, working_hw=(64, 96), compile=compile and backend == "torch")
        results[backend] = [r for r in _stream(RollingFlow(config), 30, 0.4) if r is not None]
    assert len(results["torch"]) == len(results["opencv"]) > 0
    for a, b in zip(results["torch"], results["opencv"]):
        assert a.dt == b.dt
        d = np.abs(a.flow - b.flow)
        assert d.mean() < 0.01 and np.abs(b.flow).max() > 1.0


def test_reset_clears():
    rf = RollingFlow(RollingFlowConfig(stabilise=False, working_hw=[48, 64]))
    assert rf.config.working_hw == (48, 64)
    _stream(rf, 30, 0.3)
    assert len(rf) > 1
    rf.reset()
    assert len(rf) == 0
    assert rf.push(_frame(0.0), 0.0) is None  # earlier t accepted after reset


def _square_frame(x0, size=(160, 120), side=24):
    img = np.full((size[1], size[0]), 40, np.uint8)
    img[48:48 + side, x0:x0 + side] = 220
    return cv2.GaussianBlur(img, (0, 0), 1.5)


def test_newest_anchor_samples_the_flow_on_the_newest_frame():
    """A square at x=40 then x=52: "older" moves where it was, "newest" where it is now,
    and both point forwards in time (+x)."""
    older, newest = _square_frame(40), _square_frame(52)
    results = {}
    for anchor in ("older", "newest"):
        rf = RollingFlow(RollingFlowConfig(stabilise=False, anchor=anchor))
        rf.push(older, 0.0)
        results[anchor] = rf.push(newest, 0.125).flow
    rows = slice(52, 68)
    # Farneback smears motion ~10 px past the edges; these columns move in one pairing only.
    only_old, only_new = slice(32, 38), slice(78, 84)
    for anchor, here, not_here in (("older", only_old, only_new), ("newest", only_new, only_old)):
        u = results[anchor][0]
        assert np.median(u[rows, here]) > 4, anchor
        assert np.abs(u[rows, not_here]).mean() < np.median(u[rows, here]) / 2, anchor


def test_anchor_validation():
    with pytest.raises(ValueError, match="anchor"):
        RollingFlowConfig(anchor="middle")


def _shaken_stream(base, n, seed=0):
    """n frames of `base` (real footage, gray) each moved by a random camera shake: a shift of up to 3 px
    and a rotation of up to 1 degree about the centre."""
    rng = np.random.default_rng(seed)
    h, w = base.shape
    for _ in range(n):
        a = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-1, 1), 1.0)
        a[:, 2] += rng.uniform(-3, 3, 2)
        yield cv2.warpAffine(base, a, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.skipif(__import__("bench.footage").footage.bikes_path() is None, reason="bikes.mp4 not installed")
def test_stabilise_removes_camera_shake_from_a_static_real_scene():
    from bench.footage import bikes_path
    cap = cv2.VideoCapture(str(bikes_path()))
    for _ in range(61):
        ok, frame = cap.read()
    cap.release()
    base = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    medians = {}
    for stabilise in (False, True):
        rf = RollingFlow(RollingFlowConfig(stabilise=stabilise))
        mags = []
        for i, f in enumerate(_shaken_stream(base, 12)):
            r = rf.push(f, i / 24)
            if r is not None:
                mags.append(np.median(np.hypot(*r.flow[:, 40:-40, 40:-40])))
        medians[stabilise] = float(np.median(mags))
        assert rf.stats.stabilise_fallbacks == 0
    assert medians[False] > 2.0
    assert medians[True] < 1.0 and medians[True] < 0.3 * medians[False]


def test_stabilise_falls_back_on_a_blank_stream_and_counts_it():
    rf = RollingFlow(RollingFlowConfig(stabilise=True))
    blank = np.full((120, 160), 90, np.uint8)
    results = [rf.push(blank, i / 24) for i in range(8)]
    computed = sum(r is not None for r in results)
    assert computed > 0 and rf.stats.stabilise_fallbacks == computed == rf.stats.computed
    assert all(np.all(r.flow == 0) for r in results if r is not None)


def test_stabilise_must_be_a_bool():
    with pytest.raises(ValueError, match="stabilise must be a bool"):
        RollingFlowConfig(stabilise=1)


def test_the_camera_s_displacement_comes_in_full_frame_pixels_and_reaches_the_memory():
    # The texture pans VX, VY px/s of the full frame: each pair's camera displacement is that times its
    # spacing, whatever the working size; the memory is given the previous sample's (its pair ends on this
    # sample's older frame) and a blank stream's fallback gives it none.
    fps = 8
    rf = RollingFlow(RollingFlowConfig(working_hw=(H // 2, W // 2), motion_memory_s=5.0))
    given = []
    update = rf._memory.update
    rf._memory.update = lambda *a, **k: given.append(a[4]) or update(*a, **k)
    results = [r for r in (rf.push(_frame(k / fps, bgr=False), k / fps) for k in range(6)) if r is not None]
    assert len(results) == 5 and rf.stats.stabilise_fallbacks == 0
    for r in results:
        np.testing.assert_allclose(r.camera, (VX * r.dt, VY * r.dt), atol=0.15)
    assert given == [None] + [r.camera for r in results[:-1]]
    blank = RollingFlow(RollingFlowConfig())
    assert [blank.push(np.full((120, 160), 90, np.uint8), k / fps) for k in range(2)][1].camera is None
    unstable = RollingFlow(RollingFlowConfig(stabilise=False))
    assert [unstable.push(_frame(k / fps, bgr=False), k / fps) for k in range(2)][1].camera is None
