"""The threaded live pipeline with real parts: a real video file source paced in real
time, real rolling flow, real engines, a collecting publisher."""
import threading
import time

import cv2
import numpy as np
import pytest

from flowgrad import engine as engines
from flowgrad import models
from helpers import ToneSource
from helpers import pipeline_config as _config
from helpers import video_source as _video
from livestandins import write_float_wav
from realtime.audio_source import AudioSourceConfig, open_audio_source
from realtime.pipeline import Pipeline, PipelineConfig, PipelineError
from realtime.protocol import Heatmap, Status
from realtime.streams import run_streams
from realtime.turns import Turns
from realtime.ring import AudioRing
from realtime.video_source import Frame

W, H, FPS = 320, 180, 25
SIDE = 40


def _square_x(i):
    return 20 + 4 * i  # px per frame, moving right


@pytest.fixture(scope="module")
def square_video(tmp_path_factory):
    """4 s of a bright textured square crossing a dark textured background."""
    path = tmp_path_factory.mktemp("video") / "square.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur((rng.random((H, W)) * 60).astype(np.uint8), (0, 0), 2)
    patch = cv2.GaussianBlur((150 + rng.random((SIDE, SIDE)) * 100).astype(np.uint8), (0, 0), 1)
    for i in range(4 * FPS):
        img = background.copy()
        x = _square_x(i) % (W - SIDE)
        img[70:70 + SIDE, x:x + SIDE] = patch
        writer.write(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


class Collector:
    """A publish callable that keeps every message (optionally slowly)."""

    def __init__(self, delay_s=0.0):
        self.messages, self.delay_s = [], delay_s

    def __call__(self, msg):
        if self.delay_s:
            time.sleep(self.delay_s)
        self.messages.append(msg)

    def of(self, kind):
        return [m for m in self.messages if isinstance(m, kind)]


def test_publishes_heatmaps_and_status_and_stops(square_video):
    out = Collector()
    pipe = Pipeline(_config(), _video(square_video), engines.open("flow_only"), out)
    start = time.monotonic()
    stats = pipe.run(duration=2.5)
    assert time.monotonic() - start < 2.5 + 2.5  # stop took < 2 s (+ slack for the last status)
    maps, status = out.of(Heatmap), out.of(Status)
    assert len(maps) >= 10, stats
    assert [m.seq for m in maps] == list(range(len(maps)))
    assert all(m.stream == "test" and m.model == "flow_only" and m.frame_size == (W, H) for m in maps)
    assert np.all(np.diff([m.capture_time for m in maps]) > 0)
    assert all(m.publish_time >= m.capture_time for m in maps)
    assert all(cv2.imdecode(np.frombuffer(m.frame_jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (H, W, 3)
               for m in maps[:3])
    assert len(status) >= 3 and status[-1].fps > 0
    assert not pipe.alive


def test_heatmap_lies_on_the_moving_square_in_the_published_frame(square_video):
    """End to end: flow sampled on the newest frame puts the map where the square IS."""
    out = Collector()
    Pipeline(_config(), _video(square_video, loop=False), engines.open("flow_only"), out).run(duration=2.0)
    hits = 0
    maps = out.of(Heatmap)
    for m in maps:
        frame = cv2.imdecode(np.frombuffer(m.frame_jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
        cols = frame[70:70 + SIDE].mean(axis=0)
        square_centre = np.argmax(np.convolve(cols, np.ones(SIDE), mode="valid")) + SIDE / 2
        heat = cv2.resize(m.heatmap, (W, H))
        peak_x = np.argmax(heat.sum(axis=0))
        hits += abs(peak_x - square_centre) < SIDE / 2
    assert maps and hits >= 0.8 * len(maps), (hits, len(maps))


def test_audio_model_embeds_the_ring_window(square_video):
    """An audio model's embedding is computed from the ring's newest window."""
    eng = engines.TorchEngine(models.create("rcgrad", width=0.25).eval())
    ring = AudioRing(eng.audio_rate, 5.0)
    out = Collector()
    pipe = Pipeline(_config(), _video(square_video), eng, out, audio=ToneSource(ring), ring=ring)
    pipe.run(duration=3.0)
    maps = out.of(Heatmap)
    assert maps and pipe.stage_ms["audio"].count >= 1
    window = ring.latest(eng.audio_seconds).samples
    np.testing.assert_allclose(pipe.audio_embedding, eng.embed_audio(window[None]), rtol=1e-4, atol=1e-5)


def test_a_failing_stage_stops_everything_and_raises(square_video):
    class Broken:
        name, input_size, uses_audio = "broken", (224, 224), False

        def localise(self, *a):
            raise RuntimeError("model exploded")

    pipe = Pipeline(_config(), _video(square_video), Broken(), Collector())
    start = time.monotonic()
    with pytest.raises(PipelineError, match="infer stage failed: RuntimeError: model exploded"):
        pipe.run(duration=30)
    assert time.monotonic() - start < 5
    assert not pipe.alive


def test_a_slow_publisher_only_drops_maps(square_video):
    """The producer side never waits for the consumer: missed maps are counted drops."""
    out = Collector(delay_s=0.3)
    pipe = Pipeline(_config(status_every_s=5.0), _video(square_video), engines.open("flow_only"), out)
    stats = pipe.run(duration=2.0)
    maps = out.of(Heatmap)
    assert stats["drops"]["maps"] > 0
    assert len(maps) <= 2.0 / 0.3 + 2
    # The backlog never builds: every published map is fresh (< 0.3 s publish delay + one flow step).
    ages = [m.publish_time - m.capture_time for m in maps]
    assert max(ages) < 0.9, ages


def test_stop_from_another_thread_ends_run(square_video):
    pipe = Pipeline(_config(), _video(square_video), engines.open("flow_only"), Collector())
    threading.Timer(0.5, pipe.stop).start()
    start = time.monotonic()
    pipe.run()
    assert time.monotonic() - start < 3


def test_a_file_without_loop_ends_the_run_normally(tmp_path):
    path = tmp_path / "short.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    for i in range(10):
        writer.write(np.full((H, W, 3), 20 * i, np.uint8))
    writer.release()
    start = time.monotonic()
    Pipeline(_config(), _video(path, loop=False), engines.open("flow_only"), Collector()).run(duration=30)
    assert time.monotonic() - start < 5


def test_audio_model_needs_audio_source(square_video):
    with pytest.raises(ValueError, match="listens to audio"):
        Pipeline(_config(), _video(square_video), engines.open("rcgrad", allow_untrained=True), Collector())


def test_stop_ends_a_capture_waiting_in_a_reconnect_back_off(square_video):
    """A camera mid-outage waits out its reconnect back-off (up to 8 s) inside read(); stop()
    closes the source first, so that wait ends at once and every stage is joined."""

    class Reconnecting:
        """read() waits as VideoSource does between reopening attempts: until close()."""

        stats = {}

        def __init__(self):
            self.closed = threading.Event()
            self.state = "reconnecting"

        def read(self):
            self.closed.wait(8.0)
            return None

        def close(self):
            self.closed.set()
            self.state = "closed"

    pipe = Pipeline(_config(), Reconnecting(), engines.open("flow_only"), Collector())
    threading.Timer(0.5, pipe.request_stop).start()
    start = time.monotonic()
    pipe.run()
    assert not pipe.alive
    assert time.monotonic() - start < 0.5 + 1.0


def test_frames_too_small_for_flow_stop_the_run_with_the_reason():
    """A stream that turns to 8x8 frames mid-run: the flow stage names the minimum size."""

    class Tiny:
        state, stats = "live", {}

        def __init__(self):
            self.t = time.monotonic()

        def read(self):
            time.sleep(0.04)
            self.t += 0.04
            return Frame(np.zeros((8, 8, 3), np.uint8), self.t, 0, None)

        def close(self):
            pass

    with pytest.raises(PipelineError, match=r"flow stage failed: ValueError: frames of 8x8 px are too small "
                                            r"for optical flow: it needs at least 16x16 px"):
        Pipeline(_config(), Tiny(), engines.open("flow_only"), Collector()).run(duration=10)


def test_a_failing_audio_source_ends_the_run_with_its_cause(square_video, tmp_path):
    """The audio file vanishes mid-run (its source fails when it loops): the run ends with the
    source's own reason instead of publishing maps computed against silence."""
    eng = engines.TorchEngine(models.create("rcgrad", width=0.25).eval())
    path = write_float_wav(tmp_path / "short.wav", 0.3 * np.ones(eng.audio_rate // 2), eng.audio_rate)
    ring = AudioRing(eng.audio_rate, 5.0)
    audio = open_audio_source(AudioSourceConfig(str(path), eng.audio_rate), ring)
    out = Collector()
    pipe = Pipeline(_config(), _video(square_video), eng, out, audio=audio, ring=ring)
    threading.Timer(0.2, path.unlink).start()
    start = time.monotonic()
    with pytest.raises(PipelineError, match=rf"^audio source failed: SourceError: audio source '{path}': no such file"):
        pipe.run(duration=30)
    assert time.monotonic() - start < 5 and not pipe.alive


def test_status_says_what_is_wrong_with_the_audio(square_video, tmp_path):
    """NaN in the audio file: maps keep coming and every status message says what was replaced."""
    eng = engines.TorchEngine(models.create("rcgrad", width=0.25).eval())
    rate = eng.audio_rate
    samples = 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    samples[: rate // 10] = np.nan
    ring = AudioRing(rate, 5.0)
    audio = open_audio_source(AudioSourceConfig(str(write_float_wav(tmp_path / "nan.wav", samples, rate)), rate), ring)
    out = Collector()
    Pipeline(_config(), _video(square_video), eng, out, audio=audio, ring=ring).run(duration=3.0)
    status = out.of(Status)
    assert status and all(s.source["audio"] == "running" for s in status)
    assert status[-1].source["audio_problem"].endswith("invalid samples (NaN/inf) replaced by silence")
    assert status[-1].source["audio_stats"]["invalid_samples"] >= rate // 10
    assert len(out.of(Heatmap)) >= 5


def test_a_model_returning_nan_is_blamed_on_the_infer_stage(square_video):
    """A non-finite heatmap is caught where it is made, not reported as a publishing failure."""

    class NaNModel:
        name, input_size, uses_audio = "nan", (224, 224), False

        def __init__(self, heat, score):
            self.heat, self.score = heat, score

        def localise(self, frame, flow, emb):
            return np.full((1, 224, 224), self.heat, np.float32), np.full(1, self.score, np.float32)

    for heat, score in ((np.nan, 0.5), (0.5, np.nan), (0.5, 1.5)):
        with pytest.raises(PipelineError, match="^infer stage failed: ValueError: the model returned a heatmap or "
                                                "score with NaN"):
            Pipeline(_config(), _video(square_video), NaNModel(heat, score), Collector()).run(duration=30)


def _iec_a_db(f):
    """The analytic A-weighting of IEC 61672-1 (Annex E), dB: independent of the filter design."""
    f2 = f * f
    ra = 12194.0 ** 2 * f2 * f2 / ((f2 + 20.6 ** 2) * np.sqrt((f2 + 107.7 ** 2) * (f2 + 737.9 ** 2)) * (f2 + 12194.0 ** 2))
    return 20 * np.log10(ra) + 2.0


@pytest.mark.parametrize("calibration", [None, -30.0])
def test_messages_carry_the_level_of_the_tone_heard(square_video, calibration):
    """ToneSource plays 0.3 * sin(2 pi 440 t): its level is 20 log10(0.3 / sqrt 2) + A(440 Hz)."""
    eng = engines.TorchEngine(models.create("rcgrad", width=0.25).eval())
    ring = AudioRing(eng.audio_rate, 5.0)
    out = Collector()
    pipe = Pipeline(_config(mic_calibration_db=calibration), _video(square_video), eng, out,
                    audio=ToneSource(ring), ring=ring)
    pipe.run(duration=2.0)
    expected = 20 * np.log10(0.3 / np.sqrt(2)) + _iec_a_db(440.0)
    unit = "dBFS(A)"
    if calibration is not None:
        expected, unit = expected - calibration + 94.0, "dB(A) SPL"
    maps, status = out.of(Heatmap), [s for s in out.of(Status) if s.level_db is not None]
    assert maps and status
    for m in maps + status:  # maps wait for the first embedding, which comes with the first level
        assert m.level_ref == unit and abs(m.level_db - expected) < 0.5, (m.level_db, expected)


def test_a_model_without_audio_publishes_no_level(square_video):
    out = Collector()
    stats = Pipeline(_config(), _video(square_video), engines.open("flow_only"), out).run(duration=1.5)
    assert out.messages and all(m.level_db is None and m.level_ref is None for m in out.messages)
    assert stats["level_db"] is None


class _FlowOnlyStandIn:
    """flow_only's maps, with a chosen sounding ``score`` (None: flow_only's own) and each call
    taking ``delay_s`` (inference slower than the camera)."""

    def __init__(self, score=None, delay_s=0.0):
        self.inner, self.score, self.delay_s = engines.open("flow_only"), score, delay_s

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def localise(self, frame, flow, emb):
        time.sleep(self.delay_s)
        maps, scores = self.inner.localise(frame, flow, emb)
        return maps, scores if self.score is None else np.full(len(frame), self.score, np.float32)


@pytest.mark.parametrize("score, min_score, quiet", [(0.3, 0.5, True), (0.7, 0.5, False), (0.5, 0.5, False),
                                                     (0.3, 0.0, False), (0.999, 1.0, True)])
def test_every_map_carries_its_score_and_whether_it_is_quiet(square_video, score, min_score, quiet):
    out = Collector()
    stats = Pipeline(_config(min_score=min_score), _video(square_video), _FlowOnlyStandIn(score=score), out).run(duration=1.5)
    maps = out.of(Heatmap)
    assert maps and all(m.score == pytest.approx(score) and m.quiet is quiet for m in maps)
    assert stats["score"] == pytest.approx(score) and stats["quiet"] is quiet


def test_flow_only_has_no_ears_and_is_never_quiet(square_video):
    out = Collector()
    Pipeline(_config(), _video(square_video), engines.open("flow_only"), out).run(duration=1.5)
    assert out.of(Heatmap) and all(m.score == 1.0 and m.quiet is False for m in out.of(Heatmap))


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_min_score_outside_0_1_is_refused(bad):
    with pytest.raises(ValueError, match="min_score must be in"):
        PipelineConfig(min_score=bad)


def test_slow_inference_gets_no_flow_computed_in_vain(square_video):
    """Before (issue 20): the flow stage computed a flow for every frame whatever inference
    took, and most were overwritten unused (counted as dropped flows), taking the CPU that
    other cameras' inference needed. Now a flow is made only once inference took the last."""
    out = Collector()
    pipe = Pipeline(_config(), _video(square_video), _FlowOnlyStandIn(delay_s=0.15), out)
    stats = pipe.run(duration=2.0)
    maps = len(out.of(Heatmap))
    assert maps >= 5, stats  # inference still runs back to back
    assert stats["drops"]["flows"] == 0, stats
    # Every flow computed was used, but the ones in flight when the run stopped.
    assert pipe.rolling.stats.computed <= maps + 3, (pipe.rolling.stats, maps)


class _CountingStandIn(_FlowOnlyStandIn):
    """flow_only taking ``delay_s`` a call, counting how many calls run at the same time."""

    def __init__(self, delay_s):
        super().__init__(delay_s=delay_s)
        self.lock, self.now, self.most = threading.Lock(), 0, 0

    def localise(self, frame, flow, emb):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return super().localise(frame, flow, emb)
        finally:
            with self.lock:
                self.now -= 1


@pytest.mark.parametrize("at_once", [None, 1, 2])
def test_cameras_taking_turns_never_run_more_maps_at_once_and_none_starves(square_video, at_once):
    """Three cameras' pipelines on one engine: with Turns(N) at most N maps are made at once (so
    each has whole cores; without turns all three share them) and every camera gets maps."""
    engine, outs = _CountingStandIn(delay_s=0.05), [Collector() for _ in range(3)]
    turns = None if at_once is None else Turns(at_once)
    pipes = [Pipeline(_config(stream=f"cam{k}"), _video(square_video), engine, out, turns=turns)
             for k, out in enumerate(outs)]
    run_streams(pipes, duration=2.0)
    counts = [len(out.of(Heatmap)) for out in outs]
    assert min(counts) >= 3 and min(counts) >= 0.5 * max(counts), counts
    assert engine.most == (3 if at_once is None else at_once), engine.most
    assert all(not p.alive for p in pipes)
