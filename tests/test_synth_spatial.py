"""Spatial sound of training.synth (version 1.2), checked against independent references:
GCC-PHAT and the direction finder on the rendered audio against the annotated directions,
the pinhole column of an annotated azimuth against the box in the video annotations."""
import csv
import dataclasses
import json
import math
import wave

import av
import numpy as np
import pytest

from flowgrad.spatial.doa import DirectionFinder
from flowgrad.spatial.gcc import gcc_phat
from flowgrad.spatial.geometry import column_of_azimuth, load_geometry
from flowgrad.spatial.srp import SPEED_OF_SOUND
from training.synth import SynthConfig, generate
from training.synth import annotations as ann
from training.synth import camera
from training.synth import scene as sc
from training.synth.__main__ import main
from training.synth.sound import mix

RATE = 16000
CONFIG = SynthConfig(width=320, height=180, seconds=3.0, fps=8, audio_rate=RATE, night_fraction=0.0,
                     shake_fraction=0.0, offscreen_fraction=0.0, light_fraction=0.0, silent_fraction=0.0,
                     busy_fraction=0.0, quiet_fraction=0.0, parked_fraction=0.0, ambience=0.0)


def one_car_scene(px_per_s: float = 40.0, depth: float = sc.LANE_DEPTHS[1]):
    """A scene whose only vehicle is a sounding car crossing left to right, x = 160 px at 1.5 s."""
    base = sc.make_scene(CONFIG, np.random.default_rng(0), False, False)
    layout = base.layout
    times = np.arange(-20, 4.0, 1 / sc.SIM_RATE)
    x = 160 + px_per_s * (times - 1.5)
    car = sc.Vehicle(1, "car", depth, 1, 4.4 * layout.ppm(depth), 1.5 * layout.ppm(depth), (0, 0, 200), times, x,
                     np.full(times.shape, px_per_s / layout.ppm(depth)), sounding=True, visible=True)
    return dataclasses.replace(base, vehicles=(car,), pedestrians=(), trees=(), light=None)


def annotated(scene, t):
    [entry] = [e for e in ann.azimuth_entries(scene) if e["time"] == t]
    [source] = entry["sources"]
    return source


def unit(azimuth_deg, elevation_deg):
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.sin(az) * math.cos(el), -math.sin(el), math.cos(az) * math.cos(el)])


def test_gcc_phat_measures_the_delay_the_annotated_azimuth_predicts():
    scene = one_car_scene()
    mics = np.array(CONFIG.mic_positions_m)
    audio = mix(scene, RATE, np.random.default_rng(1), mics).astype(np.float64)
    # The same filter on both channels leaves their delay as it is. It keeps a car's voice band
    # (300-2000 Hz): below it the street's diffuse field is coherent at lag 0, and above it PHAT
    # would weigh the microphones' own noise as much as the car.
    spectrum = np.fft.rfft(audio, axis=1)
    freqs = np.fft.rfftfreq(audio.shape[1], 1 / RATE)
    spectrum[:, (freqs < 300) | (freqs > 2000)] = 0
    audio = np.fft.irfft(spectrum, audio.shape[1], axis=1)
    for t in (1.0, 1.5, 2.0, 2.5):
        source = annotated(scene, t)
        assert source["onscreen"] and source["class"] == "car"
        # Far field: microphone 1 hears a plane wave from u earlier by (m1 - m0) . u / c.
        predicted = -float((mics[1] - mics[0]) @ unit(source["azimuth_deg"], source["elevation_deg"])) / SPEED_OF_SOUND
        window = audio[:, round((t - 0.1) * RATE):round((t + 0.1) * RATE)] * np.hanning(round(0.2 * RATE))
        measured, peak = gcc_phat(window[0], window[1], RATE, max_delay_s=0.2 / SPEED_OF_SOUND)
        assert abs(measured - predicted) * RATE < 1.0, (t, measured * RATE, predicted * RATE)
        assert peak > 0.3
    # The sides differ: the car is left of centre at 1.0 s and right of it at 2.0 s.
    assert annotated(scene, 1.0)["azimuth_deg"] < -3 and annotated(scene, 2.0)["azimuth_deg"] > 3


def test_the_direction_finder_hears_the_annotated_azimuth_within_3_degrees(tmp_path):
    scene = one_car_scene(px_per_s=30.0, depth=sc.LANE_DEPTHS[0])
    (tmp_path / "array.json").write_text(ann.array_geometry(CONFIG).to_json())
    geometry = load_geometry(tmp_path / "array.json")
    audio = mix(scene, RATE, np.random.default_rng(2), geometry.mic_positions_m).astype(np.float64)
    # The same seed without the car: the background alone (it is drawn first).
    background = mix(dataclasses.replace(scene, vehicles=()), RATE, np.random.default_rng(2),
                     geometry.mic_positions_m).astype(np.float64)
    finder = DirectionFinder(geometry, (CONFIG.height, CONFIG.width), RATE)
    for t in (1.0, 1.5, 2.0):
        span = slice(round((t - 0.25) * RATE), round((t + 0.25) * RATE))
        snr_db = 10 * math.log10(np.mean((audio[:, span] - background[:, span]) ** 2) / np.mean(background[:, span] ** 2))
        assert snr_db >= 20
        assert abs(finder(audio[:, span]).azimuth_deg - annotated(scene, t)["azimuth_deg"]) < 3.0


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def wav_channels(path):
    with wave.open(str(path)) as f:
        return f.getnchannels()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("spatial") / "out"
    config = dataclasses.replace(CONFIG, offscreen_fraction=1.0, seconds=4.0)
    return out, generate(out, 2, 11, config)


def test_array_json_loads_and_its_field_of_view_puts_each_azimuth_on_its_box(dataset):
    out, infos = dataset
    geometry = load_geometry(out / "annotations" / "array.json")
    assert geometry.mic_positions_m.tolist() == [[-0.1, 0.0, 0.0], [0.1, 0.0, 0.0]]
    assert geometry.hfov_deg == pytest.approx(camera.hfov_deg(sc.Layout(320, 180)))
    azimuths = json.loads((out / "annotations" / "azimuths.json").read_text())
    assert azimuths["version"] == 1 and set(azimuths["clips"]) == {i.clip_id for i in infos}
    assert json.loads((out / "synth.json").read_text())["version"] == "1.2"
    rows = [r for r in read_rows(out / "annotations" / "video_annotations.csv") if r["time"] != "-1"]
    compared = 0
    for info in infos:
        entries = azimuths["clips"][info.clip_id]
        assert [e["time"] for e in entries] == [k / 2 for k in range(8)]
        assert any(not s["onscreen"] for e in entries for s in e["sources"])  # the hidden street is heard
        for entry in entries:
            boxes = [r for r in rows if r["filename"] == info.clip_id and float(r["time"]) == entry["time"]]
            onscreen = [s for s in entry["sources"] if s["onscreen"]]
            assert len(onscreen) == len(boxes)  # every sounding vehicle in the picture, and only those
            columns = [(column_of_azimuth(s["azimuth_deg"], 320, geometry.hfov_deg), s["class"]) for s in onscreen]
            for box in (r for r in boxes if r["visibility"] == "1"):  # a clipped box's centre is not the vehicle's
                centre = float(box["x"]) + float(box["w"]) / 2
                assert any(abs(column - centre) < 2.0 and kind == box["label"] for column, kind in columns), \
                    (entry, box)
                compared += 1
    assert compared >= 2
    assert wav_channels(infos[0].audio) == 2


def test_square_array_writes_4_channel_wav_and_a_stereo_aac_track(tmp_path):
    out = tmp_path / "sq"
    assert main(["--out", str(out), "--clips", "1", "--seed", "0", "--size", "128x72", "--seconds", "1",
                 "--audio-rate", "16000", "--fps", "8", "--array", "square:0.2"]) == 0
    [wav] = (out / "audio").iterdir()
    assert wav_channels(wav) == 4
    assert load_geometry(out / "annotations" / "array.json").channels == 4
    with av.open(str(out / "video" / "video_8fps" / f"{wav.stem}.mp4")) as container:
        assert container.streams.audio[0].channels == 2


def test_an_array_file_gives_its_microphones_and_the_synth_camera_its_field_of_view(tmp_path):
    (tmp_path / "mics.json").write_text('{"mic_positions_m": [[-0.2, 0, 0], [0, 0, 0], [0.2, 0, 0]], "hfov_deg": 60}')
    out = tmp_path / "f"
    assert main(["--out", str(out), "--clips", "1", "--seed", "0", "--size", "128x72", "--seconds", "1",
                 "--audio-rate", "16000", "--fps", "8", "--array", str(tmp_path / "mics.json")]) == 0
    geometry = load_geometry(out / "annotations" / "array.json")
    assert geometry.channels == 3 and geometry.hfov_deg == pytest.approx(camera.hfov_deg(sc.Layout(128, 72)))
    assert wav_channels(next((out / "audio").iterdir())) == 3


@pytest.mark.parametrize("spec, says", [
    ("square:x", "spacing in metres"),
    ("stereo:-1", "spacing in metres"),
    ("missing.json", "cannot be read"),
    ('{"mic_positions_m": [[0, 0, 0]]}', "at least 2 microphones"),
    ('{"mic_positions_m": [[0, 0, 0], [0, 0, 0]]}', "coincide"),
    ('{"mic_positions_m": [[0, 0, 0], [NaN, 0, 0]]}', "non-finite"),
    ("{", "not JSON"),
])
def test_a_bad_array_is_one_line_and_exit_2(tmp_path, capsys, spec, says):
    if spec.startswith("{"):
        (tmp_path / "bad.json").write_text(spec)
        spec = str(tmp_path / "bad.json")
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "x"), "--clips", "1", "--seed", "0", "--array", spec])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "--array" in err and says in err, err
    assert not (tmp_path / "x").exists()  # nothing written
