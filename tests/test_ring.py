"""AudioRing: wrap-around exactness, concurrency, downmix, int16 scaling, time alignment."""
import threading

import numpy as np
import pytest

from realtime.ring import AudioRing


def test_wraparound_matches_concatenation():
    rng = np.random.default_rng(0)
    ring = AudioRing(100, seconds=1.0)  # 100 samples
    blocks = [rng.standard_normal(n).astype(np.float32) for n in (30, 70, 45, 99, 1, 100, 13, 64)]
    history = []
    for i, b in enumerate(blocks):
        ring.write(b, end_time=None)
        history.append(b)
        ref = np.concatenate(history)
        for seconds in (0.01, 0.37, 1.0):
            n = round(seconds * 100)
            w = ring.latest(seconds)
            want = ref[-n:]
            # Left zero padding where fewer than n samples were ever written.
            want = np.concatenate([np.zeros(n - len(want), np.float32), want])
            np.testing.assert_array_equal(w.samples, want)
            assert w.filled == (len(ref) >= n)
    assert ring.total_samples == sum(len(b) for b in blocks)


def test_oversize_block_keeps_newest_and_is_counted():
    ring = AudioRing(10, seconds=1.0)
    block = np.arange(25, dtype=np.float32)
    ring.write(block, end_time=None)
    np.testing.assert_array_equal(ring.latest(1.0).samples, block[-10:])
    st = ring.stats
    assert (st.overruns, st.dropped_samples, st.written, st.blocks) == (1, 15, 25, 1)


def test_downmix_and_int16_scaling():
    ring = AudioRing(8, seconds=1.0)
    stereo = np.array([[1000, -1000], [32767, 32767], [-32768, 0], [0, 0]], np.int16)
    ring.write(stereo, end_time=None)
    expected = np.array([0.0, 32767 / 32768, -0.5, 0.0], np.float32)
    np.testing.assert_allclose(ring.latest(0.5).samples, expected, rtol=0, atol=1e-7)
    ring.write(np.array([[0.25, 0.75, -1.0]], np.float64), end_time=None)  # (1, 3): 3 channels
    assert ring.latest(0.125).samples[0] == pytest.approx(0.0)


@pytest.mark.parametrize(
    "block, match",
    [
        (np.zeros((4, 2, 1), np.float32), "shape"),
        (np.zeros(4, np.int32), "int32"),
        (np.array([0.0, np.nan], np.float32), "NaN"),
    ],
)
def test_bad_blocks_are_rejected(block, match):
    with pytest.raises(ValueError, match=match):
        AudioRing(8).write(block)


def test_reading_before_any_write_is_a_clear_error():
    with pytest.raises(ValueError, match="nothing written yet"):
        AudioRing(8).latest(0.5)


def test_time_alignment_with_frame_times():
    rate = 1000
    ring = AudioRing(rate, seconds=2.0)
    # 10 blocks of 100 samples; sample i is captured at 50 + i / rate seconds.
    signal = np.arange(1000, dtype=np.float32)
    for k in range(10):
        ring.write(signal[k * 100 : (k + 1) * 100], end_time=50.0 + ((k + 1) * 100 - 1) / rate)
    assert ring.time_of(0) == pytest.approx(50.0)
    assert ring.index_at(50.5) == pytest.approx(500.0)
    # A frame captured at 50.3005 s pairs with audio up to sample 300 (nearest).
    w = ring.latest(0.1, end_time=50.3005)
    np.testing.assert_array_equal(w.samples, signal[201:301])
    assert (w.start_time, w.end_time) == (pytest.approx(50.201), pytest.approx(50.300))
    assert w.filled
    # Later than the newest sample: the window ends at the newest sample.
    w = ring.latest(0.1, end_time=99.0)
    np.testing.assert_array_equal(w.samples, signal[900:])
    # Partly before the first sample: zero padding and not filled.
    w = ring.latest(0.1, end_time=50.049)
    np.testing.assert_array_equal(w.samples, np.concatenate([np.zeros(50, np.float32), signal[:50]]))
    assert not w.filled
    assert ring.stats.gaps == ring.stats.clock_jumps == 0


def test_gap_is_counted_and_filled_with_silence():
    ring = AudioRing(1000, seconds=1.0)
    ring.write(np.ones(100, np.float32), end_time=10.099)
    # Next block claims to end 0.3 s later than 100 more samples would: 200 samples lost.
    ring.write(np.full(100, 2.0, np.float32), end_time=10.399)
    st = ring.stats
    assert (st.gaps, st.gap_samples, st.written) == (1, 200, 400)
    w = ring.latest(0.4)
    np.testing.assert_array_equal(w.samples, np.concatenate([np.ones(100), np.zeros(200), np.full(100, 2.0)]))
    assert ring.time_of(399) == pytest.approx(10.399)
    assert ring.time_of(0) == pytest.approx(10.0)


def test_clock_jump_backwards_is_counted_and_reanchored():
    ring = AudioRing(1000, seconds=1.0)
    ring.write(np.ones(100, np.float32), end_time=10.099)
    ring.write(np.ones(100, np.float32), end_time=5.0)
    assert ring.stats.clock_jumps == 1
    assert ring.time_of(199) == pytest.approx(5.0)


def test_small_jitter_is_smoothed_not_counted():
    ring = AudioRing(1000, seconds=1.0)
    ring.write(np.ones(100, np.float32), end_time=10.099)
    ring.write(np.ones(100, np.float32), end_time=10.199 + 0.01)  # 10 ms late callback
    st = ring.stats
    assert st.gaps == st.clock_jumps == 0 and st.written == 200
    # Only a small fraction of the 10 ms is believed.
    assert 10.199 < ring.time_of(199) < 10.199 + 0.005


def test_concurrent_reader_never_sees_torn_windows():
    """The writer appends a continuing ramp; every window read must be a contiguous ramp."""
    ring = AudioRing(1000, seconds=0.5)
    n_blocks, block = 3000, 37
    stop = threading.Event()
    errors = []

    def writer():
        for k in range(n_blocks):
            ring.write(np.arange(k * block, (k + 1) * block, dtype=np.float64).astype(np.float32), None)
        stop.set()

    def reader():
        reads = 0
        while not stop.is_set() or reads == 0:
            try:
                w = ring.latest(0.4).samples
            except ValueError:  # nothing written yet
                continue
            reads += 1
            held = w[w != 0] if not w.all() else w  # zero padding only at the very start
            if held.size and not np.array_equal(np.diff(held), np.ones(held.size - 1, np.float32)):
                errors.append(held.copy())
                return

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert not errors, f"torn window starting at {errors[0][:3]}"
    np.testing.assert_array_equal(ring.latest(0.5).samples, np.arange(n_blocks * block - 500, n_blocks * block))


def test_channels_wrap_around_with_their_downmix():
    rng = np.random.default_rng(3)
    ring = AudioRing(100, seconds=1.0, channels=3)
    history = []
    for n in (30, 70, 45, 99, 1, 100, 13, 64):
        block = rng.standard_normal((n, 3)).astype(np.float32)
        ring.write(block)
        history.append(block)
    ref = np.concatenate(history)
    w = ring.latest(0.6, channels=True)
    np.testing.assert_array_equal(w.samples, ref[-60:].T)
    np.testing.assert_array_equal(ring.latest(0.6).samples, ref[-60:].mean(axis=1, dtype=np.float32))


def test_a_given_downmix_is_kept_as_is_and_gaps_are_silence_on_every_channel():
    ring = AudioRing(10, seconds=2.0, channels=2)
    block = np.ones((5, 2), np.float32)
    ring.write(block, end_time=1.0, mono=np.full(5, 0.25, np.float32))
    ring.write(block, end_time=2.0)  # 0.5 s late: 5 samples of silence first
    assert ring.stats.gap_samples == 5
    np.testing.assert_array_equal(ring.latest(1.5, channels=True).samples[:, :5], np.ones((2, 5)))
    np.testing.assert_array_equal(ring.latest(1.5, channels=True).samples[:, 5:10], np.zeros((2, 5)))
    np.testing.assert_array_equal(ring.latest(1.5).samples, [0.25] * 5 + [0] * 5 + [1] * 5)


def test_a_mono_ring_reads_its_channels_as_one_row():
    ring = AudioRing(8, seconds=1.0)
    ring.write(np.array([[0.5, 0.25], [0.0, 1.0]], np.float32))
    np.testing.assert_array_equal(ring.latest(0.25, channels=True).samples, [[0.375, 0.5]])


@pytest.mark.parametrize("block, mono, match", [
    (np.zeros(4, np.float32), None, r"keeps 2 channels.*\(n, 2\)"),
    (np.zeros((4, 3), np.float32), None, r"keeps 2 channels"),
    (np.zeros((4, 2), np.float32), np.zeros(3, np.float32), r"mono must have shape \(4,\)"),
    (np.zeros((4, 2), np.float32), np.array([0, 0, 0, np.inf]), "mono contains NaN or inf"),
])
def test_blocks_that_do_not_fit_a_multichannel_ring_are_refused(block, mono, match):
    with pytest.raises(ValueError, match=match):
        AudioRing(8, channels=2).write(block, mono=mono)
