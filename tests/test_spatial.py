"""Spatial sound: microphone geometry, GCC-PHAT, SRP-PHAT (against pyroomacoustics), direction
likelihoods through the pinhole model, fusion with a map, and arrays of synthetic sound."""
import json
import math

import numpy as np
import pytest
import torch

from flowgrad.errors import InputError
from flowgrad.spatial.doa import DirectionFinder
from flowgrad.spatial.fusion import fuse, sharpness
from flowgrad.spatial.gcc import gcc_phat
from flowgrad.spatial.geometry import (ArrayGeometry, ChannelCountError, GeometryError, check_channels,
                                       column_of_azimuth, load_geometry, parse_mics, pixel_directions,
                                       preset_geometry, row_of_direction)
from flowgrad.spatial.srp import SrpPhat, pyroomacoustics_srp
from training.synth.spatial import (azimuth_elevation_deg, diffuse_noise, linear_path, render_array,
                                    render_moving_source)

RATE = 48000


def delayed(x: np.ndarray, samples: float) -> np.ndarray:
    """``x`` delayed by a (fractional) number of samples by a phase shift of its whole
    spectrum: the independent reference for the fractional-delay tests."""
    n = len(x)
    spectrum = np.fft.rfft(x) * np.exp(-2j * np.pi * np.fft.rfftfreq(n) * samples)
    return np.fft.irfft(spectrum, n)


def noise_burst(n: int, seed: int = 0) -> np.ndarray:
    """``n`` samples of silence with a Hann-shaped noise burst in the middle third."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    third = n // 3
    x[third : 2 * third] = rng.standard_normal(third) * np.hanning(third)
    return x


# ------------------------------------------------------------------ geometry

def test_presets_are_centred_on_the_camera():
    stereo = preset_geometry("stereo:0.2")
    np.testing.assert_array_equal(stereo.mic_positions_m, [[-0.1, 0, 0], [0.1, 0, 0]])
    assert stereo.hfov_deg == 90.0 and stereo.channels == 2 and not stereo.has_vertical_extent
    square = parse_mics("square:0.1", hfov_deg=60)
    assert square.channels == 4 and square.has_vertical_extent and square.hfov_deg == 60
    np.testing.assert_allclose(square.mic_positions_m.mean(axis=0), 0)


def test_a_mics_file_round_trips_and_hfov_overrides_it(tmp_path):
    path = tmp_path / "array.json"
    geometry = ArrayGeometry([[-0.3, 0.0, 0.05], [0.3, 0.0, 0.05], [0.0, -0.2, 0.05]], 75.0)
    path.write_text(geometry.to_json())
    loaded = parse_mics(str(path))
    np.testing.assert_array_equal(loaded.mic_positions_m, geometry.mic_positions_m)
    assert loaded.hfov_deg == 75.0 and load_geometry(path, hfov_deg=100).hfov_deg == 100
    path.write_text(json.dumps({"mic_positions_m": [[-0.1, 0, 0], [0.1, 0, 0]]}))
    assert parse_mics(str(path)).hfov_deg == 90.0


@pytest.mark.parametrize("content, message", [
    ({"mic_positions_m": [[0, 0, 0]]}, "at least 2 microphones, got 1"),
    ({"mic_positions_m": []}, r"list of \[x, y, z\]"),
    ({"mic_positions_m": [[0.1, 0, 0], [0.1, 0, 0.0005]]}, "microphones 0 and 1 coincide"),
    ({"mic_positions_m": [[0, 0, 0], [float("nan"), 0, 0]]}, "microphone 1 has a non-finite position"),
    ({"mic_positions_m": [[0, 0, 0], [1e400, 0, 0]]}, "non-finite"),
    ({"mic_positions_m": [[0, 0, 0], [0, 0.2, 0]]}, "no left-right"),
    ({"mic_positions_m": [[0, 0], [1, 0]]}, r"got shape \(2, 2\)"),
    ({"mic_positions_m": [["a", 0, 0], [1, 0, 0]]}, r"list of \[x, y, z\] numbers"),
    ({"mic_positions_m": [[-0.1, 0, 0], [0.1, 0, 0]], "hfov_deg": 180}, r"hfov_deg must be .* \(0, 180\)"),
    ({"mic_positions_m": [[-0.1, 0, 0], [0.1, 0, 0]], "hfov_deg": "wide"}, "hfov_deg must be"),
    ([1, 2], "expected"),
])
def test_bad_geometry_files_are_one_line_input_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))  # NaN and 1e400 are written as JSON's NaN / Infinity
    with pytest.raises(GeometryError, match=message) as e:
        parse_mics(str(path))
    assert isinstance(e.value, InputError) and "\n" not in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize("spec, message", [
    ("stereo:0", "a preset stereo:D, square:D"),
    ("stereo:abc", "e.g. stereo:0.2"),
    ("/nonexistent/array.json", "cannot be read"),
])
def test_bad_mics_options_are_one_line_input_errors(spec, message):
    with pytest.raises(GeometryError, match=message):
        parse_mics(spec)


def test_not_json_is_one_line(tmp_path):
    (tmp_path / "a.json").write_text("{mic")
    with pytest.raises(GeometryError, match="not JSON"):
        parse_mics(str(tmp_path / "a.json"))
    (tmp_path / "b.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(GeometryError, match="not JSON"):
        parse_mics(str(tmp_path / "b.json"))


def test_huge_geometry_files_and_arrays_are_refused_before_they_cost_memory(tmp_path):
    path = tmp_path / "huge.json"
    path.write_text(json.dumps({"mic_positions_m": [[i * 0.01, 0, 0] for i in range(80000)]}))
    with pytest.raises(GeometryError, match="larger than 1 MiB"):
        parse_mics(str(path))
    with pytest.raises(GeometryError, match="at most 64 microphones, got 5000"):
        ArrayGeometry([[i * 0.01, 0, 0] for i in range(5000)])  # 5000 x 5000 distances otherwise


def test_a_channel_count_other_than_the_microphones_names_both_counts():
    with pytest.raises(ChannelCountError, match="the audio has 1 channel but --mics has 2 microphones"):
        check_channels(preset_geometry("stereo:0.2").channels, 1)
    check_channels(4, 4)


# ------------------------------------------------------------------ pinhole

def test_a_known_azimuth_lands_on_the_pinhole_column():
    # hfov 90 degrees: the focal length is half the width, so tan(azimuth) = (u - W/2) / (W/2).
    assert column_of_azimuth(math.degrees(math.atan(0.5)), 640, 90.0) == pytest.approx(480)
    assert column_of_azimuth(-45.0, 640, 90.0) == pytest.approx(0)
    assert column_of_azimuth(0.0, 641, 60.0) == pytest.approx(320.5)
    # The rays through column centres, back to columns.
    rays = pixel_directions(np.array([89.5]), np.arange(0, 320, 37), (180, 320), 70.0)[0]
    azimuth, elevation = azimuth_elevation_deg(rays)
    np.testing.assert_allclose(column_of_azimuth(azimuth, 320, 70.0), np.arange(0, 320, 37) + 0.5)
    np.testing.assert_allclose(elevation, 0, atol=1e-12)
    # A ray above the centre row, off axis: its row again.
    ray = pixel_directions(np.array([30.0]), np.array([250.0]), (180, 320), 70.0)[0, 0]
    az, el = azimuth_elevation_deg(ray)
    assert row_of_direction(az, el, (180, 320), 70.0) == pytest.approx(30.5)


# ------------------------------------------------------------------ GCC-PHAT

@pytest.mark.parametrize("delay", [7.0, -12.0, 3.4, -0.6, 25.75])
def test_gcc_phat_recovers_integer_and_fractional_delays_of_a_noise_burst(delay):
    x = noise_burst(4800)
    y = delayed(x, delay)
    found, peak = gcc_phat(x, y, RATE, max_delay_s=40 / RATE)
    assert abs(found * RATE - delay) < 1.0  # the bound
    assert abs(found * RATE - delay) < 0.1  # what it actually achieves
    assert 0.8 < peak <= 1.0 + 1e-9
    # And with the signals the other way round, the opposite sign.
    assert gcc_phat(y, x, RATE, max_delay_s=40 / RATE)[0] * RATE == pytest.approx(-delay, abs=0.1)


def test_gcc_phat_searches_only_the_lags_the_pair_allows():
    rng = np.random.default_rng(1)
    x = noise_burst(4800, seed=2)
    y = delayed(x, 3) + 2.0 * delayed(rng.standard_normal(4800) * (x != 0), 0)  # strong, but...
    y += 3.0 * delayed(x, 100)  # ...the strongest copy is 100 samples late: beyond a 20 cm pair
    assert gcc_phat(x, y, RATE)[0] * RATE == pytest.approx(100, abs=0.5)
    assert gcc_phat(x, y, RATE, max_delay_s=0.2 / 343)[0] * RATE == pytest.approx(3, abs=0.5)


def test_gcc_phat_refuses_empty_or_multichannel_input():
    with pytest.raises(ValueError, match="1-D"):
        gcc_phat(np.zeros((2, 10)), np.zeros(10), RATE)
    with pytest.raises(ValueError, match="non-empty"):
        gcc_phat(np.zeros(0), np.zeros(10), RATE)


# ------------------------------------------------------------------ SRP-PHAT

@pytest.mark.parametrize("spec", ["stereo:0.2", "square:0.1"])
def test_our_srp_phat_equals_pyroomacoustics(spec):
    geometry = preset_geometry(spec)
    directions = pixel_directions(np.array([20.0, 90.0]), np.arange(0, 320, 9), (180, 320), 90.0).reshape(-1, 3)
    rng = np.random.default_rng(3)
    source = rng.standard_normal(RATE // 2)
    signals = np.stack([delayed(source, 2 * m) for m in range(geometry.channels)]) + 0.3 * rng.standard_normal(
        (geometry.channels, RATE // 2))
    ours = SrpPhat(geometry.mic_positions_m, directions, RATE)(signals)
    theirs = pyroomacoustics_srp(signals, geometry.mic_positions_m, directions, RATE)
    assert np.ptp(theirs) > 0.1  # a response that varies with direction, not a constant
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


# ------------------------------------------------------------------ direction finding

def at_direction(azimuth_deg: float, elevation_deg: float = 0.0, distance_m: float = 12.0) -> np.ndarray:
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return distance_m * np.array([math.sin(az) * math.cos(el), -math.sin(el), math.cos(az) * math.cos(el)])


def heard(geometry, path, seconds: float, snr_db: float, seed: int) -> np.ndarray:
    """A noise source on ``path`` as the array hears it, with diffuse noise ``snr_db`` below it."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    direct = render_moving_source(rng.standard_normal(n), RATE, path, geometry.mic_positions_m)
    rms = math.sqrt(np.mean(direct[:, n // 4 :] ** 2)) * 10 ** (-snr_db / 20)
    return direct + diffuse_noise(n, RATE, geometry.mic_positions_m, rms, rng)


@pytest.mark.parametrize("spec", ["stereo:0.2", "square:0.1"])
@pytest.mark.parametrize("azimuth", [-38.0, -7.0, 0.0, 16.0, 41.0])
def test_the_azimuth_of_a_rendered_source_is_within_3_degrees_at_20_db(spec, azimuth):
    geometry = preset_geometry(spec)
    finder = DirectionFinder(geometry, (180, 320), RATE)
    elevation = 6.0 if geometry.has_vertical_extent else 0.0
    signals = heard(geometry, at_direction(azimuth, elevation), 0.75, 20.0, seed=int(azimuth) + 50)
    estimate = finder(signals[:, RATE // 4 :])  # 0.5 s once the sound has reached the array
    assert abs(estimate.azimuth_deg - azimuth) < 3.0
    if geometry.has_vertical_extent:
        assert abs(estimate.elevation_deg - elevation) < 3.0
        assert estimate.likelihood.shape == (180, 320)
    else:
        assert estimate.elevation_deg is None and estimate.likelihood.shape == (320,)
    assert estimate.coherence > 0.5 and estimate.sharpness > 0.1


def test_the_likelihood_peaks_on_the_pinhole_column_of_the_source():
    geometry = preset_geometry("stereo:0.3")
    column = 240  # its centre, 240.5, is at atan(80.5 / 160) with hfov 90 and W 320
    azimuth = math.degrees(math.atan((column + 0.5 - 160) / 160))
    finder = DirectionFinder(geometry, (180, 320), RATE)
    estimate = finder(heard(geometry, at_direction(azimuth), 0.75, 30.0, seed=9)[:, RATE // 4 :])
    assert abs(int(np.argmax(estimate.likelihood)) - column) <= 1
    assert estimate.likelihood.max() == pytest.approx(1.0)


def test_a_moving_source_is_followed():
    geometry = preset_geometry("stereo:0.2")
    path = linear_path(at_direction(-30, distance_m=15), at_direction(30, distance_m=15), 2 * RATE)
    signals = heard(geometry, path, 2.0, 20.0, seed=4)
    finder = DirectionFinder(geometry, (180, 320), RATE)
    for centre in (0.6, 1.0, 1.4):
        window = signals[:, round((centre - 0.25) * RATE) : round((centre + 0.25) * RATE)]
        truth = azimuth_elevation_deg(path[round(centre * RATE)])[0]
        assert abs(finder(window).azimuth_deg - truth) < 3.0


def test_noise_alone_gives_a_flat_likelihood_and_low_coherence():
    geometry = preset_geometry("stereo:0.2")
    estimate = DirectionFinder(geometry, (180, 320), RATE)(np.random.default_rng(5).standard_normal((2, RATE // 2)))
    assert estimate.coherence < 0.2 and estimate.sharpness < 0.1


def test_a_window_with_the_wrong_channel_count_is_refused_naming_both():
    finder = DirectionFinder(preset_geometry("square:0.1"), (90, 160), RATE)
    with pytest.raises(ChannelCountError, match="has 2 channels but --mics has 4 microphones"):
        finder(np.zeros((2, RATE // 2)))
    bad = np.zeros((4, RATE // 2))
    bad[1, 100] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        finder(bad)


# ------------------------------------------------------------------ fusion

def two_blobs() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(90.0), torch.arange(160.0), indexing="ij")
    blob = lambda x: torch.exp(-((xx - x) ** 2 + (yy - 45) ** 2) / 50)  # noqa: E731
    return (blob(30) + 0.9 * blob(120))[None]


def test_fusion_normalises_as_the_models_maps_are():
    from flowgrad.maps import minmax
    likelihood = np.linspace(0.2, 1.0, 160)
    np.testing.assert_allclose(fuse(two_blobs(), likelihood), minmax(two_blobs() * torch.from_numpy(likelihood).float()),
                               atol=1e-6, rtol=0)


def test_fusion_keeps_the_blob_the_direction_points_at():
    maps = two_blobs()
    assert int(maps[0].argmax()) % 160 == 30  # the map alone prefers the left blob
    likelihood = np.exp(-0.5 * ((np.arange(160) - 120) / 8.0) ** 2)
    fused = fuse(maps, likelihood)
    assert fused.shape == maps.shape and float(fused.max()) == pytest.approx(1.0)
    assert int(fused[0].argmax()) % 160 == 120
    assert float(fused[0, 45, 30]) < 0.01


def test_a_flat_likelihood_leaves_a_normalised_map_as_it_was():
    maps = two_blobs() / two_blobs().max()
    np.testing.assert_allclose(fuse(maps, np.ones(160)), maps.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(fuse(maps, np.full((90, 160), 0.3)), maps.numpy(), atol=1e-6, rtol=0)


def test_fusion_refuses_a_likelihood_of_another_size():
    with pytest.raises(ValueError, match=r"likelihood must be .* got \(159,\)"):
        fuse(two_blobs(), np.ones(159))


def test_sharpness_runs_from_flat_to_one_column():
    assert sharpness(np.ones(320)) == pytest.approx(0.0, abs=1e-12)
    assert sharpness(np.eye(1, 320)[0]) == pytest.approx(1.0)
    wide, narrow = (np.exp(-0.5 * ((np.arange(320) - 160) / s) ** 2) for s in (40.0, 4.0))
    assert 0 < sharpness(wide) < sharpness(narrow) < 1
    for bad in (np.zeros(10), np.array([1.0, -1.0, 1.0]), np.array([np.nan, 1.0]), np.ones(1)):
        with pytest.raises(ValueError, match="sharpness"):
            sharpness(bad)


# ------------------------------------------------------------------ synthetic array sound

def test_rendering_delays_and_attenuates_by_distance():
    """A band-limited click from a known place: each microphone hears it delayed by
    distance / c (fractional samples included, compared with a phase-shifted copy) and
    scaled by 1 / distance."""
    mics = np.array([[-0.1, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, -0.15, 0.02]])
    source = np.array([2.0, -0.5, 4.0])
    n = 4096
    taper = np.clip((0.8 - np.fft.rfftfreq(n) * 2) / 0.2, 0, 1)  # flat to 0.6, nothing above 0.8 x Nyquist
    click = np.fft.irfft(taper * np.exp(-2j * np.pi * np.fft.rfftfreq(n) * 1000), n)
    out = render_moving_source(click, RATE, source, mics)
    for m, mic in enumerate(mics):
        distance = np.linalg.norm(source - mic)
        reference = delayed(click, distance / 343 * RATE) / distance
        assert np.max(np.abs(out[m] - reference)) < 2e-3 * np.max(np.abs(reference))


def test_diffuse_noise_has_the_asked_level_and_is_partly_coherent():
    mics = preset_geometry("stereo:0.2").mic_positions_m
    noise = diffuse_noise(RATE, RATE, mics, 0.01, np.random.default_rng(6))
    assert noise.shape == (2, RATE) and noise.dtype == np.float32
    np.testing.assert_allclose(np.sqrt(np.mean(noise.astype(np.float64) ** 2, axis=1)), 0.01, rtol=1e-4)
    # Close microphones share a diffuse field's low frequencies, not its high ones.
    low = np.fft.rfft(noise, axis=1)[:, 10:200]  # 10 .. 200 Hz
    high = np.fft.rfft(noise, axis=1)[:, 15000:20000]
    coherence = lambda s: abs(np.sum(s[0] * np.conj(s[1]))) / np.sqrt(np.sum(abs(s[0]) ** 2) * np.sum(abs(s[1]) ** 2))  # noqa: E731
    assert coherence(low) > 0.9 and coherence(high) < 0.2


def test_the_clap_check_of_docs_spatial_finds_the_clap(tmp_path):
    """docs/SPATIAL.md's snippet, run as written on a rendered clap 25 degrees to the right
    of a 20 cm pair in a quiet street: it prints the clap's pinhole column."""
    import re
    import subprocess
    import sys
    import wave
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    snippet = re.findall(r"^```python\n(.*?)^```$", (root / "docs/SPATIAL.md").read_text(), flags=re.M | re.S)[0]
    geometry = preset_geometry("stereo:0.2", 70.0)
    (tmp_path / "array.json").write_text(geometry.to_json())
    rng = np.random.default_rng(8)
    clap = np.zeros(2 * RATE)
    clap[RATE : RATE + 960] = rng.standard_normal(960) * np.exp(-np.arange(960) / 150)
    at = render_moving_source(clap, RATE, at_direction(25.0, distance_m=6.0), geometry.mic_positions_m)
    at += diffuse_noise(2 * RATE, RATE, geometry.mic_positions_m, 0.002, rng)
    with wave.open(str(tmp_path / "clap.wav"), "wb") as f:
        f.setnchannels(2), f.setsampwidth(2), f.setframerate(RATE)
        f.writeframes(np.round(np.clip(at.T, -1, 1) * 32767).astype("<i2").tobytes())
    out = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    expected = column_of_azimuth(25.0, 1280, 70.0)
    found = re.search(r"azimuth (\S+) deg, column (\d+) of 1280, coherence (\S+)", out.stdout)
    assert found, out.stdout
    assert abs(float(found[1]) - 25.0) < 3 and abs(int(found[2]) - expected) < 0.02 * 1280
    assert float(found[3]) > 0.2


def test_a_scene_is_its_sources_plus_diffuse_noise_and_two_sources_are_two_directions():
    geometry = preset_geometry("stereo:0.3")
    rng = np.random.default_rng(10)
    n = RATE
    sources = [(rng.standard_normal(n), at_direction(-25.0)), (rng.standard_normal(n), at_direction(30.0))]
    scene = render_array(sources, RATE, geometry.mic_positions_m, 0.001, np.random.default_rng(11))
    parts = sum(render_moving_source(s, RATE, p, geometry.mic_positions_m) for s, p in sources)
    noise = diffuse_noise(n, RATE, geometry.mic_positions_m, 0.001, np.random.default_rng(11))
    np.testing.assert_allclose(scene, parts + noise, atol=1e-6)
    likelihood = DirectionFinder(geometry, (180, 320), RATE)(scene[:, RATE // 4 : 3 * RATE // 4]).likelihood
    columns = [round(float(column_of_azimuth(a, 320, 90.0))) for a in (-25.0, 30.0)]
    assert all(likelihood[c - 2 : c + 3].max() > 0.3 for c in columns)  # both sources stand out
    assert likelihood[160] < 0.05  # and the middle, where neither is, does not
    with pytest.raises(ValueError, match="must be 48000 samples long"):
        render_array([sources[0], (np.zeros(10), at_direction(0))], RATE, geometry.mic_positions_m, 0, rng)


def test_a_multichannel_ring_feeds_the_direction_finder():
    """A rendered source written block by block into a 2-channel ring: the newest window of
    ``window_s`` read back as channels gives the source's azimuth; the mono row averages them."""
    from realtime.ring import AudioRing

    geometry = preset_geometry("stereo:0.2")
    signals = heard(geometry, at_direction(-18.0), 1.0, 20.0, seed=12)
    ring = AudioRing(RATE, seconds=5.0, channels=2)
    for start in range(0, RATE, 2400):
        ring.write(signals[:, start : start + 2400].T, end_time=10.0 + (start + 2399) / RATE)
    finder = DirectionFinder(geometry, (180, 320), RATE)
    window = ring.latest(finder.window_s, end_time=10.9, channels=True)
    assert window.samples.shape == (2, RATE // 2) and window.filled
    assert abs(finder(window.samples).azimuth_deg + 18.0) < 3.0
    np.testing.assert_allclose(ring.latest(finder.window_s, end_time=10.9).samples,
                               window.samples.mean(axis=0), atol=1e-7)
