"""training.data: Urbansas layout, evaluation-pair selection, folder datasets,
audio windows and flow direction, on tiny hand-made fixtures."""
import dataclasses

import cv2
import numpy as np
import pytest
import torch

from flowgrad.audio import resample
from helpers import (AUDIO_ROWS, BOX_A, SECONDS, SQUARE, VIDEO_ROWS, H, W, clicks, moving_square_frames, square_x, vrow,
                     write_csv, write_video, write_wav)
from training.data import (AnnotationError, DataConfig, DataError, FolderWindows, UrbansasEval, UrbansasWindows,
                           collate, select_eval_pairs)
from training.data.media import probe_audio, probe_video, read_frames
from training.data.urbansas import AUDIO_COLUMNS, VIDEO_COLUMNS, read_csv
from training.data.windows import audio_window, compute_flow, window_centres

# The hand-worked selection of helpers.VIDEO_ROWS and AUDIO_ROWS (REFERENCE section 6).
EXPECTED_PAIRS = [("c1", 1.5, (BOX_A,)), ("c1", 2.5, ((0, 0, 8, 8), (100, 40, 30, 20))),
                  ("c1", 5.0, ((50, 50, 10, 10),)), ("c2", 1.0, ((5, 5, 10, 10),))]


def as_dicts(columns, rows):
    return [dict(zip(columns, (str(v) for v in r))) for r in rows]


# ---------------------------------------------------------------- evaluation pairs

def test_selection_rule_matches_hand_worked_pairs():
    pairs = select_eval_pairs(as_dicts(VIDEO_COLUMNS, VIDEO_ROWS), as_dicts(AUDIO_COLUMNS, AUDIO_ROWS))
    got = [(p.clip, p.t, tuple(tuple(int(v) for v in b) for b in p.boxes)) for p in pairs]
    assert got == EXPECTED_PAIRS


def test_eval_dataset_pairs_gt_and_skips(urbansas):
    ds = UrbansasEval(urbansas, DataConfig())
    assert len(ds) == 3  # c2's pair has no media
    assert ds.skipped == {"missing audio file": 1}
    s = ds[0]
    assert (s.clip, s.t) == ("c1", 1.5)
    # Box (16, 8, 32, 24) in a 192x128 frame -> 224 grid: x1 = int(18.67) = 18, y1 = int(14.0) = 14,
    # w' = int(37.33) = 37, h' = int(42.0) = 42: rows 14..55, columns 18..54.
    gt = s.gt.numpy()
    assert gt.shape == (224, 224) and gt.dtype == np.float32
    assert gt.sum() == 42 * 37
    assert gt[14, 18] == 1 and gt[55, 54] == 1
    assert gt[13, 18] == 0 and gt[14, 17] == 0 and gt[56, 54] == 0 and gt[55, 55] == 0
    assert set(np.unique(gt)) == {0.0, 1.0}
    assert s.frame.shape == (3, 224, 224) and s.flow.shape == (2, 224, 224) and s.wave.shape == (80000,)


def test_missing_columns_name_file_and_columns(tmp_path):
    path = tmp_path / "video_annotations.csv"
    cols = [c for c in VIDEO_COLUMNS if c not in ("visibility", "night")]
    write_csv(path, cols, [])
    with pytest.raises(AnnotationError) as e:
        read_csv(path, VIDEO_COLUMNS)
    assert str(path) in str(e.value) and "visibility" in str(e.value) and "night" in str(e.value)


def test_non_numeric_field_names_row(tmp_path):
    rows = as_dicts(VIDEO_COLUMNS, [vrow("c1", 1.5, "abc", 8, 32, 24)])
    with pytest.raises(AnnotationError, match="x = 'abc'"):
        select_eval_pairs(rows, as_dicts(AUDIO_COLUMNS, AUDIO_ROWS))


def test_eval_read_failure_raises_not_substitutes(tmp_path, urbansas):
    import shutil

    root = tmp_path / "u"
    shutil.copytree(urbansas, root)
    ds = UrbansasEval(root, DataConfig())
    (root / "video/video_8fps/c1.mp4").write_bytes(b"not a video any more")
    with pytest.raises(DataError, match="c1.mp4"):
        ds[0]


# ---------------------------------------------------------------- windows

def test_window_count_and_centres(urbansas):
    # c1: 6 s at 8 fps, last frame 5.875 s -> centres (k + 0.5) s while c + 0.125 <= 5.875: 0.5 .. 5.5.
    ds = UrbansasWindows(urbansas, DataConfig())
    c1 = [it.t for it in ds.items if ds.sources[it.source].clip == "c1"]
    assert c1 == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    assert len(ds) == 12  # c4 has the same length (24 fps: last frame 5.958 s)
    # stride 2: centres 1, 3, 5 (7 > 5.75)
    src = ds.sources[0]
    assert window_centres(src.video, src.audio, DataConfig(stride_s=2.0)) == [1.0, 3.0, 5.0]


def test_click_lands_on_its_sample(urbansas):
    ds = UrbansasWindows(urbansas, DataConfig())
    s = ds[2]  # c1 at t = 2.5: window covers 0.0 .. 5.0 s
    assert (s.clip, s.t) == ("c1", 2.5)
    wave_ = s.wave.numpy()
    assert wave_.shape == (80000,) and wave_.dtype == np.float32
    # click at 3.2 s = sample 51200 of the clip = sample 51200 - (40000 - 40000) of the window
    assert np.argmax(np.abs(wave_)) == 51200
    assert wave_[51200] == pytest.approx(0.5, abs=1e-4)
    assert np.count_nonzero(wave_) == 1


def test_window_at_clip_start_is_tiled(urbansas):
    info = probe_audio(urbansas / "audio/c1.wav")
    w = audio_window(info, 0.5, DataConfig())
    # window starts at 0.5 - 2.5 = -2 s -> the clip's last 2 s (4..6 s, 32000 samples) come first:
    # the click at 5.5 s (clip sample 88000) lands at 88000 - 64000 = 24000; then the clip from 0 s,
    # its click at 3.2 s at 32000 + 51200 = 83200 is beyond the 80000-sample window.
    assert np.flatnonzero(w).tolist() == [24000]


def test_resampled_stereo_window_equals_whole_clip_reference(urbansas):
    info = probe_audio(urbansas / "audio/c4.wav")
    assert (info.rate, info.channels) == (48000, 2)
    cfg = DataConfig()
    w = audio_window(info, 1.0, cfg)
    # independent reference: the whole clip resampled at once, then tiled with np.take
    pcm = np.round(clicks(48000)[0] * 32767) / 32768  # the wav holds 16-bit samples
    ref_clip = resample(torch.from_numpy(pcm.astype(np.float32)), 48000, 16000).numpy()
    start = 16000 - 40000
    ref = np.take(ref_clip, np.arange(start, start + 80000), mode="wrap")
    np.testing.assert_allclose(w, ref, atol=1e-6)
    # the 5.5 s click tiled to 88000 - (96000 - 24000) = 16000; the 3.2 s click at 51200 + 24000
    peaks = np.flatnonzero(np.abs(w) > 0.5 * np.abs(w).max())
    assert peaks.tolist() == [16000, 75200]


# ---------------------------------------------------------------- flow

def median_u_in_square(flow, t, fps, px_per_frame):
    """Median (u, v) over the inner half of the square at time t, on the 224 grid."""
    x0 = square_x(t, fps, px_per_frame)
    sx, sy = 224 / W, 224 / H
    cols = slice(int((x0 + 12) * sx), int((x0 + SQUARE - 12) * sx))
    rows = slice(int((40 + 12) * sy), int((40 + SQUARE - 12) * sy))
    return float(np.median(flow[0, rows, cols])), float(np.median(flow[1, rows, cols]))


@pytest.mark.parametrize("work_hw", [None, (64, 96)])
def test_flow_points_right_in_full_frame_pixels(urbansas, work_hw):
    video = probe_video(urbansas / "video/video_8fps/c1.mp4")
    assert video.frame_hw == (H, W)
    frame, flow, _ = compute_flow(video, 2.0, DataConfig(flow_work_hw=work_hw))
    # +2 px per 8 fps frame = +2 full-frame px per 0.125 s, whatever the working size
    u, v = median_u_in_square(flow.numpy(), 2.0, 8, 2)
    assert u == pytest.approx(2.0, abs=0.25)
    assert abs(v) < 0.25
    # background is still
    assert abs(float(np.median(flow[0, :, :20]))) < 0.1
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8


def test_eight_fps_preferred_else_highest_rate(urbansas):
    ds = UrbansasWindows(urbansas, DataConfig())
    by_clip = {s.clip: s for s in ds.sources}
    assert by_clip["c1"].video.path.parent.name == "video_8fps"  # the 24 fps copy has a still square
    assert by_clip["c4"].video.path.parent.name == "video_24fps"
    s1 = ds[1]  # c1 at 1.5 s
    u1, _ = median_u_in_square(s1.flow.numpy(), 1.5, 8, 2)
    assert u1 == pytest.approx(2.0, abs=0.25)
    s4 = ds[6 + 1]  # c4 at 1.5 s: 24 fps, +1 px per frame -> 3 frames per 0.125 s -> +3 px
    assert s4.clip == "c4"
    u4, _ = median_u_in_square(s4.flow.numpy(), 1.5, 24, 1)
    assert u4 == pytest.approx(3.0, abs=0.3)


def test_frame_is_the_frame_at_t(urbansas):
    video = probe_video(urbansas / "video/video_8fps/c1.mp4")
    (t, frame), = read_frames(video, [2.5])
    assert t == 2.5
    x = square_x(2.5, 8, 2)
    ref = moving_square_frames(8, 2, 48)[20]
    assert x == 60
    assert np.abs(frame.astype(int) - ref.astype(int)).mean() < 3.0  # H.264 at crf 8


def test_dataloader_workers_and_collate(urbansas):
    ds = UrbansasWindows(urbansas, DataConfig())
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate)
    batch = next(iter(loader))
    assert batch.frame.shape == (4, 3, 224, 224) and batch.wave.shape == (4, 80000)
    assert batch.clip == ("c1",) * 4 and batch.t.tolist() == [0.5, 1.5, 2.5, 3.5]
    assert batch.gt is None
    assert float(batch.frame.min()) >= 0 and float(batch.frame.max()) <= 1


# ---------------------------------------------------------------- skipping broken inputs

def test_urbansas_broken_clips_are_counted(tmp_path, urbansas):
    import shutil

    root = tmp_path / "u"
    shutil.copytree(urbansas, root)
    shutil.copy(root / "audio/c1.wav", root / "audio/lonely.wav")  # no video
    shutil.copy(root / "video/video_8fps/c1.mp4", root / "video/video_8fps/mute.mp4")  # no wav
    (root / "video/video_8fps/bad.mp4").write_bytes(b"\x00" * 100)
    shutil.copy(root / "audio/c1.wav", root / "audio/bad.wav")
    write_wav(root / "audio/short.wav", clicks(16000, seconds=2.0), 16000)
    shutil.copy(root / "video/video_8fps/c1.mp4", root / "video/video_8fps/short.mp4")
    shutil.copy(root / "video/video_8fps/c1.mp4", root / "video/video_8fps/badwav.mp4")
    (root / "audio/badwav.wav").write_bytes(b"RIFF0000WAVEjunk")
    ds = UrbansasWindows(root, DataConfig())
    assert ds.skipped == {"missing video file": 1, "missing audio file": 1, "unreadable video": 1,
                          "unreadable audio": 1, "audio shorter than the window": 1}
    assert sorted({s.clip for s in ds.sources}) == ["c1", "c4"] and len(ds) == 12


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """good.mp4 and m.mkv: 8 fps with an AAC track (clicks); withwav.mp4 + withwav.wav;
    mj.avi (OpenCV MJPG) + mj.wav; mute.mp4 (no audio); short.mp4 + 2 s wav; broken.mp4 (bytes); notes.txt."""
    root = tmp_path_factory.mktemp("folder")
    frames = moving_square_frames(8, 2, int(SECONDS * 8))
    write_video(root / "good.mp4", frames, 8, audio=clicks(16000)[0])
    write_video(root / "m.mkv", frames, 8, audio=clicks(16000)[0])
    writer = cv2.VideoWriter(str(root / "mj.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 8, (W, H))
    for f in frames:
        writer.write(f)
    writer.release()
    write_wav(root / "mj.wav", clicks(16000), 16000)
    write_video(root / "sub/withwav.mp4", frames, 8)
    write_wav(root / "sub/withwav.wav", clicks(16000), 16000)
    write_video(root / "mute.mp4", frames, 8)
    write_video(root / "short.mp4", frames, 8)
    write_wav(root / "short.wav", clicks(16000, seconds=2.0), 16000)
    (root / "broken.mp4").write_bytes(b"\x00\x01" * 500)
    (root / "notes.txt").write_text("not a video")
    return root


def test_folder_windows_aac_track(folder):
    ds = FolderWindows(folder, DataConfig())
    assert [s.clip for s in ds.sources] == ["good", "m", "mj", "sub/withwav"]
    assert ds.skipped == {"unreadable video": 1, "no readable audio (audio track or same-named .wav)": 1,
                          "audio shorter than the window": 1}
    assert len(ds) == 24
    good = ds[2]
    assert (good.clip, good.t) == ("good", 2.5)
    # AAC is lossy: the click is smeared but its peak stays within a few samples of 51200
    assert abs(int(np.argmax(np.abs(good.wave.numpy()))) - 51200) <= 3
    u, _ = median_u_in_square(good.flow.numpy(), 2.5, 8, 2)
    assert u == pytest.approx(2.0, abs=0.25)
    for i, clip in ((8, "m"), (14, "mj"), (20, "sub/withwav")):
        s = ds[i]
        assert (s.clip, s.t) == (clip, 2.5)
        assert abs(int(np.argmax(np.abs(s.wave.numpy()))) - 51200) <= (3 if clip == "m" else 0)
        assert median_u_in_square(s.flow.numpy(), 2.5, 8, 2)[0] == pytest.approx(2.0, abs=0.3)


def test_pair_moves_back_past_the_real_last_frame(urbansas):
    video = probe_video(urbansas / "video/video_8fps/c1.mp4")
    too_long = dataclasses.replace(video, n_frames=video.n_frames + 1)  # as a duration estimate may be
    frame, flow, _ = compute_flow(too_long, 6.0, DataConfig())
    # asked for frames at 5.875 and 6.0; 6.0 does not exist -> flow 5.75 -> 5.875, frame at 5.875
    ref_flow = compute_flow(video, 5.75, DataConfig()).flow
    assert torch.equal(flow, ref_flow)
    assert np.array_equal(frame, read_frames(video, [5.875])[0][1])


def test_training_read_failure_substitutes_and_counts(tmp_path, folder):
    import shutil

    root = tmp_path / "f"
    root.mkdir()
    shutil.copy(folder / "good.mp4", root / "a.mp4")
    shutil.copy(folder / "good.mp4", root / "b.mp4")
    ds = FolderWindows(root, DataConfig())
    (root / "a.mp4").write_bytes(b"gone")
    s = ds[5]  # a's last window fails -> b's first window instead
    assert (s.clip, s.t) == ("b", 0.5)
    assert ds.skipped == {"read failed in __getitem__ (substituted)": 1}


def test_config_validation():
    with pytest.raises(ValueError, match="stride_s"):
        DataConfig(stride_s=0)
    with pytest.raises(ValueError, match="flow_work_hw"):
        DataConfig(flow_work_hw=(-1, 640))
    with pytest.raises(ValueError, match="audio_rate"):
        DataConfig(audio_rate=16000.5)


def test_missing_root_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        UrbansasWindows(tmp_path / "nowhere")
    with pytest.raises(AnnotationError, match="video_annotations.csv"):
        UrbansasEval(tmp_path)


def test_matroska_video_delay_keeps_av_sync(tmp_path, folder):
    """ffmpeg's Matroska muxer starts the video 21 ms late (after AAC priming): the click
    must still land on its sample relative to the video's first frame."""
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    write_wav(tmp_path / "a.wav", clicks(48000), 48000)
    root = tmp_path / "f"
    root.mkdir()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(folder / "sub/withwav.mp4"), "-i",
                    str(tmp_path / "a.wav"), "-c:v", "copy", "-c:a", "aac", "-shortest", str(root / "o.mkv")],
                   check=True, timeout=60)
    ds = FolderWindows(root, DataConfig(audio_rate=48000))
    src = ds.sources[0]
    assert src.video.start_s > 0.01 and src.audio.start_s == src.video.start_s
    w = ds[2].wave.numpy()  # t = 2.5 s: window 0 .. 5 s
    assert abs(int(np.argmax(np.abs(w))) - round(3.2 * 48000)) <= 3


def test_training_windows_with_boxes_carry_the_eval_pairs_gt_and_zeros_elsewhere(urbansas):
    pairs = UrbansasEval(urbansas, DataConfig())
    ds = UrbansasWindows(urbansas, DataConfig(), boxes=True)
    by_time = {(ds.sources[it.source].clip, it.t): i for i, it in enumerate(ds.items)}
    shared = [k for k, pair in enumerate(pairs.pairs) if (pair.clip, pair.t) in by_time]
    assert shared  # centres (k + 1/2) s lie on the 2 fps annotation grid
    for k in shared:
        assert torch.equal(ds[by_time[(pairs.pairs[k].clip, pairs.pairs[k].t)]].gt, pairs[k].gt)
        assert pairs[k].gt.sum() > 0
    others = [i for key, i in by_time.items() if key not in {(p.clip, p.t) for p in pairs.pairs}]
    assert others and all(ds[i].gt is not None and ds[i].gt.sum() == 0 for i in others[:3])
    assert UrbansasWindows(urbansas, DataConfig())[0].gt is None  # without boxes: as before
