"""``+doa`` in training.evaluate on a tiny stereo street made here: two textured vehicles move
in the picture, only the one on the right sounds (a noise source rendered to a 20 cm pair
with its propagation delays, training.synth.spatial), so the motion alone cannot tell them
apart and the direction can."""
import json
import math
import wave

import numpy as np
import pytest

from flowgrad.spatial.geometry import preset_geometry
from training.data import DataConfig
from training.data.flowcache import FlowCache
from training.data.pairs import EvalPairs, array_window
from training.evaluate import EvaluateError, evaluate_pairs, main, open_localiser
from training.synth.spatial import render_array
from training.synth.writer import write_csv, write_video

W, H, FPS, SECONDS, RATE = 320, 180, 8, 6.0, 48000
BOX = 56  # px, each vehicle's side
COLUMNS = {"left": 40, "right": 224}  # x of each vehicle's box; they move down 2 px a frame
HFOV = 90.0


def _azimuth(x_box: float) -> float:
    """The azimuth (degrees) of a box's centre column under the pinhole model."""
    return math.degrees(math.atan((x_box + BOX / 2 - W / 2) / (W / 2 / math.tan(math.radians(HFOV / 2)))))


def _y(t: float) -> float:
    return 10 + 2 * FPS * t


def _frames(rng):
    background = rng.integers(20, 60, (H, W, 3), dtype=np.uint8)
    skins = {k: rng.integers(100, 255, (BOX, BOX, 3), dtype=np.uint8) for k in COLUMNS}
    for i in range(int(SECONDS * FPS)):
        img = background.copy()
        y = int(_y(i / FPS))
        for k, x in COLUMNS.items():
            img[y:y + BOX, x:x + BOX] = skins[k]
        yield img


def _write_wav(path, channels: np.ndarray) -> None:
    pcm = np.round(np.clip(channels, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels.shape[0])
        f.setsampwidth(2)
        f.setframerate(RATE)
        f.writeframes(pcm.T.tobytes())


def _heard(azimuth_deg: float, mics, rng) -> np.ndarray:
    """(M, T) a noise source 10 m away at ``azimuth_deg`` heard at 20 dB SNR over diffuse noise."""
    a = math.radians(azimuth_deg)
    n = int(SECONDS * RATE)
    signal = rng.standard_normal(n) * 0.5
    heard = render_array([(signal, 10 * np.array([math.sin(a), 0.0, math.cos(a)]))], RATE, mics, 0.005, rng)
    return heard * 0.3 / np.abs(heard).max()


def _make_set(root, mics, rng) -> None:
    for d in ("audio", "video/video_8fps", "annotations"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for clip in ("street", "donor"):
        write_video(root / "video" / "video_8fps" / f"{clip}.mp4", _frames(rng), FPS, W, H)
    # street: the right vehicle sounds; donor: a sound from the left, no vehicle event
    _write_wav(root / "audio" / "street.wav", _heard(_azimuth(COLUMNS["right"]), mics, rng))
    _write_wav(root / "audio" / "donor.wav", _heard(_azimuth(COLUMNS["left"]), mics, rng))
    times = [k / 2 for k in range(1, int(SECONDS * 2))]
    rows = [(int(t * 2), 1, COLUMNS["right"], _y(t), BOX, BOX, 1, 1, "car", "street.mp4", "c", 1, t, 0) for t in times]
    rows.append((-1, -1, -1, -1, -1, -1, -1, -1, "-1", "donor.mp4", "c", 1, -1, 0))
    write_csv(root / "annotations" / "video_annotations.csv",
              ("frame_id", "track_id", "x", "y", "w", "h", "class_id", "visibility", "label", "filename",
               "city", "location_id", "time", "night"), rows)
    write_csv(root / "annotations" / "audio_annotations.csv",
              ("filename", "class_id", "label", "non_identifiable_vehicle_sound", "start", "end"),
              [("street.wav", 1, "car", 0, 0.0, SECONDS)])


@pytest.fixture(scope="module")
def stereo_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("doa") / "set"
    geometry = preset_geometry("stereo:0.2", HFOV)
    _make_set(root, geometry.mic_positions_m, np.random.default_rng(3))
    (root / "annotations" / "array.json").write_text(geometry.to_json())
    return root


@pytest.fixture(scope="module")
def doa_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("doa_cache")


def test_array_windows_keep_every_channel_at_the_clip_rate(stereo_set):
    data = EvalPairs(stereo_set, DataConfig(audio_seconds=1.0))
    kinds = {item.kind: i for i, item in enumerate(data.items)}
    assert set(kinds) == {"positive", "no-event", "silence", "swapped"}
    signals, rate = array_window(data, kinds["positive"], 0.5)
    assert rate == RATE and signals.shape == (2, RATE // 2) and np.abs(signals).max() > 0.01
    item = data.items[kinds["positive"]]  # centred on the pair's time, read straight from the wav
    with wave.open(str(stereo_set / "audio" / "street.wav")) as f:
        f.setpos(round(item.t * RATE) - RATE // 4)
        raw = np.frombuffer(f.readframes(RATE // 2), "<i2").reshape(-1, 2).T / 32768
    np.testing.assert_allclose(signals, raw, atol=1e-6)
    silence, _ = array_window(data, kinds["silence"], 0.5)
    assert silence.shape == (2, RATE // 2) and not silence.any()
    swapped = data.items[kinds["swapped"]]
    assert data.sources[swapped.audio[0]].clip == "donor"
    donor, _ = array_window(data, kinds["swapped"], 0.5)
    assert not np.array_equal(donor, signals) and np.abs(donor).max() > 0.01


def test_flow_only_doa_finds_the_sounding_one_of_two_movers(stereo_set, doa_cache):
    plain = open_localiser("flow_only", "cpu")
    fused = open_localiser("flow_only+doa", "cpu")
    assert (plain.label, fused.label, fused.doa) == ("flow_only", "flow_only +doa", True)
    cache = FlowCache(doa_cache)
    base, base_cious, _, base_pairs = evaluate_pairs(plain, stereo_set, cache, 4, 0.5, False, negatives=True)
    doa, doa_cious, _, doa_pairs = evaluate_pairs(fused, stereo_set, cache, 4, 0.5, False, negatives=True)
    assert len(doa_cious) == len(base_cious) > 5
    # both movers light the plain map: the sounding one's box is about half of it
    assert max(base_cious) < 0.7
    assert np.mean(doa_cious) > np.mean(base_cious) + 0.2
    assert doa["success@0.5"] > base["success@0.5"]
    by_kind = {}
    for b, d in zip(base_pairs, doa_pairs):
        assert (b["clip"], b["time"], b["kind"]) == (d["clip"], d["time"], d["kind"])
        assert "azimuth_deg" not in b
        by_kind.setdefault(d["kind"], []).append((b, d))
    right, left = _azimuth(COLUMNS["right"]), _azimuth(COLUMNS["left"])
    for b, d in by_kind["positive"]:
        assert abs(d["azimuth_deg"] - right) < 5
    for b, d in by_kind["swapped"]:  # heard with the donor's channels: the sound on the left
        assert abs(d["azimuth_deg"] - left) < 5
    for b, d in by_kind["silence"]:  # zeros: no direction, the map is left as it was
        assert d["ciou"] == pytest.approx(b["ciou"], abs=1e-6)


def test_the_fused_flow_map_peaks_on_the_sounding_mover_and_drops_the_silent_one(stereo_set, doa_cache):
    """flow_only lights both movers; with the direction heard, the map's peak lies on the
    sounding (right) one and the silent (left) one falls below half the maximum, the
    benchmarks' binarisation; the plain map keeps both above it."""
    from training.data import collate
    from flowgrad.spatial.with_doa import WithDoa

    plain = open_localiser("flow_only", "cpu")
    data = EvalPairs(stereo_set, DataConfig(audio_rate=plain.audio_rate, audio_seconds=plain.audio_seconds),
                     FlowCache(doa_cache))
    positives = [i for i, item in enumerate(data.items) if item.kind == "positive"]
    maps, scores = plain.localise(collate([data[i] for i in positives]), data, positives)
    signals = np.stack([array_window(data, i, 0.5)[0] for i in positives])
    fused, _, _ = WithDoa(preset_geometry("stereo:0.2", HFOV), maps.shape[1:], RATE)(maps, scores, signals)
    side = maps.shape[2] / W  # map columns per frame pixel
    cols = {k: slice(round(x * side), round((x + BOX) * side)) for k, x in COLUMNS.items()}
    assert len(positives) > 5
    for plain_map, fused_map in zip(maps, fused):
        peak_column = np.unravel_index(np.argmax(fused_map), fused_map.shape)[1]
        assert cols["right"].start - 2 <= peak_column < cols["right"].stop + 2
        assert fused_map[:, cols["left"]].max() < 0.5
        peak = plain_map.max()
        assert plain_map[:, cols["left"]].max() >= 0.5 * peak and plain_map[:, cols["right"]].max() >= 0.5 * peak


def test_cli_doa_label_json_and_by_case(stereo_set, doa_cache, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["--data", str(stereo_set), "--model", "flow_only+nomemory", "--model", "flow_only+doa+nomemory",
                 "--flow-cache", str(doa_cache), "--negatives", "--by-case", "--json", str(out),
                 "--plots", str(tmp_path / "plots")]) == 0
    text = capsys.readouterr().out
    assert "| flow_only +doa +nomemory |" in text and "| flow_only +nomemory |" in text
    models = json.loads(out.read_text())["models"]
    assert all("azimuth_deg" in p for p in models["flow_only +doa +nomemory"]["pairs"])
    assert (tmp_path / "plots" / "examples.png").is_file()


def test_doa_without_array_json_is_one_line(stereo_set, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for d in ("audio", "video", "annotations"):
        (bare / d).symlink_to(stereo_set / d) if d != "annotations" else (bare / d).mkdir()
    for f in ("video_annotations.csv", "audio_annotations.csv"):
        (bare / "annotations" / f).symlink_to(stereo_set / "annotations" / f)
    assert main(["--data", str(bare), "--model", "flow_only+doa"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "array.json" in err[0] and "training.synth" in err[0], err


def test_doa_with_another_channel_count_is_one_line(stereo_set, tmp_path, capsys):
    square = tmp_path / "square"
    square.mkdir()
    for d in ("audio", "video"):
        (square / d).symlink_to(stereo_set / d)
    (square / "annotations").mkdir()
    for f in ("video_annotations.csv", "audio_annotations.csv"):
        (square / "annotations" / f).symlink_to(stereo_set / "annotations" / f)
    (square / "annotations" / "array.json").write_text(preset_geometry("square:0.2").to_json())
    with pytest.raises(EvaluateError, match="2 audio channels.*4 microphones"):
        evaluate_pairs(open_localiser("flow_only+doa", "cpu"), square, FlowCache(tmp_path / "c"), 4, 0.5, False)
    assert main(["--data", str(square), "--model", "flow_only+doa"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 audio channels" in err[0] and "4 microphones" in err[0], err


def test_an_export_made_with_doa_is_fused_without_the_suffix(tmp_path):
    from export.onnx import main as export_main

    assert export_main(["flow_only+doa", "-o", str(tmp_path / "fo")]) == 0
    loc = open_localiser(str(tmp_path / "fo"), "cpu")
    assert loc.doa and loc.label.endswith(" +doa")
    assert export_main(["flow_only", "-o", str(tmp_path / "plain")]) == 0
    assert not open_localiser(str(tmp_path / "plain"), "cpu").doa


def test_the_oracle_bench_bounds_what_a_direction_can_do(stereo_set, doa_cache):
    """bench/doa_oracle.py on the two-mover street: the oracle direction (the sounding box's columns)
    removes the silent mover at least as well as the heard one, and both beat the plain map, which
    lights both movers; fusing the box itself is the best of all."""
    from bench.doa_oracle import ROWS, main, oracle_cious

    cious = oracle_cious("flow_only", stereo_set, FlowCache(doa_cache), progress=False)
    mean = {row: float(np.mean(c)) for row, c in cious.items()}
    assert len({len(c) for c in cious.values()}) == 1 and len(cious[ROWS[0]]) > 5
    none, heard, oracle_region, oracle_pixel, boxes = (mean[row] for row in ROWS)
    assert max(cious[ROWS[0]]) < 0.7  # both movers light the plain map
    assert oracle_region >= heard - 1e-6 and heard > none + 0.2
    assert boxes >= max(oracle_region, oracle_pixel)
    assert main(["--data", str(stereo_set.parent), "--flow-cache", str(doa_cache), "--model", "flow_only"]) == 2
