"""Work of several camera streams batched into shared calls: heatmaps (one engine) and flow (one Farneback).

Each stream's thread calls :meth:`BatchingEngine.heatmaps` or a
:class:`BatchingFlow` as it would call the engine or Farneback itself, and
blocks until its own answer is ready. A worker thread takes the requests
waiting at that moment (up to ``max_batch`` of the same kind; after the first
it waits at most ``max_wait_s`` for more), makes ONE call on the stacked batch
and hands each caller its own rows, first come first served. On a GPU this turns
N streams' N small calls into one large call; on a CPU it mostly saves per-call
overhead, and ``workers`` single-threaded calls side by side use the cores with
less CPU per map than one call split over them (issue 20).

Memory stays bounded: every caller has at most one request in flight (it waits
for the answer), so the queue never holds more than the number of streams.
An error of a shared call is returned to every caller of that batch; after
``close`` waiting callers get a RuntimeError at once rather than hanging.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional, Sequence

import numpy as np
import torch

from flowgrad.flow import Farneback, FarnebackParams

_POLL_S = 0.1


@dataclass(eq=False)  # identity: requests hold arrays, and two equal requests are still two callers
class _Request:
    args: tuple
    key: Hashable
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: Optional[BaseException] = None


class Batcher:
    """Runs ``run(list of request args) -> list of results`` on batches of concurrent requests.

    Requests with different ``key`` values (e.g. frame sizes) never share a
    batch. name: the worker threads' name and the subject of error messages.
    workers: threads making calls at the same time (``run`` must allow that).
    """

    def __init__(self, run: Callable[[list[tuple]], Sequence[Any]], max_batch: int, max_wait_s: float,
                 name: str, workers: int = 1) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if not max_wait_s >= 0:
            raise ValueError(f"max_wait_s must be >= 0 seconds, got {max_wait_s!r}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._run, self.max_batch, self.max_wait_s, self.name = run, max_batch, max_wait_s, name
        self._pending: list[_Request] = []
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0  # shared calls made
        self.items = 0  # requests answered by them
        self._workers = [threading.Thread(target=self._loop, name=name, daemon=True) for _ in range(workers)]
        for worker in self._workers:
            worker.start()

    @property
    def mean_batch(self) -> float:
        """Average requests per shared call so far (0 before the first)."""
        return self.items / self.batches if self.batches else 0.0

    def submit(self, *args, key: Hashable = None):
        """Queue one request and wait for its result; raises the shared call's error, or
        RuntimeError once closed."""
        request = _Request(args, key)
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the shared {self.name} is closed")
            self._pending.append(request)
            self._cond.notify_all()
        while not request.done.wait(_POLL_S):
            if self._closed and not request.done.is_set():
                raise RuntimeError(f"the shared {self.name} was closed while a request was pending")
        if request.error is not None:
            raise request.error
        return request.result

    def close(self) -> None:
        """Stop the worker; requests still waiting fail with RuntimeError. Idempotent."""
        with self._cond:
            self._closed = True
            waiting, self._pending = self._pending, []
            self._cond.notify_all()
        for request in waiting:
            request.error = RuntimeError(f"the shared {self.name} was closed while a request was pending")
            request.done.set()
        deadline = time.monotonic() + 5.0
        for worker in self._workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))

    @property
    def alive(self) -> bool:
        """True while a worker thread still runs (after close: inside a call it cannot leave)."""
        return any(worker.is_alive() for worker in self._workers)

    def _take(self) -> list[_Request]:
        """The next batch: wait for a first request, then up to max_wait_s for company of its key."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait(_POLL_S)
            if self._closed:
                return []
            key = self._pending[0].key
            deadline = time.monotonic() + self.max_wait_s
            while sum(r.key == key for r in self._pending) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = [r for r in self._pending if r.key == key][:self.max_batch]
            chosen = {id(r) for r in batch}
            self._pending = [r for r in self._pending if id(r) not in chosen]
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            try:
                results = self._run([r.args for r in batch])
            except Exception as e:  # noqa: BLE001 - every caller of this batch gets the error
                for request in batch:
                    request.error = e
                    request.done.set()
                continue
            with self._cond:  # several workers count
                self.batches += 1
                self.items += len(batch)
            for request, result in zip(batch, results):
                request.result = result
                request.done.set()


class _SharedCalls:
    """What both shared-call wrappers offer: counters, close, and use as a context manager.
    Subclasses set ``self._batcher``."""

    _batcher: Batcher

    @property
    def batches(self) -> int:
        """Shared calls made."""
        return self._batcher.batches

    @property
    def mean_batch(self) -> float:
        """Average requests per shared call so far (0 before the first)."""
        return self._batcher.mean_batch

    def close(self) -> None:
        """Stop the worker; requests still waiting fail with RuntimeError. Idempotent."""
        self._batcher.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BatchingEngine(_SharedCalls):
    """Wraps an :class:`flowgrad.engine.Engine` so that concurrent ``localise`` / ``heatmaps`` calls share batches.

    engine: a dynamic-batch engine (torch, or an ONNX export with batch "dynamic").
    max_batch: most requests per engine call. max_wait_s: how long the worker
    waits, after the first request, for others to join its batch (seconds).
    workers: engine calls made at the same time (onnxruntime and torch sessions allow it).
    The model's attributes (name, input_size, audio_rate, ...) are the engine's;
    ``embed_audio`` is passed through under a lock (streams refresh it about
    once a second each).
    """

    def __init__(self, engine, max_batch: int = 16, max_wait_s: float = 0.004, workers: int = 1) -> None:
        fixed = getattr(engine, "batch", "dynamic")
        if fixed != "dynamic" and fixed != 1 and max_batch > 1:
            raise ValueError(f"{engine.source}: exported for a fixed batch of {fixed}; batching streams needs a "
                             "dynamic batch (`python -m export.onnx ... --batch dynamic`)")
        self.engine = engine
        self._audio_lock = threading.Lock()
        self._batcher = Batcher(self._run, 1 if fixed == 1 else max_batch, max_wait_s, "heatmap engine", workers)

    def __getattr__(self, name):
        # Everything but localise / heatmaps / embed_audio is the wrapped engine's (name, input_size, ...).
        return getattr(self.__dict__["engine"], name)

    @property
    def maps(self) -> int:
        """Heatmap requests answered."""
        return self._batcher.items

    def embed_audio(self, wave: np.ndarray) -> np.ndarray:
        """The engine's ``embed_audio``, one caller at a time."""
        with self._audio_lock:
            return self.engine.embed_audio(wave)

    def localise(self, frame: np.ndarray, flow: np.ndarray,
                 embedding: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Maps and scores for one stream's batch (usually 1 row), computed together with other
        streams' requests.

        frame (B, 3, H, W), flow (B, 2, H, W), embedding (B, D) or None, as
        ``Engine.localise``; returns ((B, h, w), (B,)) float32. Raises the engine's error
        for this batch, or RuntimeError once closed.
        """
        return self._batcher.submit(frame, flow, embedding)

    def heatmaps(self, frame: np.ndarray, flow: np.ndarray, embedding: Optional[np.ndarray]) -> np.ndarray:
        """The maps of :meth:`localise`: (B, h, w) float32."""
        return self.localise(frame, flow, embedding)[0]

    def _run(self, requests: list[tuple]) -> list[tuple[np.ndarray, np.ndarray]]:
        frames, flows, embeddings = zip(*requests)
        emb = None if embeddings[0] is None else np.concatenate(embeddings)
        maps, scores = self.engine.localise(np.concatenate(frames), np.concatenate(flows), emb)
        out, start = [], 0
        for f in frames:
            out.append((maps[start:start + len(f)], scores[start:start + len(f)]))
            start += len(f)
        return out


class BatchingFlow(_SharedCalls):
    """A ``flow_fn`` for :class:`flowgrad.flow.RollingFlow` shared by several streams: concurrent
    pairs of the same size go through ONE batched call of our torch Farneback on ``device``.

    ``flow(prev, next)``: (h, w) uint8 grayscale frames -> (2, h, w) float32 tensor of
    (dx, dy) pixels on the CPU, as ``flowgrad.flow.farneback`` gives for the pair alone.
    compile: fuse the Farneback steps with ``torch.compile`` (:class:`flowgrad.flow.Farneback`);
    every batch is then padded to ``max_batch`` pairs so that one graph serves all,
    and :meth:`warm_up` compiles it before the first camera frame has to wait.
    """

    def __init__(self, device: str = "cuda", params: FarnebackParams = FarnebackParams(),
                 max_batch: int = 16, max_wait_s: float = 0.004, compile: bool = False) -> None:
        self.device, self.params = device, params
        self._farneback = Farneback(params, compile=compile)
        self._batcher = Batcher(self._run, max_batch, max_wait_s, "flow")

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> torch.Tensor:
        return self._batcher.submit(prev, nxt, key=(prev.shape, nxt.shape))

    def warm_up(self, size_hw: tuple[int, int]) -> None:
        """Run one full batch of blank pairs of ``size_hw`` = (H, W) in pixels of the flow grid,
        so a compiled Farneback is built now."""
        blank = np.zeros(size_hw, np.uint8)
        self._run([(blank, blank)])

    def _run(self, requests: list[tuple]) -> list[torch.Tensor]:
        pairs = list(requests)
        if self._farneback.compiled:  # repeat the last pair: one batch size, one compiled graph
            pairs += pairs[-1:] * (self._batcher.max_batch - len(pairs))
        prev = torch.from_numpy(np.stack([p for p, _ in pairs])).to(self.device)
        nxt = torch.from_numpy(np.stack([n for _, n in pairs])).to(self.device)
        return list(self._farneback(prev, nxt)[: len(requests)].cpu())


class SharedEmbedding:
    """The engine as seen by the cameras that hear one microphone: they share its audio embedding.

    ``embed_audio(wave)``: wave (1, T) float32 -> (1, D) float32 as the engine's, but one
    computed less than ``max_age_s`` seconds ago (from any of these cameras' identical
    windows) is returned instead of computing another: one embedding per microphone and
    refresh period instead of one per camera. Concurrent callers wait for one
    computation. Everything else (``heatmaps``, name, sizes, ...) is the engine's.
    clock: monotonic seconds (tests may pass their own).
    """

    def __init__(self, engine, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be > 0 seconds, got {max_age_s!r}")
        self.engine, self.max_age_s, self._clock = engine, max_age_s, clock
        self._lock = threading.Lock()
        self._embedding: Optional[np.ndarray] = None
        self._at = 0.0
        self.computed = 0  # embeddings actually computed

    def __getattr__(self, name):
        return getattr(self.__dict__["engine"], name)

    def embed_audio(self, wave: np.ndarray) -> np.ndarray:
        """The shared (1, D) embedding of the microphone's newest window ``wave`` (1, T)."""
        with self._lock:
            now = self._clock()
            if self._embedding is None or now - self._at >= self.max_age_s:
                self._embedding = self.engine.embed_audio(wave)
                self._embedding.setflags(write=False)  # one array for every camera: none may change it
                self._at = now
                self.computed += 1
            return self._embedding
