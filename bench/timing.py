"""The one timing rule every benchmark here uses."""
from __future__ import annotations

import statistics
import time


def median_ms(fn, repeat: int, warmup: int = 1, sync=None) -> float:
    """Median wall time of fn() in milliseconds over ``repeat`` calls after ``warmup`` calls.

    sync: called after each fn() (e.g. torch.cuda.synchronize) so asynchronous
    device work is inside the measurement; None when fn is synchronous.
    """
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)
