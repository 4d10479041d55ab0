"""The motion memory (flowgrad.flow.memory) against its decay formula, written out here independently."""
import numpy as np
import pytest

from flowgrad.flow.memory import MotionMemory

DT = 0.125  # the flow rate's spacing, s


def _moving_then_still(move_s, total_s, h=8, w=10, vec=(3.0, -4.0)):
    """A pixel block that moves (vec px per pair) until move_s, then stands still until total_s."""
    mem = MotionMemory(5.0)
    out = None
    for k in range(int(round(total_s / DT)) + 1):
        t = k * DT
        flow = np.zeros((2, h, w), np.float32)
        if t <= move_s + 1e-9:
            flow[0, 2:5, 3:6], flow[1, 2:5, 3:6] = vec
        out = mem.update(flow, t)
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
    mem.update(np.full((2, 4, 4), 10.0, np.float32), 0.0)  # |peak| = 14.14
    out = mem.update(np.full((2, 4, 4), 8.0, np.float32), 3.0)  # faded peak 5.66 < 11.31
    np.testing.assert_allclose(out, 8.0)
    out = mem.update(np.zeros((2, 4, 4), np.float32), 4.0)
    np.testing.assert_allclose(out, 8.0 * (1 - 1.0 / 5.0), rtol=1e-6)


def test_a_stronger_recent_peak_is_kept_over_a_weaker_current_motion():
    mem = MotionMemory(5.0)
    mem.update(np.full((2, 4, 4), 10.0, np.float32), 0.0)
    out = mem.update(np.full((2, 4, 4), 1.0, np.float32), 1.0)
    np.testing.assert_allclose(out, 10.0 * 0.8, rtol=1e-6)


def test_non_finite_flow_counts_as_no_motion_and_shape_change_restarts():
    mem = MotionMemory(2.0)
    flow = np.full((2, 3, 3), np.nan, np.float32)
    flow[:, 0, 0] = 1.0
    out = mem.update(flow, 0.0)
    assert np.isfinite(out).all() and out[:, 0, 0].tolist() == [1.0, 1.0] and not out[:, 1:, 1:].any()
    out = mem.update(np.zeros((2, 5, 5), np.float32), 0.5)
    assert out.shape == (2, 5, 5) and not out.any()


@pytest.mark.parametrize("bad", [np.zeros((3, 4, 4)), np.zeros((4, 4)), [[0.0]]])
def test_bad_flow_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="flow must be"):
        MotionMemory().update(bad, 0.0)


def test_time_must_increase_and_seconds_must_be_positive():
    mem = MotionMemory()
    mem.update(np.zeros((2, 2, 2), np.float32), 1.0)
    with pytest.raises(ValueError, match="t must increase"):
        mem.update(np.zeros((2, 2, 2), np.float32), 1.0)
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="seconds"):
            MotionMemory(bad)
    with pytest.raises(ValueError, match="no flow"):
        MotionMemory().field()
