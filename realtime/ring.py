"""A fixed-size ring of recent audio, its channels and their mono downmix, with a sample clock tied to monotonic time.

One writer (an audio callback or a source thread) appends blocks; any number of
readers take windows ending at a given capture time, so that a video frame
captured at ``t`` (``time.monotonic()`` seconds) is paired with the audio heard
up to ``t``. The lock is held only for the copy into or out of the buffer.

Channels: a ring made with ``channels=C`` (C > 1) keeps the C channels, stored
``(C, T)``, next to their mono downmix, so that direction finding reads the
channels and mono models read exactly the downmix they always had (a source
that downmixes before resampling hands that downmix in with ``mono=``).

Sample clock: sample ``i`` (counted from the first sample ever written) was
captured at ``time_of(i) = anchor_time + (i - anchor_index) / sample_rate``
seconds. Each write's ``end_time`` re-anchors the clock: small differences
(callback jitter, device clock drift) are followed gradually, large ones are
counted in :attr:`AudioRing.stats` as gaps (missing audio, filled with silence
so the clock stays linear) or clock jumps (time went backwards).
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from typing import Callable

import numpy as np

__all__ = ["AudioRing", "AudioWindow", "RingStats"]

# Differences between a block's stated end time and the sample clock below this
# many seconds are timing jitter, not lost audio.
_JITTER_S = 0.04
# Fraction of a small timing error corrected per write: averages callback
# jitter away while still following the slow drift of the device clock.
_DRIFT_GAIN = 0.05


@dataclasses.dataclass(frozen=True)
class AudioWindow:
    """A window of ring audio.

    samples: ``(N,)`` float32 mono at the ring's rate, or ``(C, N)`` float32
        channels (:meth:`AudioRing.latest` with ``channels=True``); samples the
        ring does not hold (before the first write or already overwritten) are zeros.
    start_time, end_time: monotonic capture times in seconds of the first and
        last sample of the window.
    filled: True when all ``N`` samples are captured audio (no zero padding).
    """

    samples: np.ndarray
    start_time: float
    end_time: float
    filled: bool


@dataclasses.dataclass(frozen=True)
class RingStats:
    """Counters since the ring was created (a snapshot).

    written: samples written (including silence inserted for gaps).
    blocks: write calls with at least one sample.
    overruns: blocks longer than the ring (only their newest samples were kept).
    dropped_samples: samples discarded by those overruns.
    gaps: writes whose end time was later than the sample clock by more than
        the jitter tolerance (the writer lost audio).
    gap_samples: silence samples inserted for those gaps.
    clock_jumps: writes whose end time was earlier than the sample clock by
        more than the jitter tolerance (the clock was re-anchored).
    """

    written: int = 0
    blocks: int = 0
    overruns: int = 0
    dropped_samples: int = 0
    gaps: int = 0
    gap_samples: int = 0
    clock_jumps: int = 0


class AudioRing:
    """Ring buffer of the last ``seconds`` of float32 audio at ``sample_rate`` Hz.

    channels: 1 (the default) keeps mono only, every block downmixed on write;
        C > 1 keeps blocks of exactly C channels and their mono downmix.
    Safe for one writer thread and many reader threads. ``clock`` (default
    ``time.monotonic``) supplies the time of writes that give no ``end_time``.
    """

    def __init__(self, sample_rate: int, seconds: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 channels: int = 1):
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"AudioRing: sample_rate must be a positive int in Hz, got {sample_rate!r}")
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"AudioRing: seconds must be a positive number, got {seconds!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"AudioRing: channels must be a positive int, got {channels!r}")
        self.sample_rate = sample_rate
        self.channels = channels
        self.capacity = max(1, round(seconds * sample_rate))
        self._clock = clock
        # Row 0: the mono downmix; rows 1..C: the channels (none kept for a mono ring).
        self._buf = np.zeros((1 if channels == 1 else 1 + channels, self.capacity), np.float32)
        self._lock = threading.Lock()
        self._count = 0  # samples ever written; the next sample's index
        self._anchor: tuple[int, float] | None = None  # (sample index, its capture time)
        self._stats = RingStats()

    # ------------------------------------------------------------------ writer

    def write(self, block: np.ndarray, end_time: float | None = None, mono: np.ndarray | None = None) -> None:
        """Append a block of audio.

        block: ``(n,)`` or ``(n, C)`` float32/float64 in [-1, 1] or int16 PCM
            (scaled by 1/32768). A mono ring averages the channels; a ring of
            C > 1 channels needs exactly ``(n, C)``.
        end_time: monotonic capture time in seconds of the block's last sample;
            None continues the sample clock (or uses the clock's "now" for the
            very first block).
        mono: ``(n,)`` the block's mono downmix when the writer made its own
            (before resampling, as the sources do); None: the channels' mean.
        """
        rows = self._rows(block, mono)
        n = rows.shape[1]
        if n == 0:
            return
        if end_time is not None and not math.isfinite(end_time):
            raise ValueError(f"AudioRing.write: end_time must be a finite monotonic time, got {end_time!r}")
        with self._lock:
            self._advance_clock(n, end_time)
            self._copy_in(rows)
            s = self._stats
            self._stats = dataclasses.replace(s, blocks=s.blocks + 1)

    def _rows(self, block: np.ndarray, mono: np.ndarray | None) -> np.ndarray:
        """The buffer's rows for ``block``: ``(1, n)`` mono for a mono ring, else
        ``(1 + C, n)`` the downmix then the channels; ValueError for a block that does
        not fit."""
        block = _to_float32(block, "block")
        if self.channels > 1 and (block.ndim != 2 or block.shape[1] != self.channels):
            raise ValueError(f"AudioRing.write: this ring keeps {self.channels} channels, got a block of "
                             f"shape {block.shape}; give (n, {self.channels})")
        if mono is None:
            mono = block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block
        else:
            mono = _to_float32(mono, "mono")
            if mono.shape != block.shape[:1]:
                raise ValueError(f"AudioRing.write: mono must have shape {block.shape[:1]}, got {mono.shape}")
        if self.channels == 1:
            return np.ascontiguousarray(mono, dtype=np.float32)[None]
        return np.concatenate([mono[None], block.T]).astype(np.float32, copy=False)

    def _advance_clock(self, n: int, end_time: float | None) -> None:
        """Re-anchor the sample clock for a block of ``n`` samples ending at ``end_time``."""
        last = self._count + n - 1
        if self._anchor is None:
            self._anchor = (last, self._clock() if end_time is None else end_time)
            return
        if end_time is None:
            return
        error = end_time - self._time_of(last)
        if error > _JITTER_S:
            # Audio went missing: silence keeps sample indices proportional to time.
            missing = round(error * self.sample_rate)
            self._copy_in(np.zeros((self._buf.shape[0], min(missing, self.capacity)), np.float32), counted=missing)
            s = self._stats
            self._stats = dataclasses.replace(s, gaps=s.gaps + 1, gap_samples=s.gap_samples + missing)
            self._anchor = (self._count + n - 1, end_time)
        elif error < -_JITTER_S:
            s = self._stats
            self._stats = dataclasses.replace(s, clock_jumps=s.clock_jumps + 1)
            self._anchor = (last, end_time)
        else:
            self._anchor = (last, self._time_of(last) + _DRIFT_GAIN * error)

    def _copy_in(self, rows: np.ndarray, counted: int | None = None) -> None:
        """Copy ``rows`` (the buffer's rows, n samples) into the ring; ``counted`` samples
        advance the clock (default n)."""
        n = rows.shape[1]
        counted = n if counted is None else counted
        if n > self.capacity:
            s = self._stats
            self._stats = dataclasses.replace(
                s, overruns=s.overruns + 1, dropped_samples=s.dropped_samples + n - self.capacity
            )
            rows = rows[:, -self.capacity :]
            n = self.capacity
        # The copied samples are the last n of the `counted` new ones.
        start = (self._count + counted - n) % self.capacity
        first = min(n, self.capacity - start)
        self._buf[:, start : start + first] = rows[:, :first]
        self._buf[:, : n - first] = rows[:, first:]
        self._count += counted
        self._stats = dataclasses.replace(self._stats, written=self._stats.written + counted)

    # ----------------------------------------------------------------- readers

    @property
    def total_samples(self) -> int:
        """Samples written since creation (the index of the next sample)."""
        with self._lock:
            return self._count

    @property
    def stats(self) -> RingStats:
        """A snapshot of the ring's counters."""
        with self._lock:
            return self._stats

    def time_of(self, sample_index: float) -> float:
        """Monotonic capture time in seconds of sample ``sample_index`` (may be fractional)."""
        with self._lock:
            self._require_anchor("time_of")
            return self._time_of(sample_index)

    def index_at(self, t: float) -> float:
        """Fractional sample index captured at monotonic time ``t`` seconds."""
        with self._lock:
            self._require_anchor("index_at")
            index, at = self._anchor
            return index + (t - at) * self.sample_rate

    def latest(self, seconds: float, end_time: float | None = None, channels: bool = False) -> AudioWindow:
        """The ``round(seconds * sample_rate)`` samples ending at ``end_time``.

        end_time: monotonic capture time in seconds (e.g. a video frame's); the
            window ends at the sample captured nearest that time, or at the
            newest sample when that is later or ``end_time`` is None.
        channels: False: ``(N,)`` mono samples; True: ``(C, N)`` the ring's
            channels (``(1, N)`` for a mono ring).
        Parts the ring does not hold are zeros and make ``filled`` False.
        """
        n = round(seconds * self.sample_rate)
        if n <= 0 or n > self.capacity:
            raise ValueError(
                f"AudioRing.latest: seconds must give 1..{self.capacity} samples "
                f"(ring holds {self.capacity / self.sample_rate:g} s), got {seconds!r}"
            )
        rows = slice(1, None) if channels and self.channels > 1 else slice(0, 1)
        out = np.zeros((self._buf[rows].shape[0], n), np.float32)
        with self._lock:
            self._require_anchor("latest")
            last = self._count - 1
            if end_time is not None:
                index, at = self._anchor
                last = min(last, round(index + (end_time - at) * self.sample_rate))
            first = last - n + 1
            held_from = max(first, self._count - self.capacity, 0)
            if last >= held_from:
                self._copy_out(held_from, rows, out[:, held_from - first :])
            start_time, stop_time = self._time_of(first), self._time_of(last)
        return AudioWindow(out if channels else out[0], start_time, stop_time, filled=held_from == first)

    def _copy_out(self, first: int, rows: slice, dest: np.ndarray) -> None:
        """Copy ring samples ``first .. first + dest.shape[1] - 1`` (all held) of buffer
        ``rows`` into ``dest``."""
        n = dest.shape[1]
        start = first % self.capacity
        head = min(n, self.capacity - start)
        dest[:, :head] = self._buf[rows, start : start + head]
        dest[:, head:] = self._buf[rows, : n - head]

    def _time_of(self, sample_index: float) -> float:
        index, at = self._anchor
        return at + (sample_index - index) / self.sample_rate

    def _require_anchor(self, what: str) -> None:
        if self._anchor is None:
            raise ValueError(f"AudioRing.{what}: nothing written yet; start the audio source first")


def _to_float32(block: np.ndarray, name: str) -> np.ndarray:
    """(n,) or (n, C) float/int16 audio -> the same shape as float32 in [-1, 1]; ValueError otherwise."""
    block = np.asarray(block)
    if block.ndim not in (1, 2):
        raise ValueError(f"AudioRing.write: expected {name} of shape (n,) or (n, C), got {block.shape}")
    if block.dtype == np.int16:
        return block.astype(np.float32) * np.float32(1 / 32768)
    if block.dtype not in (np.float32, np.float64):
        raise ValueError(f"AudioRing.write: expected float32, float64 or int16 samples, got {block.dtype}")
    if not np.isfinite(block).all():
        raise ValueError(f"AudioRing.write: {name} contains NaN or inf samples")
    return block
