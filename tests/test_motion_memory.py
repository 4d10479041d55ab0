"""The motion memory (flowgrad.flow.memory) against its decay formula, written out here independently; a square
that moved and stopped against one that drove on (no trail where the background shows again); and the live
(RollingFlow) and offline (training.data.windows.memory_flow) memories of the same clip against each other."""
import numpy as np
import pytest

from flowgrad.flow.memory import MotionMemory

DT = 0.125  # the flow rate's spacing, s
STILL = np.full((8, 10), 120, np.uint8)  # an unchanging, featureless picture: nothing differs from the background


def test_on_a_featureless_picture_the_memory_is_the_live_flow():
    # Nothing there differs from the background, so nothing is remembered: only the current motion shows.
    mem = MotionMemory(5.0)
    moving = np.zeros((2, 8, 10), np.float32)
    moving[:, 2:5, 3:6] = 3.0
    np.testing.assert_array_equal(mem.update(moving, 0.0, STILL), moving)
    assert not mem.update(np.zeros((2, 8, 10), np.float32), 0.5, STILL).any()


def test_non_finite_flow_counts_as_no_motion_and_shape_change_restarts():
    mem = MotionMemory(2.0)
    flow = np.full((2, 3, 3), np.nan, np.float32)
    flow[:, 0, 0] = 1.0
    out = mem.update(flow, 0.0, STILL)
    assert np.isfinite(out).all() and out[:, 0, 0].tolist() == [1.0, 1.0] and not out[:, 1:, 1:].any()
    out = mem.update(np.zeros((2, 5, 5), np.float32), 0.5, STILL)
    assert out.shape == (2, 5, 5) and not out.any()


@pytest.mark.parametrize("bad", [np.zeros((3, 4, 4)), np.zeros((4, 4)), [[0.0]]])
def test_bad_flow_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="flow must be"):
        MotionMemory().update(bad, 0.0, STILL)


@pytest.mark.parametrize("bad", [np.zeros((4, 4)), np.zeros((4, 4, 2), np.uint8), None])
def test_bad_frame_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="frame must be"):
        MotionMemory().update(np.zeros((2, 4, 4), np.float32), 0.0, bad)


def test_time_must_increase_and_the_options_must_be_in_range():
    mem = MotionMemory()
    mem.update(np.zeros((2, 2, 2), np.float32), 1.0, STILL)
    with pytest.raises(ValueError, match="t must increase"):
        mem.update(np.zeros((2, 2, 2), np.float32), 1.0, STILL)
    for bad in (0, -1.0, float("nan"), True):
        for name in ("seconds", "change", "moved_px", "level_quantile", "background_rate"):
            with pytest.raises(ValueError, match=name):
                MotionMemory(**{name: bad})
    for name in ("level_quantile", "background_rate"):
        with pytest.raises(ValueError, match=f"{name} must be .* <= 1"):
            MotionMemory(**{name: 1.5})
    with pytest.raises(ValueError, match="no flow"):
        MotionMemory().field()


H, W, SIDE, V = 60, 80, 20, 2  # grid, square side (px), its speed (px per pair)


def _scene(squares, times, h=H, w=W, shift_of_t=lambda t: 0, halo=0):
    """Pictures and exact flows of bright squares on a grey road with a few darker marks, the picture shifted
    shift_of_t(t) px sideways (residual shake), sampled on each pair's older frame as RollingFlow's are.
    squares: (top row, side, x_of_t) each, at column x_of_t(t). halo: the flow also covers this many road
    pixels around each moving square (Farneback's flow spreads so). Yields (t, flow (2, h, w), picture (h, w) uint8)."""
    for t in times:
        shift = shift_of_t(t)
        pic = np.full((h, w), 100, np.uint8)
        pic[::7, :] = 80  # road marks: texture that a shift changes locally
        for top, side, x_of_t in squares:
            pic[top:top + side, x_of_t(t):x_of_t(t) + side] = 200
        pic = np.roll(pic, shift, axis=1)
        flow = np.zeros((2, h, w), np.float32)
        for top, side, x_of_t in squares:
            x, step = x_of_t(t) + shift, x_of_t(t + DT) - x_of_t(t)
            if step:
                flow[0, max(top - halo, 0):top + side + halo, max(x - halo, 0):x + side + halo] = step
        yield t, flow, pic


def _square_scene(x_of_t, times, **kw):
    """:func:`_scene` of one square of side SIDE in rows 20:40."""
    return _scene([(20, SIDE, x_of_t)], times, **kw)


def _run(scene, cameras=None):
    """The memory after the scene's last sample; cameras: t -> the camera's (dx, dy) since the previous sample."""
    mem = MotionMemory(5.0)
    out = None
    for t, flow, pic in scene:
        out = mem.update(flow, t, pic, camera=None if cameras is None else cameras(t))
    return out


@pytest.mark.parametrize("halo", [0, 3])
@pytest.mark.parametrize("ago", [0.5, 2.0, 4.0, 4.875, 5.0])
def test_a_square_that_moved_then_stopped_keeps_its_memory_by_the_decay_formula(ago, halo):
    stop_k = 10  # moves V px per pair until pair 10 (t = 1.25 s), then stands at column 5 + 10 * V
    times = [k * DT for k in range(int(round((stop_k * DT + ago) / DT)) + 1)]
    out = _run(_square_scene(lambda t: 5 + V * min(round(t / DT), stop_k), times, halo=halo))
    last_motion = (stop_k - 1) * DT  # the pair from 1.125 s to 1.25 s is the last one with motion
    expected = V * max(0.0, 1.0 - (times[-1] - last_motion) / 5.0)  # by hand, the linear fade of the level V
    x = 5 + V * stop_k
    inside = out[0, 20 + 3:20 + SIDE - 3, x + 3:x + SIDE - 3]  # away from the blurred edges
    np.testing.assert_allclose(inside, expected, atol=1e-6)
    assert not out[1].any()
    # The road around it moved too with a halo (as Farneback's flow spreads), still looks like road, and
    # so is background: no memory there (the peak memory held V * decay on the halo: a ring round the car).
    road = np.ones((H, W), bool)
    road[20 - 2:20 + SIDE + 2, x - 2 - V:x + SIDE + 2] = False  # the square, its blurred edges, its last step
    assert not out[:, road].any()


def test_a_braking_square_counts_like_a_moving_one():
    # Square A brakes (4, 4, 4, 2, 1 px per pair) and stops; square B keeps driving at 6 px per pair. A's memory
    # is the level of the current motion (B's 6 px), faded from A's last motion of at least MOVED_PX (2 px), not
    # A's last, slow, speed.
    a_x = [5, 9, 13, 17, 19, 20]
    times = [k * DT for k in range(17)]
    out = _run(_scene([(4, SIDE, lambda t: a_x[min(round(t / DT), 5)]),
                       (40, 12, lambda t: 2 + 6 * round(t / DT))], times, w=160))
    expected = 6.0 * (1.0 - (times[-1] - 3 * DT) / 5.0)  # A last moved 2 px in the pair from 0.375 s to 0.5 s
    # A's final place (columns 20:40) beyond where it stood at the first update (5:25; what moved then is not
    # known background yet, so it shows nothing), away from the blurred edges.
    np.testing.assert_allclose(out[0, 4 + 3:4 + SIDE - 3, 25 + 3:40 - 3], expected, atol=1e-5)
    assert not out[:, 4:4 + SIDE, 5:20].any()
    np.testing.assert_allclose(out[0, 40 + 3:40 + 12 - 3, 98 + 3:98 + 12 - 3], 6.0)  # B: its live flow


def test_a_square_that_drove_on_leaves_no_memory_where_the_road_shows_again():
    # The memory without an appearance test kept V * (1 - 2 / 5) = 1.2 px along the whole path here.
    times = [k * DT for k in range(33)]  # 4 s at V px per pair: from column 2 to 66 (leaves the grid)
    out = _run(_square_scene(lambda t: 2 + V * round(t / DT) if t < 2.0 else 2 + V * 16 + 200, times))
    mag = np.hypot(out[0], out[1])
    assert not mag.any()  # the square left 2 s ago: the road shows everywhere again
    times = [k * DT for k in range(17)]  # still on screen at the end, at column 34
    out = _run(_square_scene(lambda t: 2 + V * round(t / DT), times, halo=3))
    mag = np.hypot(out[0], out[1])
    assert mag[20:40, 34:34 + SIDE].min() == pytest.approx(V)  # the square itself: its current motion
    behind = np.zeros_like(mag, bool)
    behind[:, :34 - V - 1 - 3] = True  # the path, back from its rear by the held step, the shift tolerance, the halo
    assert not mag[behind].any()


def test_a_square_that_stopped_on_a_shaking_picture_keeps_its_memory():
    times = [k * DT for k in range(25)]
    out = _run(_square_scene(lambda t: 10 + V * min(round(t / DT), 10), times, shift_of_t=lambda t: round(t / DT) % 2))
    expected = V * (1.0 - (times[-1] - 9 * DT) / 5.0)  # the last motion, pair 9, faded 1.875 s
    np.testing.assert_allclose(out[0, 23:37, 34:46], expected, atol=1e-6)


def _shaken_textured_scene(times, offset_of_t, stop_k=10):
    """A flat square (grey 230) on a textured road moving V px per pair until pair stop_k, the whole picture moved
    by offset_of_t(t) = (rows, columns), a shake far beyond the memory's tolerance (1 % of the grid). The flow is
    the compensated one: the square's own motion only. Yields (t, flow, picture) as _scene does."""
    from helpers import texture

    road = texture(H + 40, W + 40, 5)  # larger than the grid: a shifted crop has no wrapped edge

    def x_of(t):
        return 5 + V * min(round(t / DT), stop_k)

    for t in times:
        sy, sx = offset_of_t(t)
        pic = road.copy()
        pic[40:40 + SIDE, 20 + x_of(t):20 + x_of(t) + SIDE] = 230
        pic = pic[20 - sy:20 - sy + H, 20 - sx:20 - sx + W]
        flow = np.zeros((2, H, W), np.float32)
        if x_of(t + DT) != x_of(t):
            flow[0, 20 + sy:20 + sy + SIDE, x_of(t) + sx:x_of(t) + sx + SIDE] = V
        yield t, flow, pic


def test_a_square_that_stopped_under_a_strong_shake_keeps_its_memory_where_it_stands():
    # Jumps of up to 3 rows and 4 columns between samples; the camera's displacement since the previous sample
    # (what the stabiliser fits) moves the memory with the picture. Without it the held appearance sits off
    # the square by the shake and the memory is dropped (the last assertion).
    rng = np.random.default_rng(3)
    offsets = {k: (int(rng.integers(-3, 4)), int(rng.integers(-4, 5))) for k in range(25)}
    times = [k * DT for k in offsets]

    def offset(t):
        return offsets[round(t / DT)]

    def camera(t):  # (dx, dy) of the picture since the previous sample, px
        k = round(t / DT)
        return None if k == 0 else (offsets[k][1] - offsets[k - 1][1], offsets[k][0] - offsets[k - 1][0])

    out = _run(_shaken_textured_scene(times, offset), camera)
    expected = V * (1.0 - (times[-1] - 9 * DT) / 5.0)  # the last motion, pair 9, faded
    sy, sx = offsets[24]
    x = 5 + V * 10 + sx  # where the stopped square stands in the last picture
    edge = 3  # the appearance's blur and the tolerance at the square's edges
    inside = out[0, 20 + sy + edge:20 + sy + SIDE - edge, x + edge:x + SIDE - edge]
    np.testing.assert_allclose(inside, expected, atol=1e-6)
    assert not out[1].any()
    away = np.ones((H, W), bool)
    away[20 + sy - edge:20 + sy + SIDE + edge, x - edge:x + SIDE + edge] = False
    assert not out[:, away].any()  # nothing remembered on the road
    # Not followed, the shake erases most of it (64 % of the square's inside still held, measured).
    without = _run(_shaken_textured_scene(times, offset))
    assert (without[0, 20 + sy + edge:20 + sy + SIDE - edge, x + edge:x + SIDE - edge] > 0).mean() < 0.8


def test_a_camera_displacement_is_applied_in_whole_grid_pixels_with_its_remainder_carried():
    # A textured picture drifting 0.75 px per sample: the held square follows by 1, 1, 0, 1 px ... (carried
    # remainder) and stays on the square; steps under CAMERA_STEP_MIN (a still view's fit noise) move nothing.
    from flowgrad.flow.memory import CAMERA_STEP_MIN

    assert CAMERA_STEP_MIN > 0.3
    times = [k * DT for k in range(17)]
    drift = {k: (0, int(np.floor(0.75 * k))) for k in range(17)}
    out = _run(_shaken_textured_scene(times, lambda t: drift[round(t / DT)]),
               lambda t: None if t == 0 else (0.75, 0.0))
    x = 5 + V * 10 + drift[16][1]
    assert np.all(out[0, 24:36, x + 3:x + SIDE - 3] > 0) and not out[0, :, :x - 3].any()
    wobble = _run(_shaken_textured_scene(times, lambda t: (0, 0)), lambda t: (0.3, 0.0))
    still = _run(_shaken_textured_scene(times, lambda t: (0, 0)))
    np.testing.assert_array_equal(wobble, still)


def test_a_non_finite_camera_displacement_is_a_clear_error():
    mem = MotionMemory()
    mem.update(np.zeros((2, 4, 4), np.float32), 0.0, STILL)
    with pytest.raises(ValueError, match="camera must be"):
        mem.update(np.zeros((2, 4, 4), np.float32), 0.125, STILL, camera=(float("nan"), 0.0))


def _stop_clip(path):
    """8 fps fixture video: the textured square moves 4 px per frame for 3 s, then stands still."""
    from helpers import moving_square_frames, write_video
    moving = moving_square_frames(8, 4, 24)
    write_video(path, moving + [moving[-1]] * 24, 8)
    from training.data.media import probe_video
    return probe_video(path)


def test_live_and_offline_memories_agree_on_the_same_clip(tmp_path):
    import dataclasses

    import torch

    from flowgrad.flow import RollingFlow, RollingFlowConfig
    from flowgrad.inputs import prepare_flow
    from training.data import DataConfig
    from training.data.media import read_frames
    from training.data.windows import compute_flow, memory_flow

    video = _stop_clip(tmp_path / "stop.mp4")
    cfg = DataConfig(motion_memory_s=5.0)
    t = 4.5  # 1.75 s after the square's last motion pair (2.75 s)
    offline = memory_flow(t, cfg, lambda tk: compute_flow(video, tk, dataclasses.replace(cfg, motion_memory_s=0.0)),
                          video)

    rolling = RollingFlow(RollingFlowConfig(motion_memory_s=5.0))
    live = None
    for ft, frame in read_frames(video, [k / 8 for k in range(int((t + 0.125) * 8) + 1)]):
        result = rolling.push(frame, ft)
        live = result.memory if result is not None else live  # the pair (t, t + 0.125) comes last
    assert rolling.stats.stabilise_fallbacks == 0
    live = prepare_flow(torch.from_numpy(live), cfg.input_size)[0]

    mag_off, mag_live = offline.norm(dim=0), live.norm(dim=0)
    expected = 4.0 * (1 - 1.75 / 5.0)  # 4 px per pair, faded 1.75 s
    assert float(mag_off.max()) == pytest.approx(expected, abs=0.3)
    # Live keeps the memory on the flow grid and resamples it; offline resamples each pair first. The appearance
    # test then decides a few pixels differently where the textured square's trail crosses the textured
    # background at the edge of the change threshold (measured: 2.6 % of the pixels, mean 0.009 px, 0.7 %).
    diff = (mag_off - mag_live).abs()
    assert float((diff > 0.05 * expected).float().mean()) < 0.04
    assert float(diff.mean()) < 0.02 * expected
    assert float(torch.quantile(mag_off.flatten(), 0.99)) == pytest.approx(float(torch.quantile(mag_live.flatten(), 0.99)),
                                                                           rel=0.02)
    assert float((offline - live).abs().mean()) < 0.01


def test_rolling_flow_samples_the_memory_at_the_flow_rate_and_forgets_it_on_a_gap():
    from flowgrad.flow import RollingFlow, RollingFlowConfig

    fps = 24

    def flow_fn(prev, nxt):  # 2 px of motion while the newer frame is in [0.25 s, 1 s) (its value, 6 to 23)
        return np.full(prev.shape + (2,), 2.0 if 6 <= nxt[23, 23] < fps else 0.0, np.float32)

    def frame(i):  # grey road with the frame's number in a corner; a bright block stands there from frame 3
        pic = np.full((24, 24), 50, np.uint8)
        pic[23, 23] = i
        pic[3:14, 3:14] = 200 if i >= 3 else 50  # under half of the median's sample: the road stays the median
        return pic

    rf = RollingFlow(RollingFlowConfig(stabilise=False, motion_memory_s=5.0), flow_fn=flow_fn)
    sampled, r = [], None
    for i in range(3 * fps):
        r = rf.push(frame(i), i / fps)
        if r is not None and (not sampled or rf._memory.t != sampled[-1]):
            sampled.append(rf._memory.t)
    assert np.allclose(np.diff(sampled), 0.125)  # every 3rd frame of a 24 fps camera
    last_motion = max(s for s in sampled if s < 1.0)
    # Everything moved, but only the block differs from the road learnt before: it alone keeps the memory
    # (checked where the held 2 px step still leads inside it, away from its blurred edges).
    np.testing.assert_allclose(r.memory[:, 5:10, 5:10], 2.0 * (1 - (sampled[-1] - last_motion) / 5.0), rtol=1e-5)
    assert not r.memory[:, :, 16:].any() and not r.memory[:, 16:, :].any()
    assert rf.push(frame(99), 10.0) is None and rf.stats.gaps == 1
    r = rf.push(frame(99), 10.125)
    assert not r.memory.any()


def test_dataset_memory_through_the_cache_equals_without_and_counts_pairs(tmp_path, urbansas):
    from training.data import DataConfig, UrbansasEval
    from training.data.flowcache import FlowCache

    cfg = DataConfig(motion_memory_s=5.0)
    plain, cached = UrbansasEval(urbansas, cfg), UrbansasEval(urbansas, cfg, cache=FlowCache(tmp_path / "c"))
    i = len(plain) - 1  # the latest pair: the most history
    a, b = plain[i], cached[i]
    assert a.t > 1.0
    # Cached pairs are float16: a near-tie between a held and a new vector may go the other way, and the
    # held one decides later replacements, so a few pixels differ beyond the rounding (0.05 % here).
    ma, mb = a.flow.norm(dim=0).numpy(), b.flow.norm(dim=0).numpy()
    off = np.abs(mb - ma) > 2 ** -9 * ma + 1e-3
    assert off.mean() < 0.002 and np.abs(mb - ma).mean() < 1e-3
    pairs = len([k for k in range(40) if a.t - k * 0.125 >= -1e-9])
    assert plain.flow_counts.pairs == pairs + 1  # the memory's pairs and the pair at t for its frame
    again = cached[i]
    assert cached.flow_counts.pairs == pairs and np.array_equal(again.flow.numpy(), b.flow.numpy())
    one = UrbansasEval(urbansas, DataConfig())[i]
    assert (a.flow.norm(dim=0) >= one.flow.norm(dim=0) - 1e-4).all()  # the memory holds at least the pair
