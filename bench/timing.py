"""The one timing rule every benchmark here uses, and the machine description they print."""
from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path


def median_ms(fn, repeat: int, warmup: int = 1, sync=None, pause_s: float = 0.0) -> float:
    """Median wall time of fn() in milliseconds over ``repeat`` calls after ``warmup`` calls.

    sync: called after each fn() (e.g. torch.cuda.synchronize) so asynchronous
    device work is inside the measurement; None when fn is synchronous.
    pause_s: seconds slept before each timed call, outside the measurement: calls spaced
    as in live use, where thread pools (OpenBLAS's) fall asleep between them.
    """
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        time.sleep(pause_s)
        start = time.perf_counter()
        fn()
        sync()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def cpu_name() -> str:
    """The CPU model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def keep_freed_memory(limit_bytes: int = 1 << 30) -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the kernel.

    Large temporaries (a 640x360 float tensor is 0.9 MB) are otherwise mmap'd and
    page-faulted afresh on every allocation: the torch Farneback on a CPU then spends
    about half its time in the kernel (REFERENCE section 4). Sets M_MMAP_THRESHOLD and
    M_TRIM_THRESHOLD for this process, as MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_
    would. Returns False where glibc's mallopt is unavailable (nothing changed).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, limit_bytes)) and bool(mallopt(m_trim_threshold, limit_bytes))
