"""One engine shared by several camera streams, with their heatmap requests batched.

Each stream's inference thread calls :meth:`BatchingEngine.heatmaps` as it would
call the engine itself and blocks until its map is ready. A worker thread takes
the requests waiting at that moment (up to ``max_batch``; after the first it
waits at most ``max_wait_s`` for more), runs the engine ONCE on the stacked
batch, and hands each caller its own row. On a GPU this turns N streams' N small
calls into one large call; on a CPU it mostly saves per-call overhead.

Memory stays bounded: every caller has at most one request in flight (it waits
for the answer), so the queue never holds more than the number of streams.
An engine error is returned to every caller of that batch; after :meth:`close`
waiting callers get a RuntimeError at once rather than hanging.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

_POLL_S = 0.1


@dataclass
class _Request:
    frame: np.ndarray
    flow: np.ndarray
    embedding: Optional[np.ndarray]
    done: threading.Event = field(default_factory=threading.Event)
    result: Optional[np.ndarray] = None
    error: Optional[BaseException] = None


class BatchingEngine:
    """Wraps an :class:`flowgrad.engine.Engine` so that concurrent ``heatmaps`` calls share batches.

    engine: a dynamic-batch engine (torch, or an ONNX export with batch "dynamic").
    max_batch: most requests per engine call. max_wait_s: how long the worker
    waits, after the first request, for others to join its batch (seconds).
    The model's attributes (name, input_size, audio_rate, ...) are the engine's;
    ``embed_audio`` is passed through under a lock (streams refresh it about
    once a second each).
    """

    def __init__(self, engine, max_batch: int = 16, max_wait_s: float = 0.004) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if not max_wait_s >= 0:
            raise ValueError(f"max_wait_s must be >= 0 seconds, got {max_wait_s!r}")
        fixed = getattr(engine, "batch", "dynamic")
        if fixed != "dynamic" and fixed != 1 and max_batch > 1:
            raise ValueError(f"{engine.source}: exported for a fixed batch of {fixed}; batching streams needs a "
                             "dynamic batch (`python -m export.onnx ... --batch dynamic`)")
        if fixed == 1:
            max_batch = 1
        self.engine = engine
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: list[_Request] = []
        self._cond = threading.Condition()
        self._audio_lock = threading.Lock()
        self._closed = False
        self.batches = 0  # engine calls made
        self.maps = 0  # heatmaps returned
        self._worker = threading.Thread(target=self._run, name="batching-engine", daemon=True)
        self._worker.start()

    def __getattr__(self, name):
        # Everything but heatmaps / embed_audio is the wrapped engine's (name, input_size, ...).
        return getattr(self.__dict__["engine"], name)

    @property
    def mean_batch(self) -> float:
        """Average heatmaps per engine call so far (0 before the first)."""
        return self.maps / self.batches if self.batches else 0.0

    def embed_audio(self, wave: np.ndarray) -> np.ndarray:
        """The engine's ``embed_audio``, one caller at a time."""
        with self._audio_lock:
            return self.engine.embed_audio(wave)

    def heatmaps(self, frame: np.ndarray, flow: np.ndarray, embedding: Optional[np.ndarray]) -> np.ndarray:
        """Maps for one stream's batch (usually 1 row), computed together with other streams' requests.

        frame (B, 3, H, W), flow (B, 2, H, W), embedding (B, D) or None, as
        ``Engine.heatmaps``; returns (B, h, w) float32. Raises the engine's error
        for this batch, or RuntimeError once closed.
        """
        request = _Request(frame, flow, embedding)
        with self._cond:
            if self._closed:
                raise RuntimeError("the shared engine is closed")
            self._pending.append(request)
            self._cond.notify_all()
        while not request.done.wait(_POLL_S):
            if self._closed and not request.done.is_set():
                raise RuntimeError("the shared engine was closed while a heatmap was pending")
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
            request.error = RuntimeError("the shared engine was closed while a heatmap was pending")
            request.done.set()
        self._worker.join(timeout=5.0)

    def __enter__(self) -> "BatchingEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _take(self) -> list[_Request]:
        """The next batch: wait for a first request, then up to max_wait_s for company."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait(_POLL_S)
            if self._closed:
                return []
            deadline = time.monotonic() + self.max_wait_s
            while len(self._pending) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            sizes = [len(r.frame) for r in batch]
            try:
                frame = np.concatenate([r.frame for r in batch])
                flow = np.concatenate([r.flow for r in batch])
                emb = None if batch[0].embedding is None else np.concatenate([r.embedding for r in batch])
                maps = self.engine.heatmaps(frame, flow, emb)
            except Exception as e:  # noqa: BLE001 - every caller of this batch gets the error
                for request in batch:
                    request.error = e
                    request.done.set()
                continue
            self.batches += 1
            self.maps += len(maps)
            start = 0
            for request, n in zip(batch, sizes):
                request.result = maps[start:start + n]
                start += n
                request.done.set()
