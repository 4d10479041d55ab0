"""realtime.turns: at most N holders, first come first served, a stop ends the wait."""
import threading
import time

import pytest

from realtime.turns import Turns


def _queued(turns: Turns, n: int) -> None:
    """Wait until ``n`` callers are in line (a test helper, bounded)."""
    deadline = time.monotonic() + 5.0
    while len(turns._queue) < n:
        assert time.monotonic() < deadline, "callers did not queue"
        time.sleep(0.005)


def test_never_more_holders_than_turns_and_everyone_gets_one():
    turns, stop = Turns(2), threading.Event()
    lock, now, most, served = threading.Lock(), [0], [0], []

    def job(k):
        with turns.turn(stop) as ours:
            assert ours
            with lock:
                now[0] += 1
                most[0] = max(most[0], now[0])
            time.sleep(0.01)
            with lock:
                now[0] -= 1
                served.append(k)

    threads = [threading.Thread(target=job, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert most[0] == 2 and sorted(served) == list(range(8)) and turns.holders == 0


def test_waiting_callers_are_served_in_arrival_order():
    turns, stop, order = Turns(1), threading.Event(), []
    releases = [threading.Event() for _ in range(4)]

    def caller(k):
        with turns.turn(stop) as ours:
            assert ours
            order.append(k)
            releases[k].wait(5)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    with turns.turn(stop):  # held while the four queue, one after the other
        for k, t in enumerate(threads):
            t.start()
            _queued(turns, k + 1)
    for k in range(4):  # let each go in turn once it has started
        deadline = time.monotonic() + 5
        while len(order) < k + 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        releases[k].set()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3]


def test_a_stop_ends_the_wait_without_a_turn_and_lets_the_next_in_line_through():
    turns, stop, other = Turns(1), threading.Event(), threading.Event()
    got = {}
    with turns.turn(threading.Event()):
        def stopped():
            with turns.turn(stop) as ours:
                got["stopped"] = ours

        def patient():
            with turns.turn(other) as ours:
                got["patient"] = ours

        a = threading.Thread(target=stopped)
        a.start()
        _queued(turns, 1)
        b = threading.Thread(target=patient)
        b.start()
        _queued(turns, 2)
        start = time.monotonic()
        stop.set()
        a.join(5)
        assert got == {"stopped": False} and time.monotonic() - start < 2.0
        assert turns.holders == 1  # ours only: the stopped caller took none
    b.join(5)
    assert got == {"stopped": False, "patient": True} and turns.holders == 0


def test_a_failing_holder_gives_its_turn_back():
    turns, stop = Turns(1), threading.Event()
    with pytest.raises(RuntimeError):
        with turns.turn(stop):
            raise RuntimeError("boom")
    assert turns.holders == 0
    with turns.turn(stop) as ours:
        assert ours


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_turns_must_be_a_whole_number_of_at_least_one(bad):
    with pytest.raises(ValueError, match="at_once must be a whole number >= 1"):
        Turns(bad)
