"""LatestSlot (newest wins, drops counted) and RollingStats (rate, percentiles)."""
import threading
import time

import numpy as np
import pytest

from realtime.slots import LatestSlot
from realtime.stats import RollingStats


def test_newest_item_wins_and_overwrites_are_counted():
    slot = LatestSlot("frames")
    for i in range(5):
        slot.put(i)
    assert slot.get(0.0) == 4
    assert slot.dropped == 4 and slot.put_count == 5
    assert slot.get(0.0) is None  # taken: empty again


def test_wait_empty_returns_when_a_consumer_takes_the_item_or_on_close():
    slot = LatestSlot("flows")
    assert slot.wait_empty(0.0)  # nothing waiting
    slot.put(1)
    assert not slot.wait_empty(0.05)  # still there after the timeout
    threading.Timer(0.1, slot.get, args=(0.0,)).start()
    start = time.monotonic()
    assert slot.wait_empty(5.0) and time.monotonic() - start < 2.0  # woken by the get, not the timeout
    slot.put(2)
    threading.Timer(0.1, slot.close).start()
    start = time.monotonic()
    assert not slot.wait_empty(5.0) and time.monotonic() - start < 2.0  # closed: no waiting on


def test_get_waits_for_a_put_from_another_thread():
    slot = LatestSlot("x")
    threading.Timer(0.05, slot.put, args=("hello",)).start()
    assert slot.get(5.0) == "hello"


def test_close_wakes_waiters_and_ignores_later_puts():
    slot = LatestSlot("x")
    got = []
    t = threading.Thread(target=lambda: got.append(slot.get(30.0)))
    t.start()
    time.sleep(0.05)
    slot.close()
    t.join(2.0)
    assert not t.is_alive() and got == [None]
    slot.put(1)
    assert slot.get(0.0) is None


def test_fast_producer_slow_consumer_keeps_one_item():
    """Memory stays at one item: everything the consumer missed is a counted drop."""
    slot = LatestSlot("x")
    taken = []
    stop = threading.Event()

    def consume():
        while not stop.is_set():
            item = slot.get(0.05)
            if item is not None:
                taken.append(item)
                time.sleep(0.01)

    t = threading.Thread(target=consume)
    t.start()
    n = 20000
    for i in range(n):
        slot.put(i)
    time.sleep(0.05)
    stop.set()
    t.join(2.0)
    assert taken == sorted(taken) and taken[-1] == n - 1
    assert slot.dropped + len(taken) == n


def test_rolling_stats_rate_and_percentiles():
    stats = RollingStats(window_s=2.0)
    lat = np.linspace(0.010, 0.110, 101)  # 10..110 ms
    for i, l in enumerate(lat):
        stats.add(10.0 + i * 0.01, float(l))  # 100 events per second for ~1 s
    snap = stats.snapshot(now=11.0)
    assert snap["fps"] == pytest.approx(101 / 1.0)
    assert snap["latency_ms"]["p50"] == pytest.approx(np.percentile(lat, 50) * 1000)
    assert snap["latency_ms"]["p99"] == pytest.approx(np.percentile(lat, 99) * 1000)
    # After the window passes with no events the rate falls to zero.
    late = stats.snapshot(now=20.0)
    assert late["fps"] == 0.0 and late["latency_ms"]["p50"] is None


def test_rolling_stats_clear_forgets_everything():
    stats = RollingStats(window_s=10.0)
    for i in range(5):
        stats.add(float(i), 0.1)
    stats.clear()
    assert stats.count == 0 and stats.snapshot(now=5.0)["fps"] == 0.0
    stats.add(6.0, 0.2)
    assert stats.snapshot(now=6.5)["latency_ms"]["p50"] == 200.0
