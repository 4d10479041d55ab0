"""Direction of arrival in the live system: --mics, the ring's channels, the pipeline's
"doa" stage, the message's doa field and the bad input around them (issue 19)."""
import json
import math
import socket
import threading

import numpy as np
import pytest

from flowgrad import engine as engines
from flowgrad.spatial.geometry import preset_geometry
from flowgrad.spatial.srp import SPEED_OF_SOUND
from flowgrad.spatial.with_doa import WithDoa
from helpers import moving_texture_video, pipeline_config, video_source, write_wav
from livestandins import write_float_wav
from realtime import cli, console
from realtime.assets import DEMO_CLIP
from realtime.audio_source import AudioSourceConfig, open_audio_source
from realtime.pipeline import Pipeline
from realtime.protocol import Heatmap, ProtocolError, decode, encode
from realtime.ring import AudioRing
from realtime.live import (LiveConfig, ModelSettings, PublishSettings, RunSettings, SourceSettings, SpatialSettings,
                           build_live)
from realtime.live.assembly import _microphone
from realtime.snapshot import direction_caption
from realtime.subscribe import subscribe

RATE_FILE, RATE = 48000, 16000
SPACING_M = 0.2
DELAY_SAMPLES = 10  # at 48 kHz: channel 0 (the left microphone) hears the noise 208 us after channel 1


class _Collector(list):
    def __call__(self, msg):
        self.append(msg)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return moving_texture_video(tmp_path_factory.mktemp("doa") / "texture.avi", frames=100)


def _delayed_noise_wav(path, seconds=4.0):
    """Band-limited noise on two channels, the left one late by DELAY_SAMPLES at 48 kHz."""
    n = round(seconds * RATE_FILE)
    noise = np.random.default_rng(19).standard_normal(n + DELAY_SAMPLES)
    noise = 0.25 * noise / np.abs(noise).max()
    left, right = noise[:n], noise[DELAY_SAMPLES:]  # right leads: the source is to the right
    write_wav(path, np.stack([left, right]), RATE_FILE)
    return path


def _run_doa_pipeline(clip, sound, fuse=True, seconds=3.0):
    geometry = preset_geometry(f"stereo:{SPACING_M}")
    engine = engines.open("flow_only")
    ring = AudioRing(RATE, 5.0, channels=geometry.channels)
    audio = open_audio_source(AudioSourceConfig(str(sound), RATE), ring)
    out = _Collector()
    pipe = Pipeline(pipeline_config(fuse_doa=fuse), video_source(clip), engine, out, audio=audio, ring=ring,
                    doa=WithDoa(geometry, engine.map_size, RATE))
    stats = pipe.run(duration=seconds)
    return [m for m in out if isinstance(m, Heatmap)], stats


def test_a_known_delay_through_the_live_pipeline_publishes_its_analytic_azimuth(clip, tmp_path):
    sound = _delayed_noise_wav(tmp_path / "pair.wav")
    maps, stats = _run_doa_pipeline(clip, sound)
    expected = math.degrees(math.asin(SPEED_OF_SOUND * DELAY_SAMPLES / RATE_FILE / SPACING_M))  # 20.9 deg
    found = [m.doa for m in maps if m.doa is not None]
    assert len(found) >= 3, stats
    azimuths = np.array([d["azimuth_deg"] for d in found])
    assert np.all(np.abs(azimuths - expected) < 3.0), (expected, azimuths)
    assert all(d["elevation_deg"] is None and 0.3 < d["confidence"] <= 1 for d in found)
    assert all(m.model == "flow_only+doa" for m in maps)
    assert all(m.hfov_deg == 90.0 for m in maps if m.doa is not None)
    # The fused map is brightest on the columns the direction projects to (right of centre).
    fused = [m.heatmap for m in maps if m.doa is not None]
    column = np.mean([h.sum(axis=0).argmax() / h.shape[1] for h in fused])
    assert column > 0.6
    assert stats["stage_ms"]["doa"] is not None and stats["doa"]["azimuth_deg"] == pytest.approx(expected, abs=3)
    assert "azimuth +2" in console.status_line(stats)


def test_the_published_score_is_the_fused_one_and_quiet_follows_it(clip, tmp_path):
    """flow_only's score is 1 ("no ears"); under +doa the message carries min(1, P(heard)):
    loud for one clear source, quiet for digital silence (before, 1 and loud for both)."""
    heard, _ = _run_doa_pipeline(clip, _delayed_noise_wav(tmp_path / "pair.wav"), seconds=2.5)
    silent_wav = write_wav(tmp_path / "zeros.wav", np.zeros((2, RATE_FILE * 4)), RATE_FILE) or tmp_path / "zeros.wav"
    silent, stats = _run_doa_pipeline(clip, silent_wav, seconds=2.5)
    heard, silent = [m for m in heard if m.doa is not None], [m for m in silent if m.doa is not None]
    assert heard and silent, stats
    assert all(m.score > 0.5 and m.quiet is False for m in heard)
    assert all(m.score < 0.5 and m.quiet is True for m in silent)
    assert stats["quiet"] is True


def test_mics_alone_publishes_the_direction_and_leaves_the_map_unfused(clip, tmp_path):
    sound = _delayed_noise_wav(tmp_path / "pair.wav")
    maps, _ = _run_doa_pipeline(clip, sound, fuse=False, seconds=2.5)
    assert any(m.doa is not None for m in maps) and all(m.model == "flow_only" for m in maps)


def test_the_doa_field_goes_over_the_wire_and_bad_ones_are_refused():
    msg = Heatmap(stream="cam", seq=1, capture_time=1.0, model="m", heatmap=np.zeros((2, 3), np.float32),
                  frame_size=(3, 2), doa={"azimuth_deg": -12.5, "elevation_deg": None, "confidence": 0.75})
    assert decode(encode(msg)).doa == {"azimuth_deg": -12.5, "elevation_deg": None, "confidence": 0.75}
    assert decode(encode(Heatmap(**{**msg.__dict__, "hfov_deg": 70}))).hfov_deg == 70.0
    for fov in (0, 180, True):
        with pytest.raises(ValueError, match="hfov_deg"):
            encode(Heatmap(**{**msg.__dict__, "hfov_deg": fov}))
    assert decode(encode(Heatmap(**{**msg.__dict__, "doa": None}))).doa is None
    for bad in ({"azimuth_deg": 200.0, "elevation_deg": None, "confidence": 0.5},
                {"azimuth_deg": 1.0, "elevation_deg": None, "confidence": 1.5},
                {"azimuth_deg": 1.0, "confidence": 0.5},
                {"azimuth_deg": True, "elevation_deg": None, "confidence": 0.5},
                "left"):
        with pytest.raises((ValueError, ProtocolError), match="doa"):
            encode(Heatmap(**{**msg.__dict__, "doa": bad}))


def _main(argv, capsys):
    """run_live's exit status and its stderr lines for ``argv``."""
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture
def mono_wav(tmp_path):
    write_wav(tmp_path / "mono.wav", np.zeros((1, 16000)), 16000)
    return tmp_path / "mono.wav"


@pytest.fixture
def coincident(tmp_path):
    path = tmp_path / "array.json"
    path.write_text(json.dumps({"mic_positions_m": [[0, 0, 0], [0, 0, 0]], "hfov_deg": 90}))
    return path


@pytest.mark.parametrize("args, needles", [
    (["--model", "flow_only+doa"], ["+doa", "--mics"]),
    (["--mics", "stereo:0.2", "--channels", "4"], ["--channels 4", "2 microphones"]),
    (["--mics", "square:0.1"], ["has 2 channels", "4 microphones"]),  # the demo track is stereo
    (["--mics", "MONO"], ["mono.wav has 1 channel", "2 microphones"]),
    (["--mics", "stereo:0"], ["--mics stereo:0"]),
    (["--mics", "nowhere.json"], ["nowhere.json"]),
    (["--mics", "COINCIDENT"], ["coincide"]),
    (["--mics", "stereo:0.2", "--hfov", "200"], ["hfov_deg", "200"]),
    (["--hfov", "60"], ["--hfov", "--mics"]),
    (["--model", "flow_only+nomemory", "--motion-memory", "on"], ["--motion-memory", "off"]),
    (["--model", "flow_only+doa+doa", "--mics", "stereo:0.2"], ["+doa"]),
])
def test_bad_spatial_input_is_one_line_and_exit_status_2(args, needles, capsys, mono_wav, coincident):
    args = [str(coincident) if a == "COINCIDENT" else a for a in args]
    audio = ["--audio", str(mono_wav)] if "MONO" in args else []
    args = ["stereo:0.2" if a == "MONO" else a for a in args]
    code, lines = _main(["--camera", str(DEMO_CLIP), *audio, "--model", "flow_only", "--quiet", "--duration", "1",
                         "--publish", "tcp://127.0.0.1:*", *args], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert all(n in lines[0] for n in needles), lines


def test_model_spec_memory_suffix_sets_the_motion_memory_and_agrees_with_the_option():
    parse = cli.build_parser().parse_args
    base = ["--camera", str(DEMO_CLIP), "--model"]
    assert cli.to_config(parse([*base, "flow_only+memory"])).flow.motion_memory is True
    assert cli.to_config(parse([*base, "flow_only+nomemory", "--motion-memory", "off"])).flow.motion_memory is False
    config = cli.to_config(parse([*base, "flow_only+doa", "--mics", "stereo:0.3", "--hfov", "70"]))
    assert config.model.spec == "flow_only" and config.spatial.fuse and config.spatial.geometry.hfov_deg == 70
    assert config.spatial.geometry.channels == 2 and config.flow.motion_memory is None


def test_an_export_that_wants_doa_without_mics_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr(engines.Engine, "wants_doa", True)
    code, lines = _main(["--camera", str(DEMO_CLIP), "--model", "flow_only", "--quiet", "--duration", "1",
                         "--publish", "tcp://127.0.0.1:*"], capsys)
    assert code == 2 and len(lines) == 1 and "--mics" in lines[0], lines


def test_an_export_that_wants_doa_fuses_with_mics_even_without_the_suffix(monkeypatch):
    monkeypatch.setattr(engines.Engine, "wants_doa", True)
    config = LiveConfig(sources=(SourceSettings(str(DEMO_CLIP)),), model=ModelSettings("flow_only"),
                        publishing=PublishSettings("tcp://127.0.0.1:*"), run=RunSettings(duration=1.0, quiet=True),
                        spatial=SpatialSettings(preset_geometry("stereo:0.2")))
    system = build_live(config)
    system.run()
    assert system.pipelines[0].config.fuse_doa and system.pipelines[0].ring.channels == 2


def test_the_demo_with_a_stereo_pair_publishes_directions_a_subscriber_receives(capsys, tmp_path):
    """run_live --demo --mics stereo:0.2 --model flow_only+doa: the demo track is stereo; maps
    reach realtime.subscribe with their direction and field of view, the status line shows it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    got = []

    def listen():  # run_live's signal handlers need the main thread: the subscriber takes this one
        messages = subscribe(address, kinds=("heatmap",), timeout_s=30)
        try:
            for msg in messages:
                got.append(msg)
                if len(got) >= 15:
                    return
        finally:
            messages.close()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    code, lines = _main(["--demo", "--mics", "stereo:0.2", "--model", "flow_only+doa", "--duration", "4",
                         "--publish", address, "--snapshot", str(tmp_path / "s.png")], capsys)
    listener.join(30)
    assert code == 0, lines
    done = [line for line in lines if line.startswith("run_live: done:")][0]
    assert "azimuth" in done and "conf" in done
    assert "direction of arrival from 2 microphones, hfov 90 deg (fused into the maps)" in lines[0]
    directed = [m for m in got if m.doa is not None]
    assert directed and all(m.hfov_deg == 90.0 and m.model == "flow_only+doa" for m in directed)
    assert all(-45 <= m.doa["azimuth_deg"] <= 45 and 0 <= m.doa["confidence"] <= 1 for m in directed)


def test_nan_and_inf_in_the_array_audio_never_reach_the_finder(clip, tmp_path):
    """A stereo file with a second of NaN and one of inf: the source plays them as silence and
    says so in the status; every published direction is finite and the maps keep coming."""
    x = np.random.default_rng(3).uniform(-0.3, 0.3, (3 * RATE, 2))
    x[RATE // 2: RATE] = np.nan
    x[RATE: 3 * RATE // 2, 1] = np.inf
    sound = write_float_wav(tmp_path / "hostile.wav", x, RATE)
    geometry = preset_geometry("stereo:0.2")
    engine = engines.open("flow_only")
    ring = AudioRing(RATE, 5.0, channels=2)
    out = _Collector()
    pipe = Pipeline(pipeline_config(), video_source(clip), engine, out,
                    audio=open_audio_source(AudioSourceConfig(str(sound), RATE), ring), ring=ring,
                    doa=WithDoa(geometry, engine.map_size, RATE))
    pipe.run(duration=3.0)
    maps = [m for m in out if isinstance(m, Heatmap)]
    directed = [m.doa for m in maps if m.doa is not None]
    assert len(directed) >= 3 and all(math.isfinite(d["azimuth_deg"]) for d in directed)
    assert all(np.isfinite(m.heatmap).all() for m in maps)
    problem = [m for m in out if not isinstance(m, Heatmap)][-1].source["audio_problem"]
    assert "invalid samples (NaN/inf) replaced by silence" in problem


def test_a_microphone_captures_one_channel_per_microphone_unless_told():
    """--mics without --channels: the microphone is opened with the array's channel count (a
    file keeps its own; its count is checked when it opens)."""
    array = SpatialSettings(preset_geometry("square:0.1"))
    config = LiveConfig(sources=(SourceSettings("0", "mic"), SourceSettings(str(DEMO_CLIP), "video")), spatial=array)
    mic, video = (source.audio_source(16000, config.spatial.channels) for source in config.sources)
    assert mic.channels == 4 and video.channels is None
    assert SourceSettings("0", "mic").audio_source(16000).channels is None  # no array: the device's first two
    assert _microphone(config.sources[0], 16000, 4) == ("mic", None)


def test_the_snapshot_caption_says_the_direction_heard():
    assert direction_caption(None) == []
    assert direction_caption({"azimuth_deg": -7.25, "elevation_deg": None, "confidence": 0.5}) == [
        "direction heard: azimuth -7.2 deg, confidence 0.50"]
    assert direction_caption({"azimuth_deg": 3.0, "elevation_deg": 10.0, "confidence": 1.0}) == [
        "direction heard: azimuth +3.0 deg, elevation +10.0 deg, confidence 1.00"]
