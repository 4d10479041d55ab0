"""Live audio into an :class:`~realtime.ring.AudioRing`: a microphone, or a file played like one.

    ring = AudioRing(16000)
    source = open_audio_source(AudioSourceConfig("mic", 16000, device="pulse"), ring)
    source.start()
    ...
    source.stop()

Sources run on their own thread (plus PortAudio's callback for microphones),
make every sample usable (NaN and inf become silence, values beyond full scale
are clipped to [-1, 1], both counted in :class:`AudioStats` and described by
``problem``), downmix to mono, resample to the ring's rate with
:class:`StreamResampler` and write blocks stamped with the ``time.monotonic()``
capture time of their last sample. A ring of C > 1 channels also gets the
source's channels, each resampled; the mono downmix is made before resampling
either way, so mono models hear the same samples whatever the ring keeps.
``sounddevice`` (which needs the PortAudio library) is imported only when a
microphone is opened, so files work without it.
"""
from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from pathlib import Path
from typing import Iterator

import av
import numpy as np
import torch

from flowgrad.audio import resample
from flowgrad.spatial.geometry import check_channels
from realtime.clock import wait_until
from realtime.ring import AudioRing
from realtime.video_source import SourceError

__all__ = [
    "AudioSourceConfig",
    "AudioStats",
    "StreamResampler",
    "MicrophoneSource",
    "FileAudioSource",
    "SharedAudioSource",
    "open_audio_source",
    "SourceError",
]

MIC_SPECS = ("mic", "microphone")
# flowgrad.audio.resample's defaults: sinc zero crossings per side and low-pass rolloff.
_SINC_ZEROS = 32
_ROLLOFF = 0.99
# Seconds of a file decoded at start, at most, looking for one finite sample.
_PROBE_S = 60.0


@dataclasses.dataclass(frozen=True)
class AudioSourceConfig:
    """What to capture and how.

    spec: ``"mic"`` for a microphone, else the path of an audio file or of a
        video file whose audio track is played (any format PyAV/FFmpeg reads).
    sample_rate: rate in Hz delivered to the ring (must equal the ring's).
    block_s: seconds per block written to the ring (and per PortAudio callback).
    device: microphone name (or a unique part of it) or PortAudio index; None = default input.
    loop: files restart at their end instead of ending.
    capture_rate: microphone rate in Hz to ask PortAudio for; None = the device's default.
    queue_s: seconds of microphone blocks that may wait for the resampling
        thread before new ones are dropped (and counted as overruns).
    channels: microphone channels to capture (run_live --channels); None = the
        device's first two (one for a mono device). Files deliver all of theirs.
    """

    spec: str
    sample_rate: int
    block_s: float = 0.05
    device: str | int | None = None
    loop: bool = True
    capture_rate: int | None = None
    queue_s: float = 1.0
    channels: int | None = None

    def __post_init__(self):
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) or self.sample_rate <= 0:
            raise ValueError(f"AudioSourceConfig.sample_rate must be a positive int in Hz, got {self.sample_rate!r}")
        for name in ("block_s", "queue_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"AudioSourceConfig.{name} must be a positive number of seconds, got {value!r}")
        c = self.channels
        if c is not None and (isinstance(c, bool) or not isinstance(c, int) or c < 1):
            raise ValueError(f"AudioSourceConfig.channels must be a positive int or None, got {c!r}")


@dataclasses.dataclass(frozen=True)
class AudioStats:
    """Counters of an audio source.

    blocks: blocks written to the ring.
    overruns: microphone blocks dropped because the resampling thread fell behind.
    underruns: file blocks written more than one block late (the thread fell behind real time).
    xruns: PortAudio callbacks flagged input overflow/underflow (audio lost in the driver).
    invalid_samples: input samples (per channel) that were NaN or infinite, replaced by 0.
    clipped_samples: input samples (per channel) beyond full scale, clipped to [-1, 1].
    """

    blocks: int = 0
    overruns: int = 0
    underruns: int = 0
    xruns: int = 0
    invalid_samples: int = 0
    clipped_samples: int = 0


class StreamResampler:
    """Block-by-block resampling, equal to resampling the whole stream at once.

    Each block is resampled with :func:`flowgrad.audio.resample` together with
    enough neighbouring input on both sides to cover the sinc kernel, and only
    the outputs whose kernel lies inside real input are kept: no clicks at block
    edges, at the price of holding back ``latency_s`` of input. Chunks are cut
    at whole polyphase periods so every output falls on the global output grid.

    channels: None for ``(n,)`` blocks, C for ``(C, n)`` blocks (the channels
    resampled together).
    """

    def __init__(self, in_hz: int, out_hz: int, channels: int | None = None):
        for name, value in (("in_hz", in_hz), ("out_hz", out_hz)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"StreamResampler: {name} must be a positive int in Hz, got {value!r}")
        self.in_hz, self.out_hz = in_hz, out_hz
        g = math.gcd(in_hz, out_hz)
        self._down, self._up = in_hz // g, out_hz // g
        # Kernel half-width in input samples, plus one polyphase period, in whole periods.
        reach = math.ceil(_SINC_ZEROS * self._down / (min(self._up, self._down) * _ROLLOFF)) + self._down
        self._ctx = 0 if self._down == self._up else -(-reach // self._down) * self._down
        # Input from global sample (next chunk start - ctx) on; zeros before the stream's start,
        # as the one-shot resample pads.
        self._lead = () if channels is None else (channels,)
        self._buf = np.zeros((*self._lead, self._ctx), np.float32)
        self._in_total = 0
        self._out_total = 0

    @property
    def latency_s(self) -> float:
        """Seconds of input held back as right-hand context."""
        return self._ctx / self.in_hz

    def process(self, block: np.ndarray, end_time: float | None = None) -> tuple[np.ndarray, float | None]:
        """Feed ``(n,)`` (or ``(C, n)``) float32 at ``in_hz``; returns the new ``(m,)`` (or
        ``(C, m)``) float32 at ``out_hz``.

        end_time: monotonic capture time in seconds of the block's last input
        sample; the second return value is then the capture time of the last
        returned output sample (None when not given or nothing was returned).
        """
        block = np.asarray(block, np.float32)
        if block.shape[:-1] != self._lead:
            raise ValueError(f"StreamResampler.process: expected a block of shape {(*self._lead, 'n')}, "
                             f"got {block.shape}")
        self._in_total += block.shape[-1]
        if self._ctx == 0:
            out = block
        else:
            self._buf = np.concatenate([self._buf, block], axis=-1)
            chunk = (self._buf.shape[-1] - 2 * self._ctx) // self._down * self._down
            out = self._resample_chunk(chunk, chunk * self._up // self._down) if chunk > 0 else block[..., :0]
        self._out_total += out.shape[-1]
        if end_time is None or out.shape[-1] == 0:
            return out, None
        last_pos = (self._out_total - 1) * self._down / self._up  # in input samples
        return out, end_time - (self._in_total - 1 - last_pos) / self.in_hz

    def flush(self) -> np.ndarray:
        """The outputs still held back, treating the stream as ended (zeros after it)."""
        if self._ctx == 0:
            return np.zeros((*self._lead, 0), np.float32)
        remaining = -(-self._in_total * self._up // self._down) - self._out_total
        self._buf = np.concatenate([self._buf, np.zeros((*self._lead, self._ctx), np.float32)], axis=-1)
        out = self._resample_chunk(self._buf.shape[-1] - 2 * self._ctx, remaining)
        self._out_total += out.shape[-1]
        return out

    def _resample_chunk(self, chunk: int, n_out: int) -> np.ndarray:
        """Resample buffered input ``[ctx, ctx + chunk)`` with its context; keep ``n_out`` outputs."""
        x = torch.from_numpy(np.ascontiguousarray(self._buf[..., : chunk + 2 * self._ctx]))
        y = resample(x, self.in_hz, self.out_hz).numpy()
        skip = self._ctx * self._up // self._down
        self._buf = self._buf[..., chunk:]
        return np.ascontiguousarray(y[..., skip : skip + n_out])


class _RingRows:
    """A source's usable audio at its own rate -> the ring's rows at the ring's rate.

    Row 0 is the mono downmix, resampled as one stream (what mono models have
    always heard, bit for bit); rows 1..C, only for a multichannel ring, are the
    channels resampled together.
    """

    def __init__(self, in_hz: int, out_hz: int, channels: int, keep_channels: bool):
        self._mono = StreamResampler(in_hz, out_hz)
        self._channels = StreamResampler(in_hz, out_hz, channels) if keep_channels else None

    def process(self, mono: np.ndarray, block: np.ndarray, end_time: float | None = None):
        """mono ``(n,)`` and block ``(C, n)`` float32 -> ``((R, m) rows, capture time of
        the last or None)``; R is 1 or 1 + C."""
        out, out_end = self._mono.process(mono, end_time)
        if self._channels is None:
            return out[None], out_end
        return np.concatenate([out[None], self._channels.process(block)[0]]), out_end

    def flush(self) -> np.ndarray:
        """The rows still held back, the stream having ended."""
        out = self._mono.flush()[None]
        return out if self._channels is None else np.concatenate([out, self._channels.flush()])


class _AudioSource:
    """Thread, state and counters shared by the sources; subclasses implement ``_run``."""

    def __init__(self, config: AudioSourceConfig, ring: AudioRing):
        if ring.sample_rate != config.sample_rate:
            raise ValueError(
                f"audio source: config.sample_rate {config.sample_rate} Hz differs from the ring's "
                f"{ring.sample_rate} Hz; create both with the same rate"
            )
        self.config = config
        self.ring = ring
        self._state = "ready"
        self._error: str | None = None
        self._stats = AudioStats()
        self._stats_lock = threading.Lock()  # counters are bumped from two threads (callback, worker)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> str:
        """"ready", "running", "ended" (file end, no loop), "failed" (see ``error``) or "stopped"."""
        return self._state

    @property
    def error(self) -> str | None:
        """One line saying why the source failed while running, else None."""
        return self._error

    @property
    def stats(self) -> AudioStats:
        """A snapshot of the counters."""
        return self._stats

    @property
    def problem(self) -> str | None:
        """One line saying what is wrong with the audio so far (why it failed, samples that
        were invalid or clipped), or None."""
        if self._state == "failed":
            return f"failed: {self._error}"
        s = self._stats
        found = []
        if s.invalid_samples:
            found.append(f"{s.invalid_samples} invalid samples (NaN/inf) replaced by silence")
        if s.clipped_samples:
            found.append(f"{s.clipped_samples} samples beyond full scale clipped to [-1, 1]")
        return "; ".join(found) or None

    def start(self, start_time: float | None = None) -> None:
        """Start capturing. ``start_time``: monotonic seconds at which a file's
        first sample plays (share it with the file's VideoSource); None = now."""
        if self._thread is not None:
            raise ValueError("audio source: start() called twice; create a new source to restart")
        self._begin(time.monotonic() if start_time is None else start_time)
        self._state = "running"
        self._thread = threading.Thread(target=self._guarded_run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop capturing and join the thread (within about 1 s)."""
        self._stop.set()
        self._end()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._state == "running":
            self._state = "stopped"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _guarded_run(self) -> None:
        try:
            self._run()
        except Exception as e:  # reported through state/error, never lost with the thread
            self._error = f"{type(e).__name__}: {e}"
            self._state = "failed"

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            s = self._stats
            self._stats = dataclasses.replace(s, **{k: getattr(s, k) + v for k, v in increments.items()})

    def _usable(self, samples: np.ndarray) -> np.ndarray:
        """``samples`` (any shape, float) with NaN/inf replaced by 0 and the rest clipped to
        full scale [-1, 1], both counted: a single bad sample would otherwise spread through
        the resampler's kernel, and huge values overflow the model's features."""
        finite = np.isfinite(samples)
        invalid = samples.size - int(np.count_nonzero(finite))
        if invalid:
            samples = np.where(finite, samples, np.float32(0))
        clipped = int(np.count_nonzero(np.abs(samples) > 1))
        if clipped:
            samples = np.clip(samples, -1, 1)
        if invalid or clipped:
            self._count(invalid_samples=invalid, clipped_samples=clipped)
        return samples

    def _ring_rows(self, in_hz: int, channels: int, what: str) -> _RingRows:
        """The resampling of ``channels`` channels at ``in_hz`` into this ring's rows.
        A multichannel ring holds one channel per microphone of the array: ChannelCountError
        (an InputError naming both counts) when the source has another number."""
        kept = self.ring.channels
        if kept > 1:
            check_channels(kept, channels, what)
        return _RingRows(in_hz, self.config.sample_rate, channels, keep_channels=kept > 1)

    def _write_rows(self, rows: np.ndarray, end_time: float) -> None:
        """Write ``(R, n)`` ring rows (see :class:`_RingRows`) captured up to ``end_time``."""
        if rows.shape[0] == 1:
            self.ring.write(rows[0], end_time=end_time)
        else:
            self.ring.write(rows[1:].T, end_time=end_time, mono=rows[0])

    def _begin(self, start_time: float) -> None:
        """Acquire what the thread needs before it starts (may raise SourceError)."""

    def _end(self) -> None:
        """Release what ``_begin`` acquired; called from stop()."""

    def _run(self) -> None:
        raise NotImplementedError


class FileAudioSource(_AudioSource):
    """An audio file, or a video file's audio track, played into the ring at real-time pace.

    Decoded with PyAV. For a video file each loop lasts exactly as long as the
    video stream (the audio is cut or padded with silence), so the audio stays
    with a :class:`~realtime.video_source.VideoSource` looping the same file
    from the same ``start_time``.
    """

    def __init__(self, config: AudioSourceConfig, ring: AudioRing):
        super().__init__(config, ring)
        self.path = config.spec
        container = self._open()
        try:
            codec = container.streams.audio[0].codec_context
            if codec.channels < 1 or codec.sample_rate < 1:
                raise SourceError(f"audio file {self.path}: its audio track has {codec.channels} channels at "
                                  f"{codec.sample_rate} Hz; give a file with sound")
            self.file_rate = codec.sample_rate
            self.channels = codec.channels
            self.loop_samples = _video_loop_samples(container, self.file_rate)
        finally:
            container.close()
        self._rows = self._ring_rows(self.file_rate, self.channels, f"audio file {self.path}")
        self._check_usable()
        self._start_time = 0.0

    def _check_usable(self) -> None:
        """SourceError unless the file's first minute holds at least one finite sample."""
        seen, limit, whole = 0, round(_PROBE_S * self.file_rate), True
        container = self._open()
        try:
            for frame in container.decode(audio=0):
                if np.isfinite(frame.to_ndarray()).any():
                    return
                seen += frame.samples
                if seen >= limit:
                    whole = False
                    break
        except av.error.FFmpegError as e:
            raise self._undecodable(e) from None
        finally:
            container.close()
        if seen == 0:
            raise SourceError(f"audio file {self.path}: its audio track holds no samples; give a file with sound")
        span = f"{'its' if whole else 'its first'} {seen / self.file_rate:g} s"
        raise SourceError(f"audio file {self.path}: no usable sound: {span} are all NaN or infinite samples")

    def _open(self) -> av.container.InputContainer:
        if not Path(self.path).is_file():
            raise SourceError(f"audio source {self.path!r}: no such file; give an audio/video file path or 'mic'")
        try:
            container = av.open(self.path)
        except av.error.FFmpegError as e:
            raise self._undecodable(e) from None
        if not container.streams.audio:
            container.close()
            raise SourceError(f"audio file {self.path}: has no audio track; give a file with sound")
        return container

    def _undecodable(self, e: Exception) -> SourceError:
        return SourceError(f"audio file {self.path}: cannot be decoded ({e}); check it with `ffprobe {self.path}`")

    def _begin(self, start_time: float) -> None:
        self._start_time = start_time

    def _run(self) -> None:
        block = max(1, round(self.config.block_s * self.config.sample_rate))
        pending = None
        written = 0
        for chunk in self._decode():
            rows = self._rows.process(chunk.mean(axis=0, dtype=np.float32), chunk)[0]
            pending = rows if pending is None else np.concatenate([pending, rows], axis=1)
            while pending.shape[1] >= block:
                if not self._write_at_pace(pending[:, :block], written, block):
                    return
                pending, written = pending[:, block:], written + block
            if self._stop.is_set():
                return
        # Finite play (no loop): the held-back tail, then the end.
        tail = self._rows.flush()
        pending = tail if pending is None else np.concatenate([pending, tail], axis=1)
        if pending.shape[1] and not self._write_at_pace(pending, written, block):
            return
        self._state = "ended"

    def _write_at_pace(self, rows: np.ndarray, written: int, block: int) -> bool:
        """Write ``(R, n)`` ring rows (ring-rate output samples ``written ..``) when the last
        is due; False if stopped."""
        due = self._start_time + (written + rows.shape[1] - 1) / self.config.sample_rate
        if not wait_until(due, self._stop):
            return False
        late = time.monotonic() - due
        self._write_rows(rows, due)
        self._count(blocks=1, underruns=int(late > block / self.config.sample_rate))
        return True

    def _decode(self) -> Iterator[np.ndarray]:
        """``(C, n)`` float32 chunks at ``file_rate``, loop after loop (one pass when not looping)."""
        while not self._stop.is_set():
            played = 0
            for chunk in self._decode_once():
                if self.loop_samples is not None:
                    if played >= self.loop_samples:
                        break  # audio longer than the video: the rest is cut
                    chunk = chunk[:, : self.loop_samples - played]
                played += chunk.shape[1]
                yield chunk
                if self._stop.is_set():
                    return
            if self.loop_samples is not None and played < self.loop_samples:
                yield np.zeros((self.channels, self.loop_samples - played), np.float32)
                played = self.loop_samples
            if played == 0:
                raise SourceError(f"audio file {self.path}: audio track decodes to no samples")
            if not self.config.loop:
                return

    def _decode_once(self) -> Iterator[np.ndarray]:
        container = self._open()
        try:
            # Planar float keeps the file's rate and channels.
            to_float = av.AudioResampler(format="fltp")
            for frame in container.decode(audio=0):
                for converted in to_float.resample(frame):
                    yield self._usable(converted.to_ndarray())
                if self._stop.is_set():
                    return
        finally:
            container.close()


def _video_loop_samples(container, rate: int) -> int | None:
    """Length in samples at ``rate`` of the container's video stream (None for audio-only files).

    Frames / frame rate, as VideoSource loops; containers that do not store the
    frame count (Matroska) have their video packets counted (demuxed, not decoded).
    """
    if not container.streams.video:
        return None
    video = container.streams.video[0]
    if not video.average_rate:
        return None
    frames = video.frames or sum(1 for p in container.demux(video) if p.size)
    return round(frames / float(video.average_rate) * rate) if frames else None


class MicrophoneSource(_AudioSource):
    """A PortAudio input device (via ``sounddevice``) written into the ring.

    PortAudio's callback only copies each block into a bounded queue with its
    capture time; a worker thread downmixes, resamples and writes the ring, so
    the real-time callback never waits on torch or on ring readers.
    """

    def __init__(self, config: AudioSourceConfig, ring: AudioRing):
        super().__init__(config, ring)
        self._sd = _import_sounddevice()
        self.device_info = _find_input(self._sd, config.device)
        self.capture_rate = config.capture_rate or int(self.device_info["default_samplerate"])
        has = int(self.device_info["max_input_channels"])
        if has < 1:
            raise SourceError(f"microphone {self.device_info['name']!r} has no input channels; choose another device")
        if config.channels is not None and config.channels > has:
            raise SourceError(f"--channels {config.channels}: microphone {self.device_info['name']!r} has only "
                              f"{has} input channels")
        self.channels = config.channels or min(2, has)
        self._rows = self._ring_rows(self.capture_rate, self.channels, f"microphone {self.device_info['name']!r}")
        self._queue: queue.Queue = queue.Queue(
            maxsize=max(2, math.ceil(config.queue_s / config.block_s))
        )
        self._stream = None

    def _begin(self, start_time: float) -> None:
        try:
            self._stream = self._sd.InputStream(
                device=self.device_info["index"],
                channels=self.channels,
                samplerate=self.capture_rate,
                blocksize=max(1, round(self.config.block_s * self.capture_rate)),
                dtype="float32",
                callback=self._callback,
            )
            self._stream.start()
        except self._sd.PortAudioError as e:
            raise SourceError(
                f"microphone {self.device_info['name']!r}: cannot capture at {self.capture_rate} Hz x "
                f"{self.channels} ch ({e}); try another device or capture rate"
            ) from None

    def _end(self) -> None:
        if self._stream is not None:
            self._stream.abort()  # abort, not stop: do not wait for PortAudio to drain buffers
            self._stream.close()
            self._stream = None

    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        now = time.monotonic()
        if status.input_overflow or status.input_underflow:
            self._count(xruns=1)
        # PortAudio's own clock dates the first sample; convert that age to monotonic time.
        age = time_info.currentTime - time_info.inputBufferAdcTime
        first = now - age if time_info.inputBufferAdcTime > 0 and 0 <= age < 1 else now - (frames - 1) / self.capture_rate
        try:
            self._queue.put_nowait((indata.copy(), first + (frames - 1) / self.capture_rate))
        except queue.Full:
            self._count(overruns=1)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                block, end_time = self._queue.get(timeout=0.1)
            except queue.Empty:
                stream = self._stream
                if stream is not None and not stream.active and not self._stop.is_set():
                    raise SourceError(f"microphone {self.device_info['name']!r} stopped delivering audio (unplugged?)")
                continue
            block = self._usable(block)  # (frames, C), as PortAudio delivers it
            rows, out_end = self._rows.process(block.mean(axis=1, dtype=np.float32), block.T, end_time)
            if rows.shape[1]:
                self._write_rows(rows, out_end)
                self._count(blocks=1)


def _import_sounddevice():
    """The sounddevice module, or SourceError saying what to install."""
    try:
        import sounddevice
    except ImportError:
        raise SourceError("microphone capture needs sounddevice: pip install 'flowgrad-live[live]'") from None
    except OSError:
        raise SourceError(
            "microphone capture needs the PortAudio library: install libportaudio2 "
            "(sudo apt-get install libportaudio2, or bash scripts/ci-system-deps.sh)"
        ) from None
    return sounddevice


def _find_input(sd, device: str | int | None) -> dict:
    """PortAudio's description of the input ``device`` (None = default), or SourceError listing the inputs."""
    try:
        return dict(sd.query_devices(device, kind="input"))
    except (ValueError, sd.PortAudioError):
        inputs = [f"{d['index']}: {d['name']}" for d in sd.query_devices() if d["max_input_channels"] > 0]
        listing = "; ".join(inputs) if inputs else "none"
        name = "default" if device is None else repr(device)
        raise SourceError(
            f"no microphone {name} (available: {listing}); give one of the available names or indices, or "
            "install libportaudio2 and libasound2-plugins and start PulseAudio for the 'pulse' device"
        ) from None


def open_audio_source(config: AudioSourceConfig, ring: AudioRing) -> MicrophoneSource | FileAudioSource:
    """The source for ``config.spec`` (``"mic"`` or a file path), opened but not started.

    Raises SourceError (one line) when the microphone or file cannot be used.
    """
    if config.spec.lower() in MIC_SPECS:
        return MicrophoneSource(config, ring)
    return FileAudioSource(config, ring)


class SharedAudioSource:
    """One audio source heard by several cameras' pipelines (cameras sharing a microphone).

    Each pipeline calls ``start`` and ``stop`` as it would on its own source: the source
    starts at the first ``start`` and stops at the ``stop`` matching the last start, so
    no camera loses its sound while another stops. ``state``, ``error``, ``stats``,
    ``problem`` and ``ring`` are the source's.
    """

    def __init__(self, source: MicrophoneSource | FileAudioSource) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._users = 0

    def __getattr__(self, name):
        return getattr(self.__dict__["source"], name)

    def start(self, start_time: float | None = None) -> None:
        """Start the source unless another user already did (``start_time``: see the source)."""
        with self._lock:
            if self._users == 0:
                self.source.start(start_time)
            self._users += 1

    def stop(self) -> None:
        """One user is done: stop the source when none is left (within about 1 s)."""
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                self.source.stop()
