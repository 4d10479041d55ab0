"""Audio sources: streaming resampler exactness, paced file playback, a video's audio track,
and a real microphone path through a PulseAudio null sink."""
import fractions
import time
import wave

import av
import cv2
import numpy as np
import pytest
import torch

from flowgrad.audio import resample
from flowgrad.spatial.geometry import ChannelCountError
from livestandins import PulseNullSink, write_float_wav
from realtime.audio_source import (AudioSourceConfig, FileAudioSource, SharedAudioSource, StreamResampler,
                                   open_audio_source)
from realtime.ring import AudioRing
from realtime.video_source import SourceError, VideoSource, VideoSourceConfig


def one_shot(x: np.ndarray, in_hz: int, out_hz: int) -> np.ndarray:
    return resample(torch.from_numpy(np.asarray(x, np.float32)), in_hz, out_hz).numpy()


def write_wav(path, samples: np.ndarray, rate: int) -> None:
    """(n,) or (n, C) float in [-1, 1] -> 16-bit PCM WAV."""
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


def dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * rate / len(x)


def wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("in_hz, out_hz", [(44100, 16000), (48000, 16000), (22050, 16000), (16000, 16000), (8000, 22050)])
def test_stream_resampler_equals_one_shot(in_hz, out_hz):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, in_hz // 2).astype(np.float32)  # 0.5 s
    sizes = rng.integers(1, in_hz // 10, 100)
    bounds = np.minimum(np.concatenate([[0], np.cumsum(sizes)]), len(x))
    r = StreamResampler(in_hz, out_hz)
    parts = [r.process(x[a:b])[0] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    if bounds[-1] < len(x):
        parts.append(r.process(x[bounds[-1] :])[0])
    streamed = np.concatenate(parts)
    ref = one_shot(x, in_hz, out_hz)
    # Before the flush everything returned is final and exact; latency is held back.
    assert len(ref) - len(streamed) <= r.latency_s * out_hz + out_hz / 100
    np.testing.assert_allclose(streamed, ref[: len(streamed)], atol=2e-6)
    full = np.concatenate([streamed, r.flush()])
    assert full.shape == ref.shape
    np.testing.assert_allclose(full, ref, atol=2e-6)


def test_stream_resampler_dates_its_output():
    in_hz, out_hz, t0 = 44100, 16000, 100.0
    r = StreamResampler(in_hz, out_hz)
    got, n_in, n_out = [], 0, 0
    for n in (2205, 2205, 777, 4410, 10):
        n_in += n
        out, end = r.process(np.zeros(n, np.float32), end_time=t0 + (n_in - 1) / in_hz)
        n_out += len(out)
        if len(out):
            got.append((end, t0 + (n_out - 1) / out_hz))
    assert got
    for end, expected in got:
        assert end == pytest.approx(expected, abs=1e-9)


def test_file_source_plays_at_pace_and_loops(tmp_path):
    rate_in, rate = 44100, 16000
    t = np.arange(int(0.2 * rate_in)) / rate_in
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1300 * t + 1)
    path = tmp_path / "stereo.wav"
    write_wav(path, np.stack([left, right], axis=1), rate_in)
    with wave.open(str(path)) as f:
        stored = np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, 2) / 32768
    mono = stored.mean(axis=1)

    ring = AudioRing(rate, seconds=5.0)
    source = open_audio_source(AudioSourceConfig(str(path), rate, block_s=0.05), ring)
    assert isinstance(source, FileAudioSource) and source.loop_samples is None
    start = time.monotonic()
    source.start(start_time=start)
    time.sleep(0.65)
    source.stop()
    elapsed = time.monotonic() - start
    assert source.state == "stopped" and source.error is None
    n = ring.total_samples
    # Real-time pace (loose): about elapsed * rate samples, never ahead of the clock.
    assert 0.5 * elapsed * rate <= n <= elapsed * rate + 1
    # Three loops of the 0.2 s file, resampled as one stream: exact content across the loop joins.
    ref = one_shot(np.tile(mono, 4), rate_in, rate)[:n]
    window = ring.latest(n / rate)
    np.testing.assert_allclose(window.samples, ref, atol=1e-4)
    assert ring.time_of(0) == pytest.approx(start)
    st = source.stats
    assert st.blocks == n // 800 and st.overruns == 0 and st.xruns == 0
    assert ring.stats.gaps == ring.stats.clock_jumps == 0


def test_a_shared_source_runs_until_its_last_user_stops(tmp_path):
    """Cameras sharing a microphone: the first start starts it, a second start does not
    restart it (a source refuses that), and only the last stop ends it, within its 1 s."""
    rate = 16000
    path = tmp_path / "tone.wav"
    write_wav(path, 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate), rate)
    ring = AudioRing(rate, seconds=5.0)
    shared = SharedAudioSource(open_audio_source(AudioSourceConfig(str(path), rate, block_s=0.05), ring))
    shared.start()
    shared.start()
    assert shared.state == "running" and shared.ring is ring and shared.problem is None
    shared.stop()
    time.sleep(0.2)
    heard = ring.total_samples
    assert shared.state == "running" and heard > 0  # the other camera still hears it
    start = time.monotonic()
    shared.stop()
    assert shared.state == "stopped" and time.monotonic() - start < 2.0
    assert not shared.source._thread.is_alive()
    shared.stop()  # a stop too many changes nothing
    assert shared.state == "stopped"


def test_file_source_without_loop_ends_with_the_whole_file(tmp_path):
    rate_in, rate = 22050, 16000
    x = np.random.default_rng(2).uniform(-0.5, 0.5, int(0.15 * rate_in))
    write_wav(tmp_path / "a.wav", x, rate_in)
    ring = AudioRing(rate)
    source = open_audio_source(AudioSourceConfig(str(tmp_path / "a.wav"), rate, loop=False), ring)
    source.start()
    wait_for(lambda: source.state != "running", 3)
    source.stop()
    assert source.state == "ended"
    ref = one_shot(np.round(x * 32767) / 32768, rate_in, rate)
    assert ring.total_samples == len(ref)
    np.testing.assert_allclose(ring.latest(len(ref) / rate).samples, ref, atol=1e-4)


@pytest.fixture(scope="module")
def tone_video(tmp_path_factory):
    """1.0 s of video (25 frames at 25 fps) with a 0.8 s 1 kHz tone at 48 kHz (PCM) in Matroska."""
    path = tmp_path_factory.mktemp("av") / "tone.mkv"
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=48000)
        audio.layout = "mono"
        for i in range(25):
            image = np.full((48, 64, 3), i * 10, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        t = np.arange(int(0.8 * 48000)) / 48000
        pcm = np.round(0.5 * np.sin(2 * np.pi * 1000 * t) * 32767).astype(np.int16)
        for k in range(0, len(pcm), 4800):
            frame = av.AudioFrame.from_ndarray(pcm[None, k : k + 4800], format="s16", layout="mono")
            frame.sample_rate = 48000
            frame.pts, frame.time_base = k, fractions.Fraction(1, 48000)
            for packet in audio.encode(frame):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                out.mux(packet)
    return path


def test_video_audio_track_loops_with_the_video(tone_video):
    rate = 16000
    with VideoSource(VideoSourceConfig(str(tone_video), realtime=False)) as video:
        frames = [video.read() for _ in range(26)]
    # The video loop is 25 frames at 25 fps = 1.0 s; the audio must loop with the same period.
    assert frames[25].source_time == 0.0 and video.fps == pytest.approx(25.0)

    ring = AudioRing(rate)
    source = open_audio_source(AudioSourceConfig(str(tone_video), rate), ring)
    assert source.file_rate == 48000 and source.loop_samples == 48000
    source.start()
    wait_for(lambda: ring.total_samples >= int(1.35 * rate), 5)
    source.stop()
    assert source.error is None
    assert ring.total_samples >= int(1.35 * rate)
    x = ring.latest(ring.total_samples / rate).samples[: int(1.35 * rate)]  # from the first sample on
    tone, gap, again = x[1600:11200], x[13500:15800], x[16200:21000]  # 0.1-0.7 s, 0.84-0.99 s, 1.01-1.31 s
    assert dominant_hz(tone, rate) == pytest.approx(1000, abs=5)
    assert np.sqrt(np.mean(tone**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    assert np.abs(gap).max() < 1e-3  # padded silence up to the video's 1.0 s
    assert dominant_hz(again, rate) == pytest.approx(1000, abs=5)


def test_file_errors_are_one_line(tmp_path):
    ring = AudioRing(16000)
    with pytest.raises(SourceError, match="no such file"):
        open_audio_source(AudioSourceConfig(str(tmp_path / "missing.wav"), 16000), ring)
    (tmp_path / "junk.wav").write_bytes(b"junk" * 10)
    with pytest.raises(SourceError, match="cannot be decoded"):
        open_audio_source(AudioSourceConfig(str(tmp_path / "junk.wav"), 16000), ring)
    silent = tmp_path / "silent.avi"
    writer = cv2.VideoWriter(str(silent), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (32, 32))
    writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.release()
    with pytest.raises(SourceError, match="no audio track"):
        open_audio_source(AudioSourceConfig(str(silent), 16000), ring)
    with pytest.raises(ValueError, match="differs from the ring"):
        open_audio_source(AudioSourceConfig(str(tmp_path / "junk.wav"), 22050), ring)


@pytest.mark.parametrize("samples, channels, message", [
    (np.zeros(0), None, "its audio track holds no samples"),
    (np.zeros(0), 0, "its audio track has 0 channels"),
    (np.full(8000, np.nan), None, r"no usable sound: its 0.5 s are all NaN or infinite samples"),
    (np.where(np.arange(8000) % 2, np.inf, -np.inf), None, "no usable sound"),
])
def test_files_without_usable_sound_are_refused_at_start(tmp_path, samples, channels, message):
    """Zero samples, a header claiming zero channels, only NaN or inf: one line at open,
    not a source thread that fails later while the run goes on against silence."""
    path = write_float_wav(tmp_path / "bad.wav", samples, 16000, channels)
    with pytest.raises(SourceError, match=message) as e:
        open_audio_source(AudioSourceConfig(str(path), 16000), AudioRing(16000))
    assert str(e.value).startswith(f"audio file {path}: ") and "\n" not in str(e.value)


def test_invalid_and_huge_samples_become_silence_and_full_scale_and_are_counted(tmp_path):
    """A file with NaN, +-inf and 1e30 samples plays on: NaN/inf are silence, 1e30 is clipped to
    full scale, each counted, and ``problem`` says so; the tone around them is untouched."""
    rate = 16000
    x = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)  # 1 s
    x[2000:2100] = np.nan
    x[4000:4050] = np.inf
    x[4050:4060] = -np.inf
    x[8000:8400] *= 1e30 / 0.5  # the tone at 1e30: every sample but the zero crossings is beyond full scale
    huge = int(np.count_nonzero(np.abs(x[8000:8400]) > 1))
    path = write_float_wav(tmp_path / "hostile.wav", x, rate)
    ring = AudioRing(rate)
    source = open_audio_source(AudioSourceConfig(str(path), rate, loop=False), ring)
    source.start()
    wait_for(lambda: source.state != "running", 5)
    source.stop()
    assert source.state == "ended" and source.error is None
    assert source.stats.invalid_samples == 160 and source.stats.clipped_samples == huge > 390
    assert source.problem == (f"160 invalid samples (NaN/inf) replaced by silence; "
                              f"{huge} samples beyond full scale clipped to [-1, 1]")
    assert ring.total_samples == rate  # same rate: no resampling, every sample as written
    expected = np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), -1, 1).astype(np.float32)
    np.testing.assert_array_equal(ring.latest(1.0).samples, expected)


def _fresh_sounddevice():
    """sounddevice with PortAudio (re)initialised, so it sees the current PULSE_SERVER; skip if unusable."""
    try:
        import sounddevice as sd
    except ImportError:
        pytest.skip("sounddevice is not installed (pip install 'flowgrad-live[live]')")
    except OSError:
        pytest.skip("PortAudio is missing (install libportaudio2: bash scripts/ci-system-deps.sh)")
    # PortAudio lists devices once at initialisation; re-list with the test's PulseAudio server.
    sd._terminate()
    sd._initialize()
    return sd


def test_missing_microphone_is_one_line():
    ring = AudioRing(16000)
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError):
        with pytest.raises(SourceError, match="libportaudio2|sounddevice"):
            open_audio_source(AudioSourceConfig("mic", 16000), ring)
        return
    with pytest.raises(SourceError, match=r"no microphone 'no-such-mic-xyz' \(available: ") as e:
        open_audio_source(AudioSourceConfig("mic", 16000, device="no-such-mic-xyz"), ring)
    assert "\n" not in str(e.value)
    assert "AudioSourceConfig" not in str(e.value)  # run_live's users pick microphones with --audio


@pytest.fixture
def pulse(monkeypatch):
    """A PulseAudio null sink that PortAudio's 'pulse' device captures from (its monitor);
    skips where the device is missing; PortAudio is re-listed without it afterwards."""
    with PulseNullSink() as sink:
        for key, value in sink.env.items():
            monkeypatch.setenv(key, value)
        sd = _fresh_sounddevice()
        try:
            names = [d["name"] for d in sd.query_devices()]
            if "pulse" not in names:
                pytest.skip(f"no 'pulse' PortAudio device (install libasound2-plugins); devices: {names}")
            yield sink
        finally:
            monkeypatch.delenv("PULSE_SERVER")
            sd._terminate()
            sd._initialize()


def test_microphone_hears_a_tone_through_a_pulseaudio_null_sink(tmp_path, pulse):
    t = np.arange(3 * 48000) / 48000
    write_wav(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 1500 * t), 48000)
    ring = AudioRing(16000)
    source = open_audio_source(AudioSourceConfig("mic", 16000, device="pulse"), ring)
    player = pulse.play(tmp_path / "tone.wav")
    before = time.monotonic()
    source.start()
    wait_for(lambda: ring.total_samples >= 16000, 5)
    source.stop()
    player.terminate()
    assert source.error is None, source.error
    assert ring.total_samples >= 16000
    w = ring.latest(0.5)
    assert dominant_hz(w.samples, 16000) == pytest.approx(1500, abs=10)
    assert np.sqrt(np.mean(w.samples**2)) > 0.1
    # Capture times are monotonic-clock times of this run.
    assert before - 0.5 < ring.time_of(0) < w.end_time <= time.monotonic()
    assert source.stats.blocks > 0


def _play_whole(path, ring, rate: int) -> FileAudioSource:
    source = open_audio_source(AudioSourceConfig(str(path), rate, loop=False), ring)
    source.start()
    wait_for(lambda: source.state != "running", 5)
    source.stop()
    assert source.state == "ended", source.error
    return source


def test_a_multichannel_file_through_the_ring_equals_the_file(tmp_path):
    rate = 16000
    x = np.random.default_rng(4).uniform(-0.8, 0.8, (int(0.3 * rate), 4))
    write_wav(tmp_path / "four.wav", x, rate)
    with wave.open(str(tmp_path / "four.wav")) as f:
        stored = (np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, 4) / 32768).astype(np.float32)
    ring = AudioRing(rate, channels=4)
    assert _play_whole(tmp_path / "four.wav", ring, rate).channels == 4
    assert ring.total_samples == len(stored)
    np.testing.assert_array_equal(ring.latest(len(stored) / rate, channels=True).samples, stored.T)


def test_mono_readers_hear_the_same_downmix_as_before_bit_for_bit(tmp_path):
    """The old pipeline: each decoded frame averaged over its channels, then resampled as one
    stream; a 3-channel ring's mono row and a mono ring must both be exactly that."""
    rate_in, rate = 44100, 16000
    write_wav(tmp_path / "three.wav", np.random.default_rng(5).uniform(-0.6, 0.6, (int(0.4 * rate_in), 3)), rate_in)
    resampler, parts = StreamResampler(rate_in, rate), []
    with av.open(str(tmp_path / "three.wav")) as container:
        to_float = av.AudioResampler(format="fltp")
        for frame in container.decode(audio=0):
            for converted in to_float.resample(frame):
                parts.append(resampler.process(converted.to_ndarray().mean(axis=0, dtype=np.float32))[0])
    old = np.concatenate(parts + [resampler.flush()])
    for channels in (1, 3):
        ring = AudioRing(rate, channels=channels)
        _play_whole(tmp_path / "three.wav", ring, rate)
        assert ring.latest(ring.total_samples / rate).samples.tobytes() == old.tobytes()
    # Resampled per channel too, each as one stream.
    got = ring.latest(ring.total_samples / rate, channels=True).samples
    with wave.open(str(tmp_path / "three.wav")) as f:
        stored = np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, 3) / 32768
    np.testing.assert_allclose(got, one_shot(stored.T, rate_in, rate), atol=1e-4)


def test_a_channel_count_other_than_the_rings_is_one_line_naming_both(tmp_path):
    write_wav(tmp_path / "mono.wav", np.zeros(1600), 16000)
    with pytest.raises(ChannelCountError, match=r"^audio file .*mono.wav has 1 channel but --mics has 2 microphones; "
                                                r"give one channel per microphone \(nothing is downmixed"):
        open_audio_source(AudioSourceConfig(str(tmp_path / "mono.wav"), 16000), AudioRing(16000, channels=2))
    four = tmp_path / "four.wav"
    write_wav(four, np.zeros((1600, 4)), 16000)
    with pytest.raises(ChannelCountError, match=r"four.wav has 4 channels but --mics has 2 microphones"):
        open_audio_source(AudioSourceConfig(str(four), 16000), AudioRing(16000, channels=2))


def test_stream_resampler_takes_channels_together():
    x = np.random.default_rng(6).uniform(-1, 1, (2, 24000)).astype(np.float32)
    r = StreamResampler(48000, 16000, channels=2)
    out = np.concatenate([r.process(x[:, k : k + 1000])[0] for k in range(0, 24000, 1000)] + [r.flush()], axis=1)
    np.testing.assert_allclose(out, one_shot(x, 48000, 16000), atol=2e-6)
    with pytest.raises(ValueError, match=r"expected a block of shape \(2, 'n'\)"):
        r.process(np.zeros(10, np.float32))


def test_a_stereo_microphone_keeps_its_channels_through_a_pulseaudio_null_sink(tmp_path, pulse):
    """Left 700 Hz, right 1900 Hz into the null sink; its monitor captured with channels=2
    into a 2-channel ring: each channel hears its own tone, the mono row both."""
    t = np.arange(3 * 48000) / 48000
    tones = np.stack([0.4 * np.sin(2 * np.pi * 700 * t), 0.4 * np.sin(2 * np.pi * 1900 * t)], axis=1)
    write_wav(tmp_path / "lr.wav", tones, 48000)
    ring = AudioRing(16000, channels=2)
    source = open_audio_source(AudioSourceConfig("mic", 16000, device="pulse", channels=2), ring)
    assert source.channels == 2
    player = pulse.play(tmp_path / "lr.wav")
    source.start()
    wait_for(lambda: ring.total_samples >= 16000, 5)
    source.stop()
    player.terminate()
    assert source.error is None, source.error
    left, right = ring.latest(0.5, channels=True).samples
    assert dominant_hz(left, 16000) == pytest.approx(700, abs=10)
    assert dominant_hz(right, 16000) == pytest.approx(1900, abs=10)
    mono = ring.latest(0.5).samples
    power = np.abs(np.fft.rfft(mono * np.hanning(len(mono)))) ** 2
    # Each tone's energy within +-20 Hz (bins of 2 Hz): a real sink's resampler and a dropout
    # under load spread a tone over neighbouring bins, so one bin is not its energy.
    bands = [power[centre - 10:centre + 11].sum() for centre in (350, 950)]  # 700 and 1900 Hz
    assert min(bands) > 0.25 * max(bands) and sum(bands) > 0.5 * power.sum(), (bands, power.sum())
    with pytest.raises(SourceError, match=r"--channels 999: microphone 'pulse' has only \d+ input channels"):
        open_audio_source(AudioSourceConfig("mic", 16000, device="pulse", channels=999), AudioRing(16000))


def test_a_stereo_video_track_keeps_its_channels_and_is_padded_to_the_video_on_each(tmp_path):
    """0.5 s of video with 0.3 s of stereo sound (left +0.25, right -0.5): a 2-channel ring at the
    file's rate holds exactly that, then silence on both channels up to the video's end."""
    path, rate = tmp_path / "stereo.mkv", 48000
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=rate)
        audio.layout = "stereo"
        for i in range(12):
            for packet in video.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8),
                                                                  format="rgb24")):
                out.mux(packet)
        pcm = np.tile(np.array([8192, -16384], np.int16), 14400)[None]  # interleaved L, R: 0.3 s
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, fractions.Fraction(1, rate)
        for packet in [*audio.encode(frame), *audio.encode(None), *video.encode(None)]:
            out.mux(packet)
    ring = AudioRing(rate, channels=2)
    source = _play_whole(path, ring, rate)
    assert source.channels == 2 and source.loop_samples == 0.48 * rate
    assert ring.total_samples == source.loop_samples
    got = ring.latest(ring.total_samples / rate, channels=True).samples
    np.testing.assert_array_equal(got[:, :14400], np.repeat([[0.25], [-0.5]], 14400, axis=1))
    np.testing.assert_array_equal(got[:, 14400:], 0)
    np.testing.assert_array_equal(ring.latest(ring.total_samples / rate).samples[:14400], -0.125)
