"""realtime.overlay_video: blending against hand-worked colours, timing, streams, errors,
and ``python -m realtime.subscribe ADDRESS --record out.mp4`` with a real publisher."""
import threading
import time

import av
import cv2
import numpy as np
import pytest

from realtime.overlay_video import OverlayConfig, OverlayVideoError, OverlayVideoWriter
from realtime.picture import band_height, blend
from realtime.protocol import Heatmap
from realtime.publisher import Publisher, PublisherConfig
from realtime.subscribe import main as subscribe_main

GRAY = 100
# JET ends: value 0 -> dark blue, value 1 -> dark red (BGR), as OpenCV's COLORMAP_JET.
JET_0, JET_1 = np.array([128, 0, 0]), np.array([0, 0, 128])


def gray_jpeg(w=64, h=48):
    return cv2.imencode(".jpg", np.full((h, w, 3), GRAY, np.uint8))[1].tobytes()


def half_map(h=6, w=8, left=1.0, right=0.0):
    m = np.full((h, w), right, np.float32)
    m[:, : w // 2] = left
    return m


def msg(seq, t, stream="cam1", heatmap=None, jpeg=True, frame_size=(64, 48)):
    return Heatmap(stream=stream, seq=seq, capture_time=t, model="test",
                   heatmap=half_map() if heatmap is None else heatmap, frame_size=frame_size,
                   frame_jpeg=gray_jpeg(*frame_size) if jpeg else None)


def read_video(path):
    """(frames as RGB arrays, presentation times in seconds)."""
    with av.open(str(path)) as c:
        frames = list(c.decode(c.streams.video[0]))
    return [f.to_ndarray(format="rgb24") for f in frames], [float(f.time) for f in frames]


def test_blend_matches_hand_worked_colours():
    frame = np.full((4, 8, 3), GRAY, np.uint8)
    out = blend(frame, half_map(4, 8, 1.0, 0.0), opacity=0.25, threshold=0.0)
    assert np.abs(out[:, :3] - (0.75 * GRAY + 0.25 * JET_1)).max() <= 1
    assert np.abs(out[:, 5:] - (0.75 * GRAY + 0.25 * JET_0)).max() <= 1
    # Below the threshold the frame is untouched.
    kept = blend(frame, half_map(4, 8, 0.9, 0.3), opacity=0.5, threshold=0.5)
    assert (kept[:, 5:] == GRAY).all()
    jet_09 = cv2.applyColorMap(np.uint8([[230]]), cv2.COLORMAP_JET)[0, 0]  # 0.9 * 255 = 229.5 -> 230
    assert np.abs(kept[:, :3] - (0.5 * GRAY + 0.5 * jet_09.astype(float))).max() <= 1


def test_video_has_overlay_colours_and_capture_times(tmp_path):
    path = tmp_path / "out.mp4"
    with OverlayVideoWriter(path, OverlayConfig(opacity=0.5)) as video:
        for i in range(10):
            assert video.add(msg(i, 1000.0 + 0.1 * i))
    assert video.frames == 10 and video.duration_s == pytest.approx(0.9)
    frames, times = read_video(path)
    assert len(frames) == 10 and frames[0].shape == (48 + band_height(64), 64, 3)  # the caption band below
    np.testing.assert_allclose(times, np.arange(10) * 0.1, atol=1e-3)
    rgb_left, rgb_right = (0.5 * GRAY + 0.5 * JET_1)[::-1], (0.5 * GRAY + 0.5 * JET_0)[::-1]
    for f in frames:  # away from the seam and the chroma-subsampled edges; H.264 is lossy
        np.testing.assert_allclose(f[8:40, 4:24].mean((0, 1)), rgb_left, atol=6)
        np.testing.assert_allclose(f[8:40, 40:60].mean((0, 1)), rgb_right, atol=6)


def test_one_stream_only_times_keep_rising_and_frameless_maps_use_black(tmp_path):
    path = tmp_path / "out.mkv"
    with OverlayVideoWriter(path, OverlayConfig(opacity=1.0), stream="cam2") as video:
        assert not video.add(msg(0, 10.0, stream="cam1"))
        assert video.add(msg(0, 10.0, stream="cam2", jpeg=False, frame_size=(1280, 720), heatmap=half_map()))
        assert video.add(msg(1, 10.5, stream="cam2", jpeg=False, frame_size=(1280, 720)))
        # A restarted publisher sends an older capture time: the video's clock must not go back.
        assert video.add(msg(0, 3.0, stream="cam2", jpeg=False, frame_size=(1280, 720)))
    assert video.skipped_streams == {"cam1"}
    frames, times = read_video(path)
    assert [f.shape for f in frames] == [(360 + band_height(640), 640, 3)] * 3  # capped at max_width 640, aspect kept
    assert times[0] == 0 and times[1] == pytest.approx(0.5, abs=1e-3) and times[2] > times[1]
    np.testing.assert_allclose(frames[0][100:260, 40:280].mean((0, 1)), JET_1[::-1], atol=6)


def test_bad_paths_and_frames_are_one_line_errors(tmp_path):
    with pytest.raises(OverlayVideoError, match="must end in"):
        OverlayVideoWriter(tmp_path / "out.avi")
    with pytest.raises(OverlayVideoError, match="no_such_dir"):
        OverlayVideoWriter(tmp_path / "no_such_dir" / "out.mp4")
    video = OverlayVideoWriter(tmp_path / "bad.mp4")
    broken = Heatmap(stream="cam1", seq=3, capture_time=1.0, model="t", heatmap=half_map(),
                     frame_size=(64, 48), frame_jpeg=b"not a jpeg")
    with pytest.raises(OverlayVideoError, match="seq 3"):
        video.add(broken)
    video.close()
    # Nothing was encoded, so nothing is left behind.
    assert not (tmp_path / "bad.mp4").exists()


def test_subscribe_record_mp4_writes_the_overlay_video(tmp_path, capsys):
    pub = Publisher(PublisherConfig("tcp://127.0.0.1:*"))
    stop = threading.Event()

    def publish():
        seq = 0
        while not stop.is_set():
            pub.publish(msg(seq, time.time()))
            seq += 1
            time.sleep(0.02)

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        code = subscribe_main([pub.address, "--record", str(tmp_path / "out.mp4"), "--count", "12"])
    finally:
        stop.set()
        thread.join()
        pub.close()
    assert code == 0
    out = capsys.readouterr().out
    assert "video: 12 frames" in out, out
    frames, times = read_video(tmp_path / "out.mp4")
    assert len(frames) == 12 and all(np.diff(times) > 0)
    np.testing.assert_allclose(frames[-1][8:40, 4:24].mean((0, 1)), (0.55 * GRAY + 0.45 * JET_1)[::-1], atol=6)
