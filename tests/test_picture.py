"""realtime.picture and realtime.snapshot: the operator's pictures carry the colour scale and the
caption, and the snapshot shows the clearest recent map, not simply the last one."""
import datetime as dt

import cv2
import numpy as np
import pytest

from realtime.picture import band_height, blend, caption_lines, capture_clock, colourise, scale_box, with_caption
from realtime.protocol import Heatmap
from realtime.snapshot import SnapshotSink, contrast


def jpeg(h=90, w=160, value=100):
    return cv2.imencode(".jpg", np.full((h, w, 3), value, np.uint8))[1].tobytes()


def spot_map(h=18, w=32, spot=None, floor=0.0):
    """A map of ``floor`` with a 1.0 square at spot=(y, x), or uniform when spot is None."""
    m = np.full((h, w), floor, np.float32)
    if spot is not None:
        y, x = spot
        m[y:y + 4, x:x + 4] = 1.0
    return m


def heatmap(t, m, seq=0, frame=True):
    return Heatmap(stream="cam1", seq=seq, capture_time=t, model="flowgrad_en", heatmap=m,
                   frame_size=(160, 90), frame_jpeg=jpeg() if frame else None)


def test_colour_scale_in_the_band_is_opencv_jet_from_0_to_1():
    picture = np.full((90, 160, 3), 100, np.uint8)
    out = with_caption(picture, ["stream cam1"])
    assert out.shape == (90 + band_height(160), 160, 3)
    assert (out[:90] == picture).all()  # the picture itself is untouched
    x0, y0, x1, y1 = scale_box(160)
    bar = out[90 + (y0 + y1) // 2, x0:x1].astype(int)
    jet = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None], cv2.COLORMAP_JET)[0].astype(int)
    assert np.abs(bar[0] - jet[0]).max() <= 1 and np.abs(bar[-1] - jet[255]).max() <= 1
    mid = (x1 - x0 - 1) / 2
    assert np.abs(bar[round(mid)] - jet[128]).max() <= 12
    # The caption text is drawn (white pixels left of the scale); the band is otherwise black.
    text = out[90:, : x0 - 6]
    assert (text.max(axis=2) > 200).sum() > 20


def test_band_height_is_even_for_video_encoders():
    assert all(band_height(w) % 2 == 0 for w in (16, 64, 321, 640, 1279, 1920))


def test_capture_clock_is_local_time_with_offset_and_milliseconds():
    t = 1_764_687_845.25  # 2025-12-02 15:04:05.250 UTC
    text = capture_clock(t)
    local = dt.datetime.fromtimestamp(t).astimezone()
    assert text == local.strftime("%Y-%m-%d %H:%M:%S") + ".250 " + local.strftime("%z")
    assert caption_lines("cam1", "flowgrad_en", t) == ["stream cam1   model flowgrad_en", f"captured {text}"]
    # What the map heard, when the message says: the sounding score (quiet or not) and the level.
    assert caption_lines("cam1", "flowgrad_en", t, 0.214, True, -31.25, "dBFS(A)")[2:] == \
        ["sounding score 0.21 (quiet)   level -31.2 dBFS(A)"]
    assert caption_lines("cam1", "flow_only", t, 1.0, False)[2:] == ["sounding score 1.00"]
    assert caption_lines("cam1", "flow_only", t, level_db=60.0, level_ref="dB(A) SPL")[2:] == ["level 60.0 dB(A) SPL"]


def test_blend_and_colourise_agree_with_opencv():
    frame = np.full((4, 8, 3), 100, np.uint8)
    m = np.linspace(0, 1, 32, dtype=np.float32).reshape(4, 8)
    colour = cv2.applyColorMap(np.rint(m * 255).astype(np.uint8), cv2.COLORMAP_JET)
    assert (colourise(m) == colour).all()
    assert (blend(frame, m, opacity=0.3) == cv2.addWeighted(frame, 0.7, colour, 0.3, 0)).all()


def test_contrast_is_peak_minus_mean():
    assert contrast(spot_map()) == 0.0
    assert contrast(spot_map(floor=1.0)) == 0.0
    m = spot_map(spot=(2, 2))
    assert contrast(m) == pytest.approx(1 - 16 / (18 * 32))


def test_snapshot_keeps_the_clearest_map_of_the_window_not_the_last():
    published = []
    sink = SnapshotSink(published.append, window_s=5.0)
    clear = heatmap(100.0, spot_map(spot=(5, 5)), seq=1)
    sink(heatmap(99.0, spot_map(floor=0.5), seq=0))
    sink(clear)
    for k in range(2, 8):  # the vehicle leaves: wide, flat maps
        sink(heatmap(100.0 + 0.5 * k, spot_map(spot=(5, 5), floor=0.6), seq=k))
    sink(heatmap(104.0, spot_map(spot=(5, 5)), seq=99, frame=False))  # no frame: nothing to show
    assert len(published) == 9  # every message is passed on
    assert sink.chosen is clear
    # Once the clear map is older than the window, the best of the newer ones is shown.
    later = heatmap(105.5, spot_map(spot=(1, 1), floor=0.3), seq=20)
    sink(later)
    assert sink.chosen is later


def test_snapshot_memory_stays_bounded_on_rising_contrast():
    sink = SnapshotSink(lambda msg: None, window_s=1e9)
    for k in range(200):  # contrast rises with every map: each new one evicts all the others
        m = spot_map(spot=(2, 2), floor=max(0.0, 0.9 - k * 0.004))
        sink(heatmap(float(k), m, seq=k))
    assert len(sink._best) == 1 and sink.chosen.seq == 199


def test_snapshot_png_has_the_caption_band(tmp_path):
    sink = SnapshotSink(lambda msg: None)
    assert sink.write(tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    sink(heatmap(1_764_687_845.25, spot_map(spot=(5, 5))))
    path = sink.write(tmp_path / "sub" / "snap.png")
    image = cv2.imread(str(path))
    assert image.shape == (90 + band_height(160), 160, 3)
    hot = image[:90].astype(int)
    # The map's spot (rows 5..9 of 18 -> frame rows 25..50) is red-ish over the gray frame.
    assert hot[35, 40, 2] > hot[35, 40, 0] + 40


def test_a_quiet_map_is_drawn_fainter_in_the_snapshot(tmp_path):
    """As the dashboard fades a quiet map, the snapshot blends it at QUIET_FADE of the opacity:
    the spot's colour over the frame, against blend() computed here at both weights (before,
    a quiet map was drawn as strongly as a sounding one)."""
    import dataclasses

    from realtime.picture import OPACITY, QUIET_FADE, map_opacity

    assert map_opacity(True) == pytest.approx(OPACITY * QUIET_FADE)
    assert map_opacity(False) == map_opacity(None) == OPACITY
    loud = dataclasses.replace(heatmap(1_764_687_845.25, spot_map(spot=(5, 5))), score=0.9, quiet=False)
    quiet = dataclasses.replace(loud, score=0.1, quiet=True)
    frame = cv2.imdecode(np.frombuffer(loud.frame_jpeg, np.uint8), cv2.IMREAD_COLOR)
    for msg, opacity in ((loud, OPACITY), (quiet, OPACITY * QUIET_FADE)):
        sink = SnapshotSink(lambda m: None)
        sink(msg)
        image = cv2.imread(str(sink.write(tmp_path / f"{msg.quiet}.png")))
        expected = blend(frame, msg.heatmap, opacity)
        assert np.abs(image[:90].astype(int) - expected.astype(int)).max() <= 2  # PNG is lossless
