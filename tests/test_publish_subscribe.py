"""Publisher and subscriber over real loopback sockets (free ports), and the subscribe CLI."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq.auth

from realtime.protocol import Heatmap, Status, decode
from realtime.publisher import CurveServer, Publisher, PublishError, PublisherConfig
from realtime.subscribe import (CurveClient, ReceiveCounters, SubscribeError, SubscribeTimeout, _Stats, main,
                                read_recording, subscribe, subscribe_raw)

ROOT = Path(__file__).resolve().parent.parent
ANY_PORT = "tcp://127.0.0.1:*"


def heatmap(seq, stream="cam1", h=4, w=5):
    """A map whose values encode seq, so a receiver can check it got the right one."""
    m = np.full((h, w), (seq % 100) / 100, np.float32)
    m[0, 0] = 1.0
    return Heatmap(stream=stream, seq=seq, capture_time=time.time(), model="test", heatmap=m,
                   frame_size=(640, 360))


def status(stream="cam1"):
    return Status(stream=stream, fps=25.0, latency_ms={"p50": 1.0, "p95": 2.0, "p99": 3.0},
                  drops={"capture": 0}, source={"connected": True}, uptime_s=1.0)


def warm_up(pub, raw, stream="cam1"):
    """Publish until the subscriber gets something (slow joiner), then drain its queue."""
    for _ in range(500):
        pub.publish(heatmap(0, stream))
        if next(raw) is not None:
            while next(raw) is not None:
                pass
            return
    pytest.fail("subscriber never received a message")


def take(raw, n):
    """The next n decoded messages (skipping idle ticks, at most ~5 s of ticks)."""
    out = []
    for _ in range(n + 500):
        data = next(raw)
        if data is not None:
            out.append(decode(data))
            if len(out) == n:
                return out
    pytest.fail(f"received {len(out)} of {n} messages")


def pending(raw):
    """Decoded messages already queued (until the first idle tick)."""
    out = []
    while (data := next(raw)) is not None:
        out.append(decode(data))
    return out


@pytest.mark.parametrize("dtype", ["uint8", "float16"])
def test_round_trip_over_a_socket(dtype):
    with Publisher(PublisherConfig(ANY_PORT, heatmap_dtype=dtype)) as pub:
        assert pub.address.startswith("tcp://127.0.0.1:") and not pub.address.endswith("*")
        raw = subscribe_raw(pub.address, tick_s=0.01)
        warm_up(pub, raw)
        sent = heatmap(37)
        pub.publish(sent)
        pub.publish(status())
        got, st = take(raw, 2)
        raw.close()
    assert (got.stream, got.seq, got.frame_size) == ("cam1", 37, (640, 360))
    tolerance = 0.5 / 255 if dtype == "uint8" else 2 ** -12
    assert np.abs(got.heatmap - sent.heatmap).max() <= tolerance + 1e-7
    assert got.publish_time >= got.capture_time
    assert isinstance(st, Status) and st.latency_ms["p95"] == 2.0


def test_stream_and_kind_filtering():
    with Publisher(PublisherConfig(ANY_PORT)) as pub:
        raw = subscribe_raw(pub.address, streams=["cam1"], kinds=("heatmap",), latest_only=False,
                            tick_s=0.05)
        warm_up(pub, raw)
        for seq in range(1, 4):
            # cam10 shares the prefix "cam1": the topic's newline keeps it out.
            for stream in ("cam10", "cam2", "cam1"):
                pub.publish(heatmap(seq, stream))
            pub.publish(status("cam1"))
        got = take(raw, 3) + pending(raw)
        raw.close()
    assert [(m.stream, m.seq) for m in got] == [("cam1", 1), ("cam1", 2), ("cam1", 3)]


def test_latest_only_gives_the_newest_after_a_burst():
    with Publisher(PublisherConfig(ANY_PORT, send_hwm=1000)) as pub:
        latest = subscribe_raw(pub.address, streams=["cam1"], kinds=("heatmap",),
                               latest_only=True, tick_s=0.2)
        everything = subscribe_raw(pub.address, streams=["cam1"], kinds=("heatmap",), latest_only=False,
                                   tick_s=0.2)
        warm_up(pub, latest)
        warm_up(pub, everything)
        for seq in range(1, 51):
            pub.publish(heatmap(seq))
        backlog = take(everything, 50) + pending(everything)
        time.sleep(0.1)  # the burst has reached this process; let the other socket catch up
        newest = pending(latest)
        latest.close()
        everything.close()
    assert [m.seq for m in newest] == [50]
    assert [m.seq for m in backlog] == list(range(1, 51))


def test_latest_only_keeps_the_newest_of_every_stream_and_kind_when_subscribed_to_all():
    """A display watching every stream (streams=None) gets each stream's newest map and its
    status, not just the newest message of any stream."""
    with Publisher(PublisherConfig(ANY_PORT, send_hwm=1000)) as pub:
        latest = subscribe_raw(pub.address, tick_s=0.2)  # the default: latest only, all streams
        warm_up(pub, latest, "cam9")
        for seq in range(1, 31):
            for stream in ("cam1", "cam2", "cam3"):
                pub.publish(heatmap(seq, stream))
            if seq % 10 == 0:
                pub.publish(status("cam2"))
        time.sleep(0.3)  # the burst has reached the reader thread
        newest = pending(latest)
        latest.close()
    maps = sorted((m.stream, m.seq) for m in newest if isinstance(m, Heatmap))
    assert maps == [("cam1", 30), ("cam2", 30), ("cam3", 30)]
    assert [m.stream for m in newest if isinstance(m, Status)] == ["cam2"]


def test_the_default_iterator_keeps_a_slow_display_current():
    """One read per 0.3 s at ~100 maps/s and a status every 0.5 s: with the default the
    maps read stay fresh and statuses come through (queueing every message, the 12th map
    read was ~3.5 s old and no status had been reached)."""
    with Publisher(PublisherConfig(ANY_PORT)) as pub:
        stop = threading.Event()

        def publish():
            seq = 0
            while not stop.is_set():
                pub.publish(heatmap(seq))
                if seq % 50 == 0:
                    pub.publish(status())
                seq += 1
                time.sleep(0.01)

        sender = threading.Thread(target=publish)
        sender.start()
        messages = subscribe(pub.address, timeout_s=10)
        try:
            ages, statuses = [], 0
            for _ in range(14):
                msg = next(messages)
                if isinstance(msg, Heatmap):
                    ages.append(time.time() - msg.capture_time)
                else:
                    statuses += 1
                time.sleep(0.3)  # a display drawing slowly
        finally:
            messages.close()
            stop.set()
            sender.join()
    assert statuses >= 1 and len(ages) >= 6
    assert max(ages[-4:]) < 1.0, ages  # current, not seconds behind


def test_slow_subscriber_neither_blocks_the_publisher_nor_builds_a_backlog():
    """A consumer taking 100 ms per message; the publisher sends 300 maps of 360x640 float16."""
    received, stop = [], threading.Event()

    def consume(address):
        for msg in subscribe(address, streams=["cam1"], kinds=("heatmap",), latest_only=True,
                             timeout_s=5):
            received.append(msg.seq)
            if msg.seq == 300 or stop.is_set():
                return
            time.sleep(0.1)

    with Publisher(PublisherConfig(ANY_PORT, heatmap_dtype="float16")) as pub:
        consumer = threading.Thread(target=consume, args=(pub.address,), daemon=True)
        consumer.start()
        while not received:  # slow joiner: wait for the first message
            pub.publish(heatmap(0, h=360, w=640))
            time.sleep(0.01)
        rss_before = _rss_bytes()
        sender = threading.Thread(target=lambda: [pub.publish(heatmap(s, h=360, w=640))
                                                  for s in range(1, 301)])
        sender.start()
        sender.join(timeout=60)
        assert not sender.is_alive(), "publish() blocked on a slow subscriber"
        rss_growth = _rss_bytes() - rss_before
        consumer.join(timeout=10)
        stop.set()
    # Everything queued would be 300 x 460 KB = 138 MB.
    if rss_growth is not None:
        assert rss_growth < 40e6
    assert pub.dropped == 0
    # The consumer got the newest map, skipping most: it was never far behind.
    assert received[-1] == 300 and len(received) < 100


def _rss_bytes():
    """Resident memory of this process in bytes (Linux), or None elsewhere."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def test_subscriber_restart_receives_again():
    with Publisher(PublisherConfig(ANY_PORT)) as pub:
        for attempt in range(2):
            raw = subscribe_raw(pub.address, tick_s=0.01)
            warm_up(pub, raw)
            pub.publish(heatmap(10 + attempt))
            assert take(raw, 1)[0].seq == 10 + attempt
            raw.close()


@pytest.mark.parametrize("latest_only", [False, True], ids=["in order", "latest only"])
def test_publisher_restart_is_counted_and_the_subscriber_receives_again(latest_only):
    counters = ReceiveCounters()
    with Publisher(PublisherConfig(ANY_PORT)) as pub:
        address = pub.address
        raw = subscribe_raw(address, latest_only=latest_only, counters=counters, tick_s=0.01)
        warm_up(pub, raw)
    with Publisher(PublisherConfig(address)) as pub:  # the same port, a new process would do the same
        warm_up(pub, raw)
        pub.publish(heatmap(42))
        assert take(raw, 1)[0].seq == 42
        raw.close()
    assert counters.disconnects >= 1


def test_subscribe_times_out_when_nothing_arrives():
    with Publisher(PublisherConfig(ANY_PORT)) as pub:
        with pytest.raises(SubscribeTimeout):
            next(subscribe(pub.address, timeout_s=0.3))


@pytest.fixture
def curve_keys(tmp_path):
    """Server keys, an allowed client's keys and a stranger's keys (zmq.auth certificates)."""
    paths = {}
    for name in ("server", "client", "stranger"):
        folder = tmp_path / name
        folder.mkdir()
        paths[name] = [Path(p) for p in zmq.auth.create_certificates(folder, name)]
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "client.key").write_bytes(paths["client"][0].read_bytes())
    server = CurveServer(secret_key_file=paths["server"][1], authorized_keys_dir=allowed)
    client = CurveClient(secret_key_file=paths["client"][1], server_key_file=paths["server"][0])
    stranger = CurveClient(secret_key_file=paths["stranger"][1], server_key_file=paths["server"][0])
    return server, client, stranger


def test_curve_admits_only_authorised_clients(curve_keys):
    server, client, stranger = curve_keys
    results = {}

    def listen(name, curve):
        try:
            # Generous for the authorised client (handshake on a busy machine), short for the rest.
            wait = 10 if name == "client" else 2
            results[name] = next(subscribe(pub.address, curve=curve, timeout_s=wait)).seq
        except SubscribeTimeout:
            results[name] = "timeout"

    with Publisher(PublisherConfig(ANY_PORT, curve=server)) as pub:
        listeners = [threading.Thread(target=listen, args=a) for a in
                     [("client", client), ("stranger", stranger), ("plain", None)]]
        for t in listeners:
            t.start()
        seq = 0
        while any(t.is_alive() for t in listeners) and seq < 1000:
            pub.publish(heatmap(seq))
            seq += 1
            time.sleep(0.01)
        for t in listeners:
            t.join(timeout=5)
    assert isinstance(results["client"], int)
    assert results["stranger"] == "timeout" and results["plain"] == "timeout"


def test_curve_with_a_public_key_instead_of_the_secret_one_is_refused(curve_keys, tmp_path):
    server, _, _ = curve_keys
    wrong = CurveServer(secret_key_file=server.secret_key_file.with_suffix(".key"),
                        authorized_keys_dir=server.authorized_keys_dir)
    with pytest.raises(PublishError, match="no secret key"):
        Publisher(PublisherConfig(ANY_PORT, curve=wrong))


def test_subscriber_with_a_missing_key_file_gets_a_one_line_error(curve_keys, tmp_path):
    _, client, _ = curve_keys
    missing = CurveClient(secret_key_file=client.secret_key_file,
                          server_key_file=tmp_path / "nowhere.key")
    with pytest.raises(SubscribeError, match="nowhere.key"):
        next(subscribe("tcp://127.0.0.1:5556", curve=missing))


def test_stats_count_seq_gaps_but_not_publisher_restarts():
    stats = _Stats()
    for seq in (0, 1, 4, 5, 0, 1, 3):  # 2 missing, restart, 1 missing
        stats.add(heatmap(seq), time.time())
    assert stats.total == 7 and stats.gaps == 3
    assert "seq gaps 3" in stats.summary(1.0)


def test_busy_port_and_bad_address_raise_one_line_errors():
    with Publisher(PublisherConfig(ANY_PORT)) as pub:
        with pytest.raises(PublishError, match="already in use") as err:
            Publisher(PublisherConfig(pub.address))
        assert pub.address in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(PublishError, match="not-an-endpoint"):
        Publisher(PublisherConfig("not-an-endpoint"))


def test_cli_count_and_record_then_read_recording(tmp_path, capsys):
    record = tmp_path / "run.fgrec"
    with Publisher(PublisherConfig(ANY_PORT)) as pub:
        result = {}
        cli = threading.Thread(target=lambda: result.update(
            code=main([pub.address, "--stream", "cam1", "--count", "5", "--record", str(record)])))
        cli.start()
        seq = 0
        while cli.is_alive() and seq < 2000:
            pub.publish(heatmap(seq))
            seq += 1
            time.sleep(0.005)
        cli.join(timeout=5)
    assert result["code"] == 0
    out = capsys.readouterr().out
    assert "summary: 5 messages" in out and "['cam1']" in out
    recorded = list(read_recording(record))
    assert len(recorded) == 5
    seqs = [m.seq for m in recorded]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    np.testing.assert_allclose(recorded[-1].heatmap, heatmap(seqs[-1]).heatmap, atol=0.5 / 255)


def test_read_recording_rejects_truncated_and_foreign_files(tmp_path):
    from realtime.protocol import ProtocolError, encode
    good = b"FGLREC1\n" + len(data := encode(heatmap(1))).to_bytes(4, "big") + data
    (tmp_path / "cut").write_bytes(good[:-3])
    (tmp_path / "foreign").write_bytes(b"RIFF" + good[4:])
    assert [m.seq for m in read_recording(_write(tmp_path / "ok", good))] == [1]
    for name in ("cut", "foreign"):
        with pytest.raises(ProtocolError, match=name):
            list(read_recording(tmp_path / name))


def _write(path, data):
    path.write_bytes(data)
    return path


def _cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "realtime.subscribe", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_cli_a_programming_error_is_not_reported_as_bad_input(monkeypatch, capsys):
    """A ValueError from a bug inside the receive loop escapes main (a traceback, exit status 1)
    instead of passing for the user's mistake (one line, exit status 2); a bad stream name is
    still the user's mistake."""
    import realtime.subscribe as subscribe_module

    def broken(*args, **kwargs):
        raise ValueError("a bug, not the user's input")
        yield  # a generator, as subscribe_raw is
    monkeypatch.setattr(subscribe_module, "subscribe_raw", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["tcp://127.0.0.1:1", "--duration", "1"])
    with pytest.raises(SystemExit) as e:
        main(["tcp://127.0.0.1:1", "--stream", "two words"])
    assert e.value.code == 2 and "--stream 'two words': a stream name is 1-64 of" in capsys.readouterr().err


def test_cli_help_bad_address_and_ctrl_c():
    helped = _cli("--help")
    out, _ = helped.communicate(timeout=30)
    assert helped.returncode == 0 and "--record" in out and "--latest" in out

    bad = _cli("nonsense")
    _, err = bad.communicate(timeout=30)
    assert bad.returncode == 2 and err.strip().count("\n") == 0 and "nonsense" in err

    watching = _cli("tcp://127.0.0.1:1")  # nothing publishes there: it waits
    guard = threading.Timer(30, watching.kill)  # a hung CLI fails the test instead of hanging it
    guard.start()
    first = watching.stdout.readline()  # the first stats line: it is running, past imports
    watching.send_signal(signal.SIGINT)
    out, err = watching.communicate(timeout=30)
    guard.cancel()
    assert "0.0 msg/s" in first
    assert watching.returncode == 0, err
    assert "summary: 0 messages" in out


HOLDS_ITERATOR_AT_EXIT = r"""
import sys
from realtime.subscribe import subscribe
messages = subscribe(sys.argv[1], timeout_s=20)   # latest-only: a reader thread inside ZeroMQ
next(messages)
print("got one", flush=True)
"""  # ... and the script ends with the iterator still open


def test_a_script_that_exits_holding_the_iterator_ends_cleanly(tmp_path):
    """The latest-only reader thread leaves ZeroMQ when the main thread has finished, so the
    interpreter never tears the context down under it (a crash, exit -11, was seen once under
    load with a daemon reader) and never waits on it: exit 0, promptly, every time."""
    pub = Publisher(PublisherConfig("tcp://127.0.0.1:*"))
    stop = threading.Event()

    def publish():
        seq = 0
        while not stop.is_set():
            pub.publish(Heatmap(stream="cam1", seq=seq, capture_time=time.time(), model="t",
                                heatmap=np.zeros((4, 4), np.float32), frame_size=(64, 48)))
            seq += 1
            time.sleep(0.01)

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        for _ in range(3):
            start = time.monotonic()
            proc = subprocess.run([sys.executable, "-c", HOLDS_ITERATOR_AT_EXIT, pub.address], capture_output=True,
                                  text=True, timeout=30, cwd=ROOT)
            assert proc.returncode == 0 and proc.stdout == "got one\n", proc.stderr
            assert time.monotonic() - start < 20
    finally:
        stop.set()
        thread.join()
        pub.close()
