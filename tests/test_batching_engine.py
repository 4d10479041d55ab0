"""realtime.batching.BatchingEngine: concurrent streams share engine calls, each gets its own
rows back (equal to calling the engine alone), errors reach every caller, close never hangs."""
import threading
import time

import numpy as np
import pytest
import torch

from flowgrad import engine as engines
from flowgrad import models
from helpers import moving_texture_video
from realtime.batching import Batcher, BatchingEngine, SharedEmbedding


def _inputs(model, n, seed):
    rng = np.random.default_rng(seed)
    h, w = model.input_size
    frame = rng.random((n, 3, h, w), dtype=np.float32)
    flow = (rng.standard_normal((n, 2, h, w)) * 3).astype(np.float32)
    emb = rng.standard_normal((n, model.embed_dim)).astype(np.float32) if model.uses_audio else None
    return frame, flow, emb


class CountingEngine:
    """An engine double that records the batch size of every call and can be told to fail."""

    def __init__(self, inner, fail=False, delay=0.0):
        self.inner, self.fail, self.delay, self.calls = inner, fail, delay, []
        self.name, self.batch, self.source = inner.name, "dynamic", "counting"

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def localise(self, frame, flow, emb):
        self.calls.append(len(frame))
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("engine exploded")
        return self.inner.localise(frame, flow, emb)


@pytest.fixture(scope="module")
def rcgrad_engine():
    torch.manual_seed(0)
    return engines.TorchEngine(models.create("rcgrad", width=0.125).eval(), "cpu", source="rcgrad")


def test_concurrent_streams_get_their_own_maps_in_shared_calls(rcgrad_engine):
    counting = CountingEngine(rcgrad_engine, delay=0.05)  # slow calls so requests pile up
    streams = 6
    inputs = [_inputs(rcgrad_engine, 1, seed) for seed in range(streams)]
    expected = [rcgrad_engine.localise(*x) for x in inputs]
    got = [None] * streams
    with BatchingEngine(counting, max_batch=4, max_wait_s=0.02) as shared:
        assert shared.name == "rcgrad" and shared.input_size == rcgrad_engine.input_size
        barrier = threading.Barrier(streams)

        def stream(i):
            barrier.wait()
            got[i] = shared.localise(*inputs[i])
        threads = [threading.Thread(target=stream, args=(i,)) for i in range(streams)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert shared.maps == streams and shared.batches == len(counting.calls)
    for (g, g_score), (e, e_score) in zip(got, expected):
        assert g.shape == (1, *rcgrad_engine.map_size) and g_score.shape == (1,)
        np.testing.assert_allclose(g, e, atol=1e-5)  # batched rows equal single calls
        np.testing.assert_allclose(g_score, e_score, atol=1e-6)  # and so do their scores
    assert max(counting.calls) <= 4 and sum(counting.calls) == streams
    assert len(counting.calls) < streams  # at least one call served several streams


def test_an_engine_error_reaches_every_caller_of_the_batch(rcgrad_engine):
    with BatchingEngine(CountingEngine(rcgrad_engine, fail=True), max_wait_s=0.0) as shared:
        with pytest.raises(RuntimeError, match="engine exploded"):
            shared.heatmaps(*_inputs(rcgrad_engine, 1, 0))
        with pytest.raises(RuntimeError, match="engine exploded"):  # the worker survives it
            shared.heatmaps(*_inputs(rcgrad_engine, 1, 1))


def test_close_releases_a_waiting_caller_quickly(rcgrad_engine):
    shared = BatchingEngine(CountingEngine(rcgrad_engine, delay=1.0), max_wait_s=0.0)
    shared.heatmaps(*_inputs(rcgrad_engine, 1, 0))  # the worker is now idle
    errors = []

    def call():
        try:
            shared.heatmaps(*_inputs(rcgrad_engine, 1, 1))
            shared.heatmaps(*_inputs(rcgrad_engine, 1, 2))
        except RuntimeError as e:
            errors.append(str(e))
    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.2)
    start = time.monotonic()
    shared.close()
    t.join(3)
    assert not t.is_alive() and time.monotonic() - start < 3
    assert errors and "closed" in errors[0]
    with pytest.raises(RuntimeError, match="closed"):
        shared.heatmaps(*_inputs(rcgrad_engine, 1, 3))


def test_audio_passes_through_and_fixed_batches_are_refused(rcgrad_engine):
    with BatchingEngine(rcgrad_engine) as shared:
        wave = np.random.default_rng(0).standard_normal((1, rcgrad_engine.samples)).astype(np.float32) * 0.1
        np.testing.assert_allclose(shared.embed_audio(wave), rcgrad_engine.embed_audio(wave), atol=1e-6)

    class Fixed:
        batch, source = 4, "fixed.frame.onnx"
    with pytest.raises(ValueError, match="fixed batch of 4"):
        BatchingEngine(Fixed())


def test_three_streams_share_one_engine_and_one_socket(tmp_path):
    """Three real pipelines (paced video files) with one batching engine and one real ZeroMQ
    PUB socket: a subscriber receives maps of every stream, each stream's seq counts 0, 1, 2...,
    and everything stops cleanly."""
    from realtime.pipeline import Pipeline
    from realtime.publisher import Publisher, PublisherConfig
    from realtime.ring import AudioRing
    from realtime.streams import SharedPublish, run_streams
    from realtime.protocol import decode
    from realtime.subscribe import subscribe_raw
    from helpers import ToneSource
    from helpers import pipeline_config as _config
    from helpers import video_source as _video

    path = tmp_path / "square.avi"
    writer = moving_texture_video(path)
    torch.manual_seed(0)
    base = engines.TorchEngine(models.create("rcgrad", width=0.125).eval(), "cpu", source="rcgrad")
    with Publisher(PublisherConfig("tcp://127.0.0.1:*")) as publisher, BatchingEngine(base, max_wait_s=0.01) as shared:
        received = []

        stop_listening = time.monotonic() + 6.0

        def listen():
            for msg in subscribe_raw(publisher.address, tick_s=0.2):
                if time.monotonic() > stop_listening:
                    return
                if msg is not None and msg.startswith(b"heatmap/"):
                    m = decode(msg)
                    received.append((m.stream, m.seq))
        listener = threading.Thread(target=listen)
        listener.start()
        time.sleep(0.5)  # let the subscriber join before the first map (PUB/SUB slow joiner)
        send = SharedPublish(publisher.publish)
        pipes = []
        for k in range(3):
            ring = AudioRing(base.audio_rate, 5.0)
            pipes.append(Pipeline(_config(stream=f"cam{k}"), _video(writer), shared, send,
                                  audio=ToneSource(ring), ring=ring))
        stats = run_streams(pipes, duration=3.0)
        listener.join(10)
    assert all(not p.alive for p in pipes)
    assert all(s["published"] > 0 for s in stats), stats
    published = sum(s["published"] for s in stats)
    # Maps made but not yet published when the run stopped: at most one per stream in each
    # of the two hand-overs after inference.
    assert 0 <= shared.maps - published <= 2 * len(pipes)
    assert shared.mean_batch > 1.2  # three streams at the same rate share engine calls
    for k in range(3):
        seqs = [seq for stream, seq in received if stream == f"cam{k}"]
        assert seqs and seqs == sorted(seqs), (k, seqs)


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_batching_flow_gives_each_stream_its_own_pair_flow(compile):
    """Concurrent pairs of one size share a Farneback call; a pair of another size is never
    stacked with them; every caller gets what farneback gives for its pair alone (compiled:
    batches padded to max_batch, the padding rows dropped)."""
    from flowgrad.flow import farneback
    from realtime.batching import BatchingFlow

    rng = np.random.default_rng(0)

    def pair(h, w, shift):
        base = (rng.random((h // 4, w // 4)) * 255).astype(np.float32)
        img = np.kron(base, np.ones((4, 4), np.float32))
        return img.astype(np.uint8), np.roll(img, shift, axis=1).astype(np.uint8)
    pairs = [pair(64, 96, s) for s in (1, 2, 3)] + [pair(64, 80, 2)]
    got = [None] * len(pairs)
    with BatchingFlow("cpu", max_batch=2, max_wait_s=0.2, compile=compile) as shared:
        if compile:
            shared.warm_up((64, 96))
            shared.warm_up((64, 80))
        barrier = threading.Barrier(len(pairs))

        def stream(i):
            barrier.wait()
            got[i] = shared(*pairs[i])
        threads = [threading.Thread(target=stream, args=(i,)) for i in range(len(pairs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert shared.batches < len(pairs)  # the three pairs of one size shared a call
    for (p, n), g in zip(pairs, got):
        want = farneback(torch.from_numpy(p), torch.from_numpy(n))[0]
        assert g.shape == want.shape
        torch.testing.assert_close(g, want, atol=1e-4, rtol=0)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_cameras_of_one_microphone_share_one_embedding_per_period(rcgrad_engine):
    clock = Clock()
    calls = []

    class Counting:
        def __getattr__(self, name):
            return getattr(rcgrad_engine, name)

        def embed_audio(self, wave):
            calls.append(wave)
            time.sleep(0.05)  # concurrent callers arrive while it computes
            return rcgrad_engine.embed_audio(wave)
    shared = SharedEmbedding(Counting(), max_age_s=0.9, clock=clock)
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, (1, rcgrad_engine.samples)).astype(np.float32)
    got = [None] * 4

    def camera(i):
        got[i] = shared.embed_audio(wave)
    threads = [threading.Thread(target=camera, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and shared.computed == 1  # four cameras, one computation
    assert all(g is got[0] for g in got) and not got[0].flags.writeable
    np.testing.assert_allclose(got[0], rcgrad_engine.embed_audio(wave), rtol=1e-5, atol=1e-6)
    clock.now += 0.5
    assert shared.embed_audio(wave) is got[0] and len(calls) == 1  # still fresh
    clock.now += 0.5
    assert shared.embed_audio(wave) is not got[0] and len(calls) == 2  # a new period: computed again
    assert shared.name == rcgrad_engine.name and shared.input_size == rcgrad_engine.input_size
    with pytest.raises(ValueError, match="max_age_s"):
        SharedEmbedding(rcgrad_engine, max_age_s=0)


def test_no_caller_starves_when_calls_are_slower_than_requests():
    """Five callers keep asking, batches hold at most two: answers go round, first come first served."""
    def run(batch):
        time.sleep(0.02)
        return [args[0] for args in batch]
    batcher = Batcher(run, max_batch=2, max_wait_s=0.0, name="test")
    answered = [0] * 5
    stop = threading.Event()

    def caller(i):
        while not stop.is_set():
            assert batcher.submit(i) == i
            answered[i] += 1
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    while min(answered) < 5 and max(answered) < 200:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(10)
    batcher.close()
    assert not any(t.is_alive() for t in threads) and not batcher.alive
    assert min(answered) >= 0.5 * max(answered), answered
