"""Several camera streams in one process: one shared (batching) engine, one ZeroMQ socket.

Each stream is an ordinary :class:`~realtime.pipeline.Pipeline` with its own
stream name, sources and rolling flow; their inference stages call one
:class:`~realtime.batching.BatchingEngine`, and their publish stages send
through one socket, serialised by :class:`SharedPublish` (a ZeroMQ socket must
not be used from two threads at once). :func:`run_streams` starts them all
and stops them all together. :func:`realtime.live.build_live` wires them.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional, Sequence

from .pipeline import Pipeline, PipelineError


class SharedPublish:
    """``publish(message)`` for several pipelines: calls ``publish`` under one lock."""

    def __init__(self, publish: Callable) -> None:
        self._publish = publish
        self._lock = threading.Lock()

    def __call__(self, message) -> None:
        with self._lock:
            self._publish(message)


def run_streams(pipelines: Sequence[Pipeline], duration: Optional[float] = None,
                on_status: Optional[Callable[[list[dict]], None]] = None, status_every_s: float = 1.0) -> list[dict]:
    """Start every pipeline, wait for ``duration`` seconds, Ctrl-C or the first failure, stop them all.

    on_status: called every ``status_every_s`` seconds with each pipeline's stats.
    Returns the final stats, one dict per pipeline, in order. Raises PipelineError
    naming the stream when a stage of any pipeline failed (all are stopped first).
    """
    started = []
    try:
        for pipeline in pipelines:
            pipeline.start()
            started.append(pipeline)
        end = None if duration is None else time.monotonic() + duration
        next_status = time.monotonic() + status_every_s
        while not any(p.stopped for p in pipelines):
            now = time.monotonic()
            if end is not None and now >= end:
                break
            time.sleep(0.05 if end is None else min(0.05, end - now))
            if on_status is not None and time.monotonic() >= next_status:
                next_status += status_every_s
                on_status([p.stats() for p in pipelines])
    except KeyboardInterrupt:
        pass
    finally:
        threads = [threading.Thread(target=p.stop) for p in started]  # stop in parallel: one 2 s budget
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for pipeline in pipelines:
        if pipeline.error:
            raise PipelineError(f"stream {pipeline.config.stream!r}: {pipeline.error}")
    return [p.stats() for p in pipelines]
