"""realtime.live: a LiveConfig built in code (no argparse) becomes a running system through
build_live, which decides the sharing in one place and closes what it opened when a later
part fails; run_live and the two live benchmarks are built through it."""
import dataclasses
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from realtime import cli
from realtime.assets import DEMO_CLIP
from realtime.audio_source import SharedAudioSource
from realtime.batching import BatchingEngine, SharedEmbedding
from realtime.live import (DashboardSettings, FlowSettings, LiveConfig, ModelSettings, PublishSettings, RunSettings,
                           SourceSettings, StartError, ThreadBudget, build_live)
from realtime.live.config import default_threads
from realtime.live import assembly
from realtime.protocol import decode
from realtime.publisher import PublishError
from realtime.streams import SharedPublish
from realtime.subscribe import subscribe_raw

ROOT = Path(__file__).resolve().parents[1]
ANY_PORT = "tcp://127.0.0.1:*"


def _config(cameras=1, model="flow_only", **run):
    return LiveConfig(sources=(SourceSettings(str(DEMO_CLIP)),) * cameras,
                      model=ModelSettings(model, device="cpu", untrained=True),
                      publishing=PublishSettings(ANY_PORT), run=RunSettings(**run))


# ---------------------------------------------------------------------------- the config alone

def test_the_config_fills_in_what_depends_on_other_fields():
    assert SourceSettings(str(DEMO_CLIP)).audio == "video" and SourceSettings("0").audio == "mic"
    on_gpu = LiveConfig(sources=(SourceSettings("0"),), model=ModelSettings("flow_only", device="cuda"))
    assert on_gpu.flow.backend == "torch"  # decided from the device, nothing opened
    assert _config().flow.backend == "opencv"
    three = _config(cameras=3, snapshot=Path("out/live.png"))
    assert three.streams == ("camera0", "camera1", "camera2") and _config().streams == ("camera",)
    assert three.snapshot_path("camera1") == Path("out/live_camera1.png")
    assert _config(snapshot=Path("out/live.png")).snapshot_path("camera") == Path("out/live.png")


@pytest.mark.parametrize("make, message", [
    (lambda: LiveConfig(sources=()), "no video source"),
    (lambda: LiveConfig(sources=(SourceSettings("0"),), model=ModelSettings("flow_only", device="cpu"),
                        flow=FlowSettings(compile=True)), "use it with --flow-backend torch"),
    (lambda: LiveConfig(sources=(SourceSettings("0"),), publishing=PublishSettings(stream="two words")),
     "--stream 'two words': gives the stream name 'two words'; a stream name is 1-64 of"),
    (lambda: FlowSettings((8, 8)), "flow size must be at least 16x16, got 8x8"),
    (lambda: FlowSettings((8, 40)), "flow size must be at least 16x16, got 40x8"),  # (H, W), shown WxH
    (lambda: DashboardSettings(70000), "dashboard: port 70000 is not in 0..65535"),
    (lambda: RunSettings(duration=0), "--duration must be > 0 seconds"),
    (lambda: LiveConfig(sources=(SourceSettings("0"),), threads=0), "--threads must be a whole number >= 1"),
])
def test_values_that_cannot_work_are_refused_when_the_config_is_made(make, message):
    with pytest.raises(StartError, match=message.replace("(", r"\(")):
        make()


def test_the_thread_budget_defaults_to_the_cores_and_splits_by_cameras_and_device():
    assert _config().threads == default_threads() >= 1
    assert _config(cameras=4).thread_budget == ThreadBudget(default_threads(), 4)
    one = ThreadBudget(2)  # one camera: one engine call at a time on both threads
    assert (one.engine_workers, one.inference, one.opencv, one.decoder) == (1, 2, 1, 1)
    assert one.torch_threads("torch") == 2 and one.torch_threads("onnxruntime") == 1
    many = ThreadBudget(2, cameras=4)  # several: single-threaded calls side by side
    assert (many.engine_workers, many.inference, many.engine_batch, many.maps_at_once) == (2, 1, 1, 2)
    assert (ThreadBudget(8, cameras=3).engine_workers, ThreadBudget(8, cameras=3).inference) == (3, 2)
    gpu = ThreadBudget(2, cameras=4, device="cuda")  # a GPU batches the cameras in one call
    assert (gpu.engine_workers, gpu.inference, gpu.engine_batch, gpu.maps_at_once) == (1, 2, 4, 4)
    for bad in (0, True, 1.5):
        with pytest.raises(StartError, match="--threads must be a whole number >= 1"):
            ThreadBudget(bad)


def test_the_budget_reaches_the_engine_and_the_cameras(monkeypatch):
    """build_live opens the engine with the budget's inference threads, the shared engine with
    its workers, and each camera with one decoder thread."""
    opened, videos = [], []
    real_open = assembly.engines.open

    def recorded_open(*a, **kw):
        opened.append(kw.get("threads"))
        return real_open(*a, **kw)

    class RecordedVideo(assembly.VideoSource):
        def __init__(self, config, *a, **kw):
            videos.append(config.decoder_threads)
            super().__init__(config, *a, **kw)
    monkeypatch.setattr(assembly.engines, "open", recorded_open)
    monkeypatch.setattr(assembly, "VideoSource", RecordedVideo)
    system = build_live(LiveConfig(sources=(SourceSettings(str(DEMO_CLIP)),) * 3,
                                   model=ModelSettings("flow_only", device="cpu"),
                                   publishing=PublishSettings(ANY_PORT), threads=2))
    try:
        assert opened == [1] and videos == [1, 1, 1]
        assert len(system.engine._batcher._workers) == 2
    finally:
        system.close()
        for p in system.pipelines:
            p.video.close()


def test_a_bad_stream_name_is_one_line_and_exit_2_at_start(capsys):
    """Before: the name passed the start and the publish stage failed on it (exit status 1)."""
    assert cli.main(["--demo", "--model", "flow_only", "--stream", "two words"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a stream name is 1-64 of" in err[0], err


# ---------------------------------------------------------------------------- building and running

def _listen(address, received, until):
    for raw in subscribe_raw(address, tick_s=0.2):
        if time.monotonic() > until:
            return
        if raw is not None and raw.startswith(b"heatmap/"):
            msg = decode(raw)
            received.append((msg.stream, msg.seq))


def test_two_cameras_from_a_config_publish_both_streams_and_stop_cleanly():
    system = build_live(_config(cameras=2, duration=4.0))
    # The sharing decided by the assembly: one batching engine, one serialised socket, no shared flow on a CPU.
    assert isinstance(system.engine, BatchingEngine) and system.flow is None and system.sinks == ()
    assert all(isinstance(p._publish, SharedPublish) for p in system.pipelines)
    received = []
    listener = threading.Thread(target=_listen, args=(system.address, received, time.monotonic() + 8))
    listener.start()
    time.sleep(0.5)  # the subscriber joins before the first map (PUB/SUB slow joiner)
    final = system.run()
    listener.join(15)
    assert [s["published"] > 0 for s in final] == [True, True]
    for stream in ("camera0", "camera1"):
        seqs = [seq for name, seq in received if name == stream]
        assert len(seqs) >= 3 and seqs == sorted(seqs), (stream, seqs)
    assert all(not p.alive and p.video.state == "closed" for p in system.pipelines)
    assert not system.engine._batcher.alive  # the shared engine is closed
    assert system.publisher._context.closed
    assert "camera0" in system.status_line(final) and "camera1" in system.status_line(final)


def test_cameras_that_hear_one_file_share_its_source_ring_and_embedding():
    """Before (issue 20): every camera opened its own audio source and ring and computed its
    own audio embedding each second, although all heard the same sound."""
    system = build_live(_config(cameras=3, model="rcgrad", duration=3.0))
    audio, ring, listener = (system.pipelines[0].audio, system.pipelines[0].ring, system.pipelines[0].engine)
    assert isinstance(audio, SharedAudioSource) and isinstance(listener, SharedEmbedding)
    assert all(p.audio is audio and p.ring is ring and p.engine is listener for p in system.pipelines)
    assert listener.engine is system.engine  # heatmaps still go through the one batching engine
    final = system.run()
    assert all(s["published"] > 0 for s in final), final
    assert all(p.audio_embedding is not None for p in system.pipelines)
    # One embedding per refresh period for the three cameras (3 s, refreshed each second), not three.
    assert 1 <= listener.computed <= 4, listener.computed
    assert audio.source.state == "stopped" and not audio.source._thread.is_alive()  # stopped after the last
    assert system.stuck_stages() == []


def test_no_stream_starves_while_the_others_run():
    """Four cameras on one batching engine, taking turns: every stream gets maps,
    the slowest at least half as many as the busiest (counts, not timings)."""
    system = build_live(_config(cameras=4, duration=3.0))
    turns = {id(p.turns) for p in system.pipelines}
    assert len(turns) == 1 and system.pipelines[0].turns.at_once == system.config.thread_budget.maps_at_once
    counts = [s["published"] for s in system.run()]
    assert min(counts) > 0 and min(counts) >= 0.5 * max(counts), counts
    assert system.stuck_stages() == []


def test_one_camera_uses_the_engine_and_socket_directly_and_keeps_a_snapshot(tmp_path):
    system = build_live(_config(duration=2.5, snapshot=tmp_path / "live.png"))
    assert not isinstance(system.engine, BatchingEngine) and len(system.sinks) == 1
    assert system.pipelines[0].turns is None  # one camera overlaps flow and inference
    assert system.pipelines[0]._publish is system.sinks[0]
    system.run()
    assert system.write_snapshots() == [("camera", tmp_path / "live.png")]
    assert (tmp_path / "live.png").is_file() and system.stuck_stages() == []


def test_request_stop_ends_a_run_without_duration():
    system = build_live(_config())
    threading.Timer(1.5, system.request_stop).start()
    start = time.monotonic()
    final = system.run()
    assert time.monotonic() - start < 10 and final[0]["published"] > 0
    assert system.publisher._context.closed


def test_a_busy_port_closes_everything_opened_before_the_publisher(monkeypatch):
    """Two cameras with an audio model: the publisher's bind fails, and the video sources,
    the audio sources and the shared engine opened before it are closed again."""
    videos, audios, engines = [], [], []

    class RecordedVideo(assembly.VideoSource):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            videos.append(self)

    def recorded_audio(config, ring):
        source = open_audio_source(config, ring)
        stop = source.stop
        source.stop = lambda: (audios.append(source), stop())
        return source

    class RecordedEngine(BatchingEngine):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            engines.append(self)

    open_audio_source = assembly.open_audio_source
    monkeypatch.setattr(assembly, "VideoSource", RecordedVideo)
    monkeypatch.setattr(assembly, "open_audio_source", recorded_audio)
    monkeypatch.setattr(assembly, "BatchingEngine", RecordedEngine)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = zmq.Context()
    holder = ctx.socket(zmq.PUB)
    holder.bind(f"tcp://127.0.0.1:{port}")
    try:
        config = LiveConfig(sources=(SourceSettings(str(DEMO_CLIP)),) * 2,
                            model=ModelSettings("rcgrad", device="cpu", untrained=True),
                            publishing=PublishSettings(f"tcp://127.0.0.1:{port}"))
        with pytest.raises(PublishError, match="address already in use"):
            build_live(config)
    finally:
        holder.close(0)
        ctx.term()
    assert len(videos) == 2 and all(v.state == "closed" for v in videos)
    assert len(audios) == 1  # the two cameras of one clip share its sound track's source
    assert len(engines) == 1 and not engines[0]._batcher.alive


def test_a_programming_error_at_start_is_not_reported_as_bad_input(monkeypatch, capsys):
    """A ValueError from a bug while building escapes run_live's main (a traceback, exit status 1)
    instead of passing for the user's mistake (before: one line and exit status 2)."""
    def broken(*args, **kwargs):
        raise ValueError("a bug, not the user's input")
    monkeypatch.setattr(assembly, "VideoSource", broken)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["--demo", "--model", "flow_only", "--publish", ANY_PORT, "--quiet"])
    assert "run_live: error" not in capsys.readouterr().err


# ---------------------------------------------------------------------------- the benchmarks

def _bench(*args):
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]


def test_bench_streams_builds_its_rows_through_the_assembly():
    rows = _bench("bench/streams.py", "--seconds", "2", "--streams", "1", "2", "--model", "flow_only",
                  "--device", "cpu", "--total-fps", "48")
    cells = [[c.strip() for c in r.split("|")[1:-1]] for r in rows]
    # One line per stream, then the row's "all" line, per stream count.
    assert [(c[0], c[1]) for c in cells] == [("1", "cam"), ("1", "**all**"), ("2", "cam0"), ("2", "cam1"),
                                             ("2", "**all**")]
    assert cells[1][10] == "-"  # one stream: nothing shared
    assert float(cells[4][10]) >= 1.0  # two streams: the batching engine's mean batch
    assert all(float(c[2]) > 0 for c in cells[2:4])  # each stream published maps
    assert int(cells[4][8]) > 0 and "->" in cells[4][9]  # threads and RSS of the process


def test_bench_live_builds_its_run_through_the_assembly():
    rows = _bench("bench/live.py", "--seconds", "1", "--models", "flow_only", "--backends", "torch",
                  "--device", "cpu")
    assert len(rows) == 1 and rows[0].startswith("| flow_only | torch | ") and float(rows[0].split("|")[3]) > 0


def test_the_cli_module_runs_as_a_program():
    """`python -m realtime.cli --help` printed nothing (no __main__ guard); run_live.py stays the documented entry."""
    proc = subprocess.run([sys.executable, "-m", "realtime.cli", "--help"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python run_live.py"), proc.stderr


def test_the_flow_options_reach_each_rolling_flow_and_the_fallbacks_the_stats():
    """--no-stabilise / --motion-memory are parsed into FlowSettings, which sets each stream's RollingFlow;
    a run with the memory publishes maps and counts stabilise fallbacks in its stats."""
    from realtime.cli import build_parser

    args = build_parser().parse_args(["--demo", "--no-stabilise", "--motion-memory", "on"])
    assert (cli.to_config(args).flow.stabilise, cli.to_config(args).flow.motion_memory) == (False, True)
    assert (cli.to_config(build_parser().parse_args(["--demo"])).flow.stabilise) is True
    config = dataclasses.replace(_config(duration=2.5), flow=FlowSettings(motion_memory=True))
    system = build_live(config)
    flow = system.pipelines[0].rolling.config
    assert flow.stabilise and flow.motion_memory_s == 5.0
    final = system.run()
    assert final[0]["published"] > 0 and final[0]["stabilise_fallbacks"] == 0
    off = build_live(dataclasses.replace(_config(), flow=FlowSettings(stabilise=False, motion_memory=False)))
    try:
        assert not off.pipelines[0].rolling.config.stabilise and off.pipelines[0].rolling.config.motion_memory_s == 0
    finally:
        off.close()


def test_the_status_line_counts_unstabilised_flow_fields():
    from realtime.console import stabilise_text

    assert stabilise_text({"stabilise_fallbacks": 3}) == "  unstabilised 3"
    assert stabilise_text({"stabilise_fallbacks": 0}) == "" and stabilise_text({}) == ""
