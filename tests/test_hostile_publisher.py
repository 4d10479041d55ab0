"""A hostile or broken publisher on a real ZeroMQ PUB socket: malformed messages are
rejected and counted by reason while valid ones keep flowing (the subscribe iterator,
the dashboard's intake, the subscribe CLI), oversize messages are refused and the
connection comes back, and a flood cannot grow a subscriber's memory."""
import collections
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from hostile_messages import HOSTILE
from realtime.dashboard.hub import Hub
from realtime.dashboard.intake import Intake
from realtime.protocol import Heatmap, decode, encode
from realtime.subscribe import MIB, ReceiveCounters, ReceiveLimits, subscribe, subscribe_raw

ROOT = Path(__file__).resolve().parent.parent


def valid(seq, stream="cam1", jpeg=None):
    """An encoded map whose seq tells which one arrived."""
    m = np.zeros((3, 4), np.float32)
    return encode(Heatmap(stream=stream, seq=seq, capture_time=time.time(), model="test", heatmap=m,
                          frame_size=(640, 360), frame_jpeg=jpeg))


# What passes a subscription to heatmap/ and status/ (the "no newline" one does not).
DELIVERED = [(name, data, reason) for name, data, reason in HOSTILE
             if data.startswith((b"heatmap/", b"status/"))]
EXPECTED_REASONS = dict(collections.Counter(reason for _, _, reason in DELIVERED))


class RawPublisher:
    """A bare PUB socket that sends whatever bytes it is given (a hostile publisher)."""

    def __init__(self, sndhwm=1000):
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, sndhwm)
        self.sock.bind("tcp://127.0.0.1:*")
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def send(self, data, copy=True):
        self.sock.send(data, copy=copy)

    def until(self, done, message, seq=0, period_s=0.01, timeout_s=20):
        """Send valid(seq) every period_s until done() (the slow joiner, a reconnect)."""
        end = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < end, message
            self.send(valid(seq))
            time.sleep(period_s)

    def send_hostile_then_valid(self, first_seq=1):
        """Each delivered hostile message followed by a valid map; returns the last seq sent."""
        seq = first_seq
        for _, data, _ in DELIVERED:
            self.send(data)
            self.send(valid(seq))
            seq += 1
            time.sleep(0.002)  # no burst beyond the queues: this test is about decoding
        return seq - 1

    def close(self):
        self.sock.close(linger=0)
        self.context.term()


@pytest.fixture
def publisher():
    pub = RawPublisher()
    yield pub
    pub.close()


@pytest.fixture
def flooder():
    pub = RawPublisher(sndhwm=4)  # the sender's own queue stays small too
    yield pub
    pub.close()


def first_message_received(publisher, messages):
    """Publish valid maps until the ``messages`` iterator has yielded one (ZeroMQ's slow joiner)."""
    got = []
    reader = threading.Thread(target=lambda: got.append(next(messages)))
    reader.start()
    publisher.until(lambda: got, "the subscriber never received a map")
    reader.join()


def test_the_subscribe_iterator_counts_each_rejection_and_keeps_delivering(publisher):
    counters = ReceiveCounters()
    messages = subscribe(publisher.address, latest_only=False, counters=counters, timeout_s=20)
    first_message_received(publisher, messages)
    last = publisher.send_hostile_then_valid()
    seqs = []
    while not seqs or seqs[-1] < last:
        msg = next(messages)
        if msg.seq:
            seqs.append(msg.seq)
    messages.close()
    assert seqs == list(range(1, last + 1))  # every valid map, in order
    assert counters.rejections.by_reason == EXPECTED_REASONS
    assert counters.rejections.total == len(DELIVERED)
    assert "bad seq: 5" in str(counters.rejections)


def test_the_default_latest_only_iterator_keeps_delivering_after_hostile_messages(publisher):
    messages = subscribe(publisher.address, timeout_s=20)
    first_message_received(publisher, messages)
    last = publisher.send_hostile_then_valid()
    while next(messages).seq != last:
        pass
    messages.close()


def test_the_dashboard_intake_survives_hostile_messages_and_counts_them(publisher):
    hub = Hub(1, 16, lambda: None)
    intake = Intake((publisher.address,), hub)
    try:
        publisher.until(lambda: hub.received, "the intake never received a map")
        last = publisher.send_hostile_then_valid(first_seq=1_000)
        end = time.monotonic() + 20
        while not any(e["seq"] == last for e in hub.snapshot(0)):
            assert time.monotonic() < end, f"the last map never arrived: {intake.errors}"
            time.sleep(0.02)
        assert intake.alive == 1 and intake.errors == []
        counts = hub.rejection_counts()
        assert counts[0]["by_reason"] == EXPECTED_REASONS and hub.rejected == len(DELIVERED)
        assert counts[0]["last"] and "\n" not in counts[0]["last"]  # the newest error's text, one line
        assert intake.counters[0].rejections is hub.rejections[0]
    finally:
        intake.stop()


def test_the_subscribe_cli_prints_the_reasons_and_exits_0(publisher):
    cli = subprocess.Popen([sys.executable, "-m", "realtime.subscribe", publisher.address, "--duration", "2"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(60, cli.kill)
    guard.start()
    try:
        seq = 1
        while cli.poll() is None:  # the CLI's own slow joiner: keep sending until it stops
            seq = publisher.send_hostile_then_valid(seq) + 1
        out, err = cli.communicate(timeout=30)
    finally:
        guard.cancel()
    assert cli.returncode == 0, err
    summary = [line for line in out.splitlines() if line.startswith("summary:")]
    assert len(summary) == 1, out
    assert "rejected" in summary[0] and "bad seq:" in summary[0] and "nested too deep:" in summary[0]
    assert "Traceback" not in err and "rejected a message (bad seq)" in err


@pytest.mark.parametrize("latest_only", [False, True], ids=["in order", "latest only"])
def test_an_oversize_message_is_refused_counted_and_the_stream_resumes(publisher, latest_only):
    """ZeroMQ drops a connection that sends a message over MAXMSGSIZE and would never
    reconnect it by itself (a protocol error): the subscriber counts and reconnects."""
    counters = ReceiveCounters()
    limits = ReceiveLimits(max_message_bytes=MIB, latest_bytes=4 * MIB)
    raw = subscribe_raw(publisher.address, latest_only=latest_only, limits=limits, counters=counters,
                        tick_s=0.02, timeout_s=20)
    got = []

    def read(until_seq):
        for data in raw:
            if data is not None:
                got.append(data)
                if decode(data).seq == until_seq:
                    return

    reader = threading.Thread(target=read, args=(0,))
    reader.start()
    publisher.until(lambda: not reader.is_alive(), "the subscriber never received a map")
    oversize = valid(7, jpeg=bytes(2 * MIB))
    publisher.send(oversize)
    reader = threading.Thread(target=read, args=(1,))
    reader.start()
    publisher.until(lambda: not reader.is_alive(), "no map after the oversize one", seq=1, period_s=0.05)
    raw.close()
    assert oversize not in got and all(len(d) <= MIB for d in got)
    assert counters.disconnects >= 1


# ----------------------------------------------------------------- floods and memory

FLOOD_CHILD = r"""
import json, sys, time
from realtime.subscribe import subscribe
address, scenario, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
kwargs = {}
if scenario != "defaults":
    from realtime.subscribe import MIB, ReceiveCounters, ReceiveLimits
    counters = ReceiveCounters()
    kwargs = dict(latest_only=scenario == "latest", counters=counters,
                  limits=ReceiveLimits(max_message_bytes=4 * MIB, queue_messages=4, latest_bytes=8 * MIB))
messages = subscribe(address, timeout_s=30, **kwargs)
first = next(messages)
print("ready", flush=True)
end, seqs = time.monotonic() + seconds, []
for msg in messages:
    seqs.append(msg.seq if hasattr(msg, "seq") else -1)
    if seqs[-1] == 1_000_000 or time.monotonic() > end:  # a map sent after the flood, or too late
        break
    time.sleep(0.1)  # a slow reader
print(json.dumps({"seqs": seqs, **({"disconnects": counters.disconnects, "dropped": counters.dropped}
                                   if kwargs else {})}), flush=True)
"""


def _rss(pid):
    """Resident memory of process pid in bytes (Linux)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc (Linux)")
@pytest.mark.parametrize("scenario, message_bytes, streams, bound", [
    ("defaults", 20 * MIB, 1, 60 * MIB),   # over the default 16 MiB maximum: never buffered
    ("in-order", 4 * MIB - 4096, 1, 90 * MIB),   # just under a 4 MiB maximum, 4 queued at most
    ("latest", 4 * MIB - 4096, 40, 90 * MIB),    # newest of 40 streams, held within 8 MiB
])
def test_a_flood_does_not_grow_a_slow_subscribers_memory(flooder, scenario, message_bytes, streams, bound):
    """A publisher floods as fast as loopback carries for 2 s while the subscriber reads one
    message per 0.1 s. Its resident memory must stay within a bound (before the fix it grew
    by the receive queue, 1000 messages: gigabytes); valid maps sent after the flood arrive.
    The flood stops early, failing the test, once the child grows past the bound."""
    publisher = flooder
    child = subprocess.Popen([sys.executable, "-c", FLOOD_CHILD, publisher.address, scenario, "30"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(90, child.kill)
    guard.start()
    try:
        ready = []
        waiter = threading.Thread(target=lambda: ready.append(child.stdout.readline()))
        waiter.start()
        publisher.until(lambda: ready, "the child never received a map", period_s=0.05, timeout_s=60)
        assert ready[0].strip() == "ready", child.stderr.read()
        base = peak = _rss(child.pid)
        blobs = [valid(100 + k, stream=f"cam{k}", jpeg=bytes(message_bytes - 400)) for k in range(streams)]
        assert all(len(b) <= message_bytes for b in blobs)
        end, k = time.monotonic() + 2, 0
        while time.monotonic() < end and peak - base < bound:
            publisher.send(blobs[k % streams], copy=False)  # the same buffers: the sender stays small
            k += 1
            if k % 4 == 0:
                peak = max(peak, _rss(child.pid))
        if peak - base >= bound:
            child.kill()
        while child.poll() is None:  # after the flood, until the child reports: valid maps must arrive
            peak = max(peak, _rss(child.pid))
            publisher.send(valid(1_000_000))
            time.sleep(0.05)
        out, err = child.communicate(timeout=60)
    finally:
        guard.cancel()
        if child.poll() is None:
            child.kill()
    assert peak - base < bound, f"grew {(peak - base) / MIB:.0f} MiB during the flood of {k} messages"
    assert child.returncode == 0, err
    report = json.loads(out.splitlines()[-1])
    assert 1_000_000 in report["seqs"], report
    if scenario == "defaults":
        assert not any(100 <= s < 100 + streams for s in report["seqs"])  # none over 16 MiB delivered
    if scenario == "latest":
        assert report["dropped"] > 0  # more streams than 8 MiB holds: dropped and counted
