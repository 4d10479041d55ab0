"""Tests of the synthetic street-scene generator (training.synth)."""
import csv
import dataclasses
import json
import subprocess
import sys
import wave
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from training.synth import SynthConfig, SynthError, generate
from training.synth import annotations as ann
from training.synth import scene as sc
from training.synth.__main__ import main
from training.synth.render import Renderer
from training.synth.sound import mix

SEED = 7
CONFIG = SynthConfig(width=320, height=180, seconds=3.0, fps=24, audio_rate=16000, night_fraction=0.0,
                     shake_fraction=0.0, offscreen_fraction=1.0, light_fraction=1.0)
MICS = CONFIG.mic_positions_m


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "out"
    return out, generate(out, 2, SEED, CONFIG)


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def read_wav(path):
    with wave.open(str(path)) as f:
        assert (f.getnchannels(), f.getsampwidth()) == (2, 2)
        data = np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, 2).T / 32768.0
        return data, f.getframerate()


def decode(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_layout_and_headers(run):
    out, infos = run
    assert [i.clip_id for i in infos] == [f"synth{SEED}_0000", f"synth{SEED}_0001"]
    for info in infos:
        assert info.audio == out / "audio" / f"{info.clip_id}.wav"
        for fps in (24, 8, 2):
            assert info.videos[fps] == out / "video" / f"video_{fps}fps" / f"{info.clip_id}.mp4"
            assert info.videos[fps].stat().st_size > 1000
    header, rows = read_csv(out / "annotations" / "video_annotations.csv")
    assert header == ["frame_id", "track_id", "x", "y", "w", "h", "class_id", "visibility", "label",
                      "filename", "city", "location_id", "time", "night"]
    assert {r["filename"] for r in rows if r["time"] == "-1"} == {i.clip_id for i in infos}  # clip-level rows
    for r in rows:
        if r["time"] != "-1":
            assert float(r["time"]) == int(r["frame_id"]) / 2
    header, _ = read_csv(out / "annotations" / "audio_annotations.csv")
    assert header == ["filename", "class_id", "label", "non_identifiable_vehicle_sound", "start", "end"]
    meta = json.loads((out / "synth.json").read_text())
    assert meta["seed"] == SEED and meta["config"]["width"] == 320 and set(meta["scenes"]) == {i.clip_id for i in infos}
    assert "sounding" in (out / "README.md").read_text()
    assert "synthesised" in (out / "SOURCES").read_text() and (out / "annotations" / "cases.json").is_file()


def test_videos_decode_with_expected_size_and_length(run):
    _, infos = run
    for fps in (24, 8, 2):
        frames = decode(infos[0].videos[fps])
        assert len(frames) == round(CONFIG.seconds * fps)
        assert frames[0].shape == (180, 320, 3)


def test_wav_and_mp4_audio_track_agree(run):
    _, infos = run
    wav, rate = read_wav(infos[0].audio)
    assert rate == 16000 and wav.shape == (2, 48000)
    assert 0.01 < np.abs(wav).max() <= 0.9 + 1e-3  # audible, limited, never clipped
    with av.open(str(infos[0].videos[24])) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.rate, stream.layout.name) == ("aac", 16000, "stereo")
        track = np.concatenate([f.to_ndarray() for f in container.decode(stream)], axis=1)
    lags = range(0, 2048)
    lag = max(lags, key=lambda k: float(np.dot(track[0, k:k + 20000], wav[0, :20000])))
    n = min(track.shape[1] - lag, wav.shape[1])
    for ch in (0, 1):
        assert np.corrcoef(track[ch, lag:lag + n], wav[ch, :n])[0, 1] > 0.95


def test_same_seed_same_bytes_other_seed_differs(run, tmp_path):
    out, _ = run
    again = tmp_path / "again"
    generate(again, 2, SEED, CONFIG)
    for rel in ("annotations/video_annotations.csv", "annotations/audio_annotations.csv", "synth.json",
                f"audio/synth{SEED}_0001.wav"):
        assert (out / rel).read_bytes() == (again / rel).read_bytes(), rel
    a, b = decode(out / "video/video_2fps" / f"synth{SEED}_0000.mp4"), decode(again / "video/video_2fps" / f"synth{SEED}_0000.mp4")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    other = tmp_path / "other"
    generate(other, 1, SEED + 1, CONFIG)
    assert read_wav(other / f"audio/synth{SEED + 1}_0000.wav")[0].shape == (2, 48000)
    assert not np.array_equal(read_wav(other / f"audio/synth{SEED + 1}_0000.wav")[0],
                              read_wav(out / f"audio/synth{SEED}_0000.wav")[0])
    assert read_csv(other / "annotations/video_annotations.csv")[1] != read_csv(out / "annotations/video_annotations.csv")[1]


def test_boxes_cover_the_moving_pixels(run):
    out, infos = run
    _, rows = read_csv(out / "annotations" / "video_annotations.csv")
    checked = 0
    for info in infos:
        frames = decode(info.videos[24])
        tracks = {v.track_id: v for v in info.scene.annotated()}
        clip_rows = [r for r in rows if r["filename"] == info.clip_id and r["time"] != "-1"]
        for r in clip_rows:
            t, v = float(r["time"]), tracks[int(r["track_id"])]
            i = int(round(t * 24))
            if r["visibility"] != "1" or i + 1 >= len(frames) or np.interp(t, v.times, v.speed) < 3.0:
                continue
            diff = np.abs(frames[i + 1].astype(float) - frames[i].astype(float)).sum(axis=2)
            inside = np.zeros(diff.shape, bool)
            x, y, w, h = (float(r[k]) for k in "xywh")
            inside[int(y):int(y + h), int(x):int(x + w)] = True
            others = np.zeros(diff.shape, bool)  # every annotated box at t and t + 1/24
            for u in info.scene.annotated():
                for tt in (t, t + 1 / 24):
                    b = sc.vehicle_box(info.scene, u, tt)
                    if b:
                        others[max(0, int(b[1]) - 2):int(b[1] + b[3]) + 2, max(0, int(b[0]) - 2):int(b[0] + b[2]) + 2] = True
            assert diff[inside].mean() > 5 * diff[~others].mean() + 1.0
            checked += 1
    assert checked >= 3


def _box_mask(shape, box, pad=1):
    mask = np.zeros(shape, bool)
    x, y, w, h = box
    mask[max(0, int(y) - pad):int(y + h) + pad + 1, max(0, int(x) - pad):int(x + w) + pad + 1] = True
    return mask


def test_parked_vehicles_are_static_and_silent(run):
    _, infos = run
    scene = dataclasses.replace(infos[0].scene, pedestrians=())  # walkers may pass behind a parked car
    parked = [v for v in scene.vehicles if v.parked]
    moving = [v for v in scene.vehicles if v.visible and not v.parked]
    assert parked and all(not v.sounding for v in parked)
    renderer = Renderer(scene)
    shape = (180, 320)
    for t in np.arange(0, 3, 0.25):
        a, b = renderer.frame(t), renderer.frame(t + 1 / 24)
        changed = np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 0
        covered = np.zeros(shape, bool)
        for v in moving:
            for tt in (t, t + 1 / 24):
                if (box := sc.vehicle_box(scene, v, tt)) is not None:
                    covered |= _box_mask(shape, box)
        for v in parked:
            region = _box_mask(shape, sc.vehicle_box(scene, v, t), pad=0) & ~covered
            assert not changed[region].any()
    # The same check notices motion: a moving vehicle's own box does change.
    v = moving[0]
    t = next(t for t in np.arange(0, 3, 0.05) if sc.vehicle_box(scene, v, t) and np.interp(t, v.times, v.speed) > 3)
    a, b = renderer.frame(t), renderer.frame(t + 1 / 24)
    assert (np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 0)[_box_mask(shape, sc.vehicle_box(scene, v, t), 0)].any()
    # Parked vehicles are never in the ground truth.
    assert not any(v.parked for v in scene.annotated())


def test_level_rises_when_near_and_a_close_pair_hears_no_pan(run):
    _, infos = run
    base = infos[0].scene
    layout = base.layout
    times = np.arange(-20, 4.0, 1 / sc.SIM_RATE)
    # Hand-made car in the near lane crossing left to right at 200 px/s: x = 160 px at t = 1.5 s.
    x = 160 + 200.0 * (times - 1.5)
    car = sc.Vehicle(1, "car", sc.LANE_DEPTHS[1], 1, 50.0, 20.0, (0, 0, 200), times, x,
                     np.full(times.shape, 200.0 / layout.ppm(sc.LANE_DEPTHS[1])), sounding=True, visible=True)
    scene = dataclasses.replace(base, vehicles=(car,))
    audio = mix(scene, 16000, np.random.default_rng(0), CONFIG.mic_positions_m).astype(float)

    def energy(t):  # (left, right) energy over 0.1 s around t
        seg = audio[:, int((t - 0.05) * 16000):int((t + 0.05) * 16000)]
        return (seg ** 2).sum(axis=1)

    # Microphones 20 cm apart hear a car 8 m away about equally loud wherever it is (a pan
    # law made one side twice as loud): its side shows in arrival times (test_synth_spatial).
    for left, right in (energy(1.5 - 0.55), energy(1.5 + 0.55)):  # x = 50 px and x = 270 px
        assert 0.8 < left / right < 1.25
    centre, far = energy(1.5), energy(0.1)  # x = 160 px (nearest) and x = -120 px
    assert centre.sum() > 2 * far.sum()


def test_offscreen_sounds_annotated_only_in_audio(run):
    out, infos = run
    _, audio_rows = read_csv(out / "annotations" / "audio_annotations.csv")
    _, video_rows = read_csv(out / "annotations" / "video_annotations.csv")
    for info in infos:
        hidden = [v for v in info.scene.vehicles if v.sounding and not v.visible]
        assert hidden  # offscreen_fraction = 1
        events = [r for r in audio_rows if r["filename"] == info.clip_id and r["label"] == "offscreen"]
        assert events and all(r["class_id"] == "4" for r in events)
        boxed = {int(r["track_id"]) for r in video_rows if r["filename"] == info.clip_id}
        assert not boxed & {v.track_id for v in hidden}
    quiet = sc.make_scene(dataclasses.replace(CONFIG, offscreen_fraction=0.0), np.random.default_rng(1), False, False)
    assert all(r[2] != "offscreen" for r in ann.audio_rows(quiet, "q"))


def test_clip_without_events_gets_the_urbansas_minus_one_row(run):
    _, infos = run
    empty = dataclasses.replace(infos[0].scene, vehicles=())
    assert ann.audio_rows(empty, "e") == [("e", -1, "-1", 1, "-1.0", "-1.0")]
    rows = ann.video_rows(empty, "e")
    assert len(rows) == 1 and rows[0][-2] == -1


def test_stopped_vehicle_sounds_and_is_boxed_while_still():
    config = dataclasses.replace(CONFIG, seconds=10.0)
    scene = next(s for s in (sc.make_scene(config, np.random.default_rng(k), False, False) for k in range(20))
                 if s.summary()["stopped_sounding"])
    stopped = next(v for v in scene.vehicles if v.stopped_on_screen(320))
    still = [k for k in range(20) if np.interp(k / 2, stopped.times, stopped.speed) == 0.0]
    assert len(still) >= 2
    boxes = {r[0]: r[2:6] for r in ann.video_rows(scene, "s") if r[1] == stopped.track_id}
    assert all(k in boxes for k in still)
    assert len({boxes[k] for k in still}) == 1  # same box while idling
    events = [r for r in ann.audio_rows(scene, "s") if r[2] == stopped.kind]
    assert any(float(e[4]) < k / 2 < float(e[5]) for e in events for k in still[1:-1] or still)


def test_selection_rule_picks_frames_with_a_visible_sounding_vehicle(run):
    out, infos = run
    _, video_rows = read_csv(out / "annotations" / "video_annotations.csv")
    _, audio_rows = read_csv(out / "annotations" / "audio_annotations.csv")
    selected = 0
    for info in infos:
        events = [(float(r["start"]), float(r["end"])) for r in audio_rows if r["filename"] == info.clip_id
                  and r["label"] != "offscreen" and r["non_identifiable_vehicle_sound"] == "0"]
        for r in video_rows:
            if r["filename"] != info.clip_id or r["visibility"] != "1" or float(r["x"]) < 0:
                continue
            t = float(r["time"])
            if any(s < t < e for s, e in events):
                selected += 1
                x, y, w, h = (float(r[k]) for k in "xywh")
                assert x + w <= 320 and y + h <= 180
    assert selected >= 4


def test_night_is_darker_and_shake_moves_the_background(tmp_path):
    config = dataclasses.replace(CONFIG, seconds=1.0, night_fraction=1.0, shake_fraction=1.0)
    night_dir = tmp_path / "night"
    [night] = generate(night_dir, 1, SEED, config)
    day = sc.make_scene(CONFIG, np.random.default_rng([SEED, 0, 1]), False, False)
    assert night.scene.night and night.scene.shake.amplitude > 0
    assert decode(night.videos[2])[0].mean() < 0.5 * Renderer(day).frame(0.0).mean()
    _, rows = read_csv(night_dir / "annotations" / "video_annotations.csv")
    assert {r["night"] for r in rows} == {"1"}
    # Sky and building rows change between frames only with shake.
    shaken = Renderer(night.scene)
    steady = Renderer(dataclasses.replace(night.scene, shake=sc.Shake()))
    top = slice(0, 40)
    assert np.abs(shaken.frame(0.0)[top].astype(int) - shaken.frame(0.1)[top]).mean() > 1.0
    assert np.array_equal(steady.frame(0.0)[top], steady.frame(0.1)[top])


def test_shake_amplitude_scales_the_shake_and_nothing_else():
    """--shake-amplitude P: each shaken clip's amplitude is drawn in [P/2, P] % of the width by the same draw,
    so a seed's scene is the same with only its shake scaled (0.8, the default, is 0.4 to 0.8 %)."""
    scenes = {p: sc.make_scene(dataclasses.replace(CONFIG, shake_amplitude=p), np.random.default_rng([SEED, 0, 1]),
                               False, True) for p in (0.8, 2.0)}
    base, strong = scenes[0.8], scenes[2.0]
    assert 0.004 * CONFIG.width <= base.shake.amplitude <= 0.008 * CONFIG.width
    assert strong.shake.amplitude == pytest.approx(2.5 * base.shake.amplitude)
    assert (strong.shake.freqs, strong.shake.phases) == (base.shake.freqs, base.shake.phases)
    assert np.array(strong.shake.offset(0.3)) / 2.5 == pytest.approx(base.shake.offset(0.3))
    assert strong.summary() == base.summary() and strong.background_seed == base.background_seed
    for a, b in zip(strong.vehicles, base.vehicles, strict=True):
        np.testing.assert_array_equal(a.x, b.x)


def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys):
    for argv in (["--clips", "0"], ["--size", "640by360"], ["--size", "641x360"], ["--seconds", "-1"],
                 ["--silent-fraction", "1.5"], ["--quiet-fraction", "-0.1"], ["--ambience", "-1"],
                 ["--shake-amplitude", "0"], ["--shake-amplitude", "11"], ["--shake-amplitude", "nan"]):
        with pytest.raises(SystemExit) as e:
            main(["--out", str(tmp_path / "x"), "--clips", "1", "--seed", "0", *argv])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and "error" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "full"), "--clips", "1", "--seed", "0"])
    assert e.value.code == 2 and "--overwrite" in capsys.readouterr().err
    with pytest.raises(SynthError):
        SynthConfig(width=100, height=51)


def test_cli_size_is_width_by_height(tmp_path, monkeypatch):
    import training.synth.__main__ as cli

    made = []
    monkeypatch.setattr(cli, "generate", lambda out, clips, seed, config, **kw: made.append(config) or [])
    assert main(["--out", str(tmp_path / "x"), "--clips", "1", "--seed", "0", "--size", "320x180"]) == 0
    assert (made[0].width, made[0].height) == (320, 180)
    assert main(["--out", str(tmp_path / "x"), "--clips", "1", "--seed", "0", "--silent-fraction", "0.1",
                 "--busy-fraction", "0.2", "--quiet-fraction", "0.3", "--parked-fraction", "0.4", "--ambience", "0",
                 "--busy-loud", "1"]) == 0
    c = made[1]
    assert (c.silent_fraction, c.busy_fraction, c.quiet_fraction, c.parked_fraction, c.ambience) == (0.1, 0.2, 0.3, 0.4, 0)
    assert made[0].busy_loud == 2 and c.busy_loud == 1


def test_overwrite_replaces_only_generator_outputs(tmp_path):
    out = tmp_path / "o"
    config = dataclasses.replace(CONFIG, seconds=0.5)
    generate(out, 2, 0, config)
    (out / "notes.txt").write_text("mine")
    generate(out, 1, 0, config, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["synth0_0000.wav"]


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "training.synth", "--help"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, timeout=60)
    assert result.returncode == 0 and "--night-fraction" in result.stdout and "sounding" in result.stdout
    assert "--busy-loud" in result.stdout


# --- Scenes that only listening can solve (listening.py, ambience.py, cases) ---------------------

from training import cases as case_file  # noqa: E402
from training.synth.ambience import ambience  # noqa: E402
from training.synth.listening import QUIET_RADIUS, add_listening  # noqa: E402

LISTEN = dataclasses.replace(CONFIG, seconds=8.0, offscreen_fraction=0.0, light_fraction=0.0)


def _listening_scene(config, k):
    base = sc.make_scene(config, np.random.default_rng([5, k, 1]), False, False)
    return base, add_listening(base, config, np.random.default_rng([5, k, 3]))


def test_silent_movers_move_without_box_or_sound():
    config = dataclasses.replace(LISTEN, silent_fraction=1.0, busy_fraction=0.0, quiet_fraction=0.0)
    base, scene = next(p for p in (_listening_scene(config, k) for k in range(20))
                       if any(v.silent_mover for v in p[1].vehicles))
    movers = [v for v in scene.vehicles if v.silent_mover]
    assert {v.kind for v in movers} <= {"bicycle", "e-scooter", "car"}
    for v in movers:
        assert sc.on_screen_during(v, scene.layout, scene.seconds)
        inside = ~np.isnan(v.x) & (v.times >= 0) & (v.times <= scene.seconds)
        assert np.ptp(v.x[inside]) > 20  # it moves through the picture
        assert v not in scene.annotated()
    ids = {v.track_id for v in movers}
    assert not ids & {r[1] for r in ann.video_rows(scene, "m")}  # never boxed
    # No event and not one sample of sound: the audio and the events equal the scene's without them.
    assert ann.audio_rows(scene, "m") == ann.audio_rows(base, "m")
    assert np.array_equal(mix(scene, 16000, np.random.default_rng(0), MICS),
                          mix(base, 16000, np.random.default_rng(0), MICS))
    # ...but they are drawn: the picture changes where a mover is.
    v = movers[0]
    t = next(t for t in np.arange(0, 8, 0.25) if (b := sc.vehicle_box(scene, v, t)) and 10 < b[0] < 250)
    with_mover, without = Renderer(scene).frame(t), Renderer(dataclasses.replace(scene, vehicles=base.vehicles)).frame(t)
    assert (np.abs(with_mover.astype(int) - without)[_box_mask((180, 320), sc.vehicle_box(scene, v, t), 0)] > 0).any()


def test_busy_traffic_has_several_movers_and_at_most_two_loud():
    config = dataclasses.replace(LISTEN, silent_fraction=0.0, busy_fraction=1.0, quiet_fraction=0.0)
    for k in range(6):
        _, scene = _listening_scene(config, k)
        loud = [v for v in scene.vehicles if v.visible and v.sounding]
        movers = [v for v in scene.vehicles if v.visible and not v.parked]
        assert len(loud) <= 2 and len(movers) >= len(loud) + 1
        assert {r[1] for r in ann.video_rows(scene, "b")} - {-1} <= {v.track_id for v in loud}


def _on_screen(scene, v, t):
    box = sc.vehicle_box(scene, v, t)
    return box is not None and box[0] + box[2] > 0 and box[0] < scene.layout.width


def test_busy_loud_1_leaves_one_loud_vehicle_among_several_movers():
    two = dataclasses.replace(LISTEN, silent_fraction=0.0, busy_fraction=1.0, quiet_fraction=0.0)
    one = dataclasses.replace(two, busy_loud=1)
    had_two_loud = False
    for k in range(6):
        _, scene2 = _listening_scene(two, k)
        _, scene1 = _listening_scene(one, k)
        # The same draws: the same vehicles in the same places, only fewer engines.
        assert [(v.track_id, v.kind) for v in scene1.vehicles] == [(v.track_id, v.kind) for v in scene2.vehicles]
        assert all(np.array_equal(a.x, b.x, equal_nan=True) for a, b in zip(scene1.vehicles, scene2.vehicles))
        had_two_loud |= sum(v.visible and v.sounding for v in scene2.vehicles) == 2
        several = False
        for i in range(ann.frame_count(scene1.seconds, 2)):
            t = i / 2
            loud = [v for v in scene1.vehicles if v.visible and v.sounding and _on_screen(scene1, v, t)]
            movers = [v for v in scene1.vehicles if v.visible and not v.parked and _on_screen(scene1, v, t)]
            assert len(loud) <= 1
            several |= len(movers) >= 2
            boxed = {r[1] for r in ann.video_rows(scene1, "b") if r[0] == i}
            assert boxed <= {v.track_id for v in loud}  # only the loud vehicle is boxed
        assert several
    assert had_two_loud  # the default keeps two: the flag is what left one


def test_busy_loud_must_be_1_or_2(tmp_path, capsys):
    with pytest.raises(SynthError, match="busy_loud"):
        SynthConfig(busy_loud=3)
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "x"), "--clips", "1", "--seed", "0", "--busy-loud", "0"])
    assert e.value.code == 2 and "--busy-loud" in capsys.readouterr().err


def test_quiet_stretch_has_no_vehicle_event_and_only_ambience():
    config = dataclasses.replace(LISTEN, silent_fraction=0.0, busy_fraction=0.0, quiet_fraction=1.0)
    for k in range(5):
        base, scene = _listening_scene(config, k)
        start, end = scene.quiet
        assert 0.3 * 8.0 - 1e-6 <= end - start <= 0.5 * 8.0 + 1e-6
        events = [(float(r[4]), float(r[5])) for r in ann.audio_rows(scene, "q") if r[2] != "-1"]
        assert not any(s < end and e > start for s, e in events)  # no event touches the stretch
        for v in scene.vehicles:  # every remaining engine is far away during it
            if v.sounding:
                window = (v.times >= start) & (v.times <= end) & ~np.isnan(v.x)
                lateral = (v.x[window] - 160) / scene.layout.ppm(v.depth)
                assert np.all(np.hypot(lateral, v.depth) >= QUIET_RADIUS)
        labels = {c for _, t, c in ann.case_rows(scene, "q") if start <= t <= end}
        assert labels <= {"quiet", "parked-present", "silent-movers-present"}
    # The audio there is ambience and street noise only: far below a passing vehicle.
    audio = mix(scene, 16000, np.random.default_rng(0), MICS, ambience(8 * 16000, 16000, np.random.default_rng(1), MICS))
    a, b = int(start * 16000), int(end * 16000)
    assert np.sqrt(np.mean(audio[:, a:b] ** 2)) < 0.03


def test_ambience_levels_and_content():
    assert not ambience(16000, 16000, np.random.default_rng(0), MICS, 0.0).any()
    sound = ambience(10 * 16000, 16000, np.random.default_rng(0), MICS)
    assert sound.shape == (2, 160000) and sound.dtype == np.float32
    assert 0.002 < np.sqrt(np.mean(sound ** 2)) < 0.03 and np.abs(sound).max() < 0.2
    spectrum = np.abs(np.fft.rfft(sound[0])) ** 2
    freqs = np.fft.rfftfreq(160000, 1 / 16000)
    assert spectrum[(freqs > 2500) & (freqs < 7000)].sum() > 0.01 * spectrum.sum()  # birds
    assert spectrum[freqs < 400].sum() > 0.2 * spectrum.sum()  # wind


def test_listening_off_leaves_the_scene_as_drawn():
    config = dataclasses.replace(LISTEN, silent_fraction=0.0, busy_fraction=0.0, quiet_fraction=0.0,
                                 parked_fraction=1.0)
    base, scene = _listening_scene(config, 0)
    assert scene is base
    gone = dataclasses.replace(config, parked_fraction=0.0)
    assert not any(v.parked for v in _listening_scene(gone, 0)[1].vehicles)


def test_cases_file_written_with_every_time_and_round_trips(run, tmp_path):
    out, infos = run
    read = case_file.load(out)
    assert len(read) == len(infos) * 6  # 3 s at 2 fps
    assert set(read.values()) <= set(case_file.PRECEDENCE)
    # No shake or night in CONFIG: a time with a box (a sounding vehicle in the picture) has a
    # positive case, a time without one never has.
    _, rows = read_csv(out / "annotations" / "video_annotations.csv")
    boxed = {(r["filename"], float(r["time"])) for r in rows if r["time"] != "-1"}
    positive = {"stopped-sounding", "silent-movers-present", "parked-present", "moving-sounding"}
    for key, case in read.items():
        assert case in positive if key in boxed else case not in {"stopped-sounding", "moving-sounding"}
    assert any(key in boxed for key in read)
    pairs = [("a", 0.5, "quiet"), ("a", 1.0, "shake"), ("b", 0.0, "offscreen-only")]
    case_file.write(tmp_path / "c.json", pairs)
    assert case_file.read(tmp_path / "c.json") == {(c, t): k for c, t, k in pairs}
    assert case_file.case_of(case_file.read(tmp_path / "c.json"), "a", 1.0000001) == "shake"
    assert case_file.load(tmp_path) is None  # no annotations/cases.json: no cases


@pytest.mark.parametrize("text, message", [
    ("{", "not a readable JSON"),
    ('{"format": "other", "version": 1, "pairs": []}', "not a cases file"),
    ('{"format": "flowgrad-cases", "version": 2, "pairs": []}', "version 2"),
    ('{"format": "flowgrad-cases", "version": 1, "pairs": [{"clip": "a", "time": 1, "case": "loud"}]}', "loud"),
    ('{"format": "flowgrad-cases", "version": 1, "pairs": [{"clip": "a"}]}', "needs"),
    ('{"format": "flowgrad-cases", "version": 1, "pairs": [{"clip": "a", "time": 1, "case": "quiet"}, '
     '{"clip": "a", "time": 1.0, "case": "night"}]}', "twice"),
])
def test_bad_cases_files_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "c.json").write_text(text)
    with pytest.raises(case_file.CasesError, match=message) as e:
        case_file.read(tmp_path / "c.json")
    assert "\n" not in str(e.value)


def test_case_precedence_clip_level_first_then_most_specific():
    pick = case_file.pick
    assert pick({"night", "shake", "stopped-sounding"}) == "shake"
    assert pick({"night", "moving-sounding"}) == "night"
    assert pick({"moving-sounding", "stopped-sounding", "parked-present"}) == "stopped-sounding"
    assert pick({"moving-sounding", "silent-movers-present"}) == "silent-movers-present"
    assert pick({"moving-sounding", "parked-present"}) == "parked-present"
    assert pick({"offscreen-only", "parked-present"}) == "offscreen-only"
    assert pick({"moving-sounding"}) == "moving-sounding" and pick(set()) == "quiet"
    with pytest.raises(ValueError, match="unknown"):
        pick({"loud"})
