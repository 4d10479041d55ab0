"""The motion memory (flowgrad.flow.memory) against its decay formula, written out here independently; a square
that moved and stopped against one that drove on (no trail where the background shows again); and the live
(RollingFlow) and offline (training.data.windows.memory_flow) memories of the same clip against each other."""
import numpy as np
import pytest

from flowgrad.flow.memory import MotionMemory

DT = 0.125  # the flow rate's spacing, s
STILL = np.full((8, 10), 120, np.uint8)  # an unchanging picture: only the decay decides


def _moving_then_still(move_s, total_s, h=8, w=10, vec=(3.0, -4.0)):
    """A pixel block that moves (vec px per pair) until move_s, then stands still until total_s."""
    mem = MotionMemory(5.0)
    out = None
    for k in range(int(round(total_s / DT)) + 1):
        t = k * DT
        flow = np.zeros((2, h, w), np.float32)
        if t <= move_s + 1e-9:
            flow[0, 2:5, 3:6], flow[1, 2:5, 3:6] = vec
        out = mem.update(flow, t, STILL)
    return out


@pytest.mark.parametrize("ago", [0.0, 0.5, 1.25, 2.5, 4.0, 4.875, 5.0, 7.0])
def test_memory_of_a_pixel_that_moved_t_seconds_ago_is_its_linear_decay(ago):
    move_s = 1.0
    out = _moving_then_still(move_s, move_s + ago)
    expected = max(0.0, 1.0 - ago / 5.0)  # by hand: linear fade to zero over 5 s
    np.testing.assert_allclose(out[0, 2:5, 3:6], 3.0 * expected, atol=1e-6)
    np.testing.assert_allclose(out[1, 2:5, 3:6], -4.0 * expected, atol=1e-6)
    still = np.ones((8, 10), bool)
    still[2:5, 3:6] = False
    assert not out[:, still].any()


def test_current_motion_wins_over_a_faded_stronger_one():
    mem = MotionMemory(5.0)
    mem.update(np.full((2, 4, 4), 10.0, np.float32), 0.0, STILL)  # |peak| = 14.14
    out = mem.update(np.full((2, 4, 4), 8.0, np.float32), 3.0, STILL)  # faded peak 5.66 < 11.31
    np.testing.assert_allclose(out, 8.0)
    out = mem.update(np.zeros((2, 4, 4), np.float32), 4.0, STILL)
    np.testing.assert_allclose(out, 8.0 * (1 - 1.0 / 5.0), rtol=1e-6)


def test_a_stronger_recent_peak_is_kept_over_a_weaker_current_motion():
    mem = MotionMemory(5.0)
    mem.update(np.full((2, 4, 4), 10.0, np.float32), 0.0, STILL)
    out = mem.update(np.full((2, 4, 4), 1.0, np.float32), 1.0, STILL)
    np.testing.assert_allclose(out, 10.0 * 0.8, rtol=1e-6)


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


def test_time_must_increase_and_seconds_must_be_positive():
    mem = MotionMemory()
    mem.update(np.zeros((2, 2, 2), np.float32), 1.0, STILL)
    with pytest.raises(ValueError, match="t must increase"):
        mem.update(np.zeros((2, 2, 2), np.float32), 1.0, STILL)
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="seconds"):
            MotionMemory(bad)
        with pytest.raises(ValueError, match="change"):
            MotionMemory(5.0, bad)
    with pytest.raises(ValueError, match="no flow"):
        MotionMemory().field()


H, W, SIDE, V = 60, 80, 20, 2  # grid, square side (px), its speed (px per pair)


def _square_scene(x_of_t, times, h=H, w=W, shift_of_t=lambda t: 0):
    """Pictures and exact flows of a bright square (rows 20:40) at column x_of_t(t) on a grey road with a
    few darker marks, the picture shifted shift_of_t(t) px sideways (residual shake), sampled on each pair's
    older frame as RollingFlow's are: yields (t, flow (2, h, w), picture (h, w) uint8)."""
    for t in times:
        x, shift = x_of_t(t), shift_of_t(t)
        pic = np.full((h, w), 100, np.uint8)
        pic[::7, :] = 80  # road marks: texture that a shift changes locally
        pic[20:20 + SIDE, x:x + SIDE] = 200
        pic = np.roll(pic, shift, axis=1)
        flow = np.zeros((2, h, w), np.float32)
        flow[0, 20:20 + SIDE, x + shift:x + shift + SIDE] = x_of_t(t + DT) - x
        yield t, flow, pic


def _run(scene):
    mem = MotionMemory(5.0)
    out = None
    for t, flow, pic in scene:
        out = mem.update(flow, t, pic)
    return out


@pytest.mark.parametrize("ago", [0.5, 2.0, 4.0])
def test_a_square_that_moved_then_stopped_keeps_its_memory_by_the_decay_formula(ago):
    stop_k = 10  # moves V px per pair until pair 10 (t = 1.25 s), then stands at column 5 + 10 * V
    times = [k * DT for k in range(int(round((stop_k * DT + ago) / DT)) + 1)]
    out = _run(_square_scene(lambda t: 5 + V * min(round(t / DT), stop_k), times))
    last_motion = (stop_k - 1) * DT  # the pair from 1.125 s to 1.25 s is the last one with motion
    expected = V * max(0.0, 1.0 - (times[-1] - last_motion) / 5.0)  # by hand, the linear fade
    x = 5 + V * stop_k
    inside = out[0, 20 + 3:20 + SIDE - 3, x + 3:x + SIDE - 3]  # away from the blurred edges
    np.testing.assert_allclose(inside, expected, atol=1e-6)
    assert not out[1].any()


def test_a_square_that_drove_on_leaves_no_memory_where_the_road_shows_again():
    # The old memory (no appearance) kept V * (1 - 2 / 5) = 1.2 px along the whole path here.
    times = [k * DT for k in range(33)]  # 4 s at V px per pair: from column 2 to 66 (leaves the grid)
    out = _run(_square_scene(lambda t: 2 + V * round(t / DT) if t < 2.0 else 2 + V * 16 + 200, times))
    mag = np.hypot(out[0], out[1])
    assert not mag.any()  # the square left 2 s ago: the road shows everywhere again
    times = [k * DT for k in range(17)]  # still on screen at the end, at column 34
    out = _run(_square_scene(lambda t: 2 + V * round(t / DT), times))
    mag = np.hypot(out[0], out[1])
    assert mag[20:40, 34:34 + SIDE].min() == pytest.approx(V)  # the square itself: its current motion
    behind = np.zeros_like(mag, bool)
    behind[20:40, 2:34 - V - 1] = True  # the path, back from its rear by the held step and the 1 px shift tolerance
    assert not mag[behind].any()


def test_a_still_square_on_a_shaking_picture_keeps_its_memory():
    times = [k * DT for k in range(25)]
    out = _run(_square_scene(lambda t: 30 + (V if t >= DT else 0), times, shift_of_t=lambda t: round(t / DT) % 2))
    expected = V * (1.0 - (times[-1] - 0.0) / 5.0)  # the one motion, pair 0, faded 3 s
    np.testing.assert_allclose(out[0, 23:37, 35:47], expected, atol=1e-6)


def _stop_clip(path):
    """8 fps fixture video: the textured square moves 2 px per frame for 3 s, then stands still."""
    from helpers import moving_square_frames, write_video
    moving = moving_square_frames(8, 2, 24)
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
    offline = memory_flow(t, cfg, lambda tk: compute_flow(video, tk, dataclasses.replace(cfg, motion_memory_s=0.0))[1],
                          video)

    rolling = RollingFlow(RollingFlowConfig(motion_memory_s=5.0))
    live = None
    for ft, frame in read_frames(video, [k / 8 for k in range(int((t + 0.125) * 8) + 1)]):
        result = rolling.push(frame, ft)
        live = result.memory if result is not None else live  # the pair (t, t + 0.125) comes last
    assert rolling.stats.stabilise_fallbacks == 0
    live = prepare_flow(torch.from_numpy(live), cfg.input_size)[0]

    mag_off, mag_live = offline.norm(dim=0), live.norm(dim=0)
    expected = 2.0 * (1 - 1.75 / 5.0)  # 2 px per pair, faded 1.75 s
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

    def flow_fn(prev, nxt):  # 1 px of motion while the newer frame is in [0.25 s, 1 s) (its value, 6 to 23)
        return np.full(prev.shape + (2,), 1.0 if 6 <= nxt[0, 0] < fps else 0.0, np.float32)

    rf = RollingFlow(RollingFlowConfig(stabilise=False, motion_memory_s=5.0), flow_fn=flow_fn)
    sampled, r = [], None
    for i in range(3 * fps):
        r = rf.push(np.full((8, 8), i, np.uint8), i / fps)
        if r is not None and (not sampled or rf._memory.t != sampled[-1]):
            sampled.append(rf._memory.t)
    assert np.allclose(np.diff(sampled), 0.125)  # every 3rd frame of a 24 fps camera
    last_motion = max(s for s in sampled if s < 1.0)
    np.testing.assert_allclose(r.memory, 1.0 * (1 - (sampled[-1] - last_motion) / 5.0), rtol=1e-5)
    assert rf.push(np.full((8, 8), 99, np.uint8), 10.0) is None and rf.stats.gaps == 1
    r = rf.push(np.full((8, 8), 99, np.uint8), 10.125)
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
