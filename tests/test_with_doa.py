"""WithDoa: a map fused with the direction a rendered source is heard from."""
import numpy as np
import pytest

from flowgrad.spatial.geometry import column_of_azimuth, preset_geometry
from flowgrad.spatial.with_doa import WithDoa, doa_fields
from training.synth.spatial import render_array

RATE = 16000


def _heard(azimuth_deg: float, geometry, seconds=0.5, snr_db=20.0, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    a = np.radians(azimuth_deg)
    where = 30.0 * np.array([np.sin(a), 0.0, np.cos(a)])
    signal = rng.standard_normal(n)
    heard = render_array([(signal, where)], RATE, geometry.mic_positions_m, 0.0, rng)
    noise = np.sqrt(np.mean(heard ** 2)) / 10 ** (snr_db / 20)
    return heard + noise * rng.standard_normal(heard.shape).astype(np.float32)


def test_the_likelihood_peaks_at_the_sources_pinhole_column():
    geometry = preset_geometry("stereo:0.2", 90.0)
    fusion = WithDoa(geometry, (56, 112), RATE, spread_deg=0.0)
    heard = _heard(-20.0, geometry)
    (likelihood,), _ = fusion.likelihoods(heard[None])
    expected = column_of_azimuth(-20.0, 112, 90.0)
    assert likelihood.shape == (112,) and abs(int(np.argmax(likelihood)) + 0.5 - expected) <= 2.0
    maps, scores, (estimate,) = fusion(np.random.default_rng(0).random((1, 56, 112), np.float32), np.array([0.3]),
                                       heard[None])
    assert maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    assert scores.tolist() == pytest.approx([0.3])  # a clear direction heard: the model's score stands
    fields = doa_fields(estimate)
    assert abs(fields["azimuth_deg"] + 20.0) < 3.0 and fields["elevation_deg"] is None
    assert 0.5 < fields["confidence"] <= 1.0
    assert doa_fields(None) is None


def test_of_two_equal_blobs_the_one_heard_wins():
    geometry = preset_geometry("stereo:0.2", 90.0)
    fusion = WithDoa(geometry, (32, 64), RATE)
    maps = np.zeros((1, 32, 64), np.float32)
    left, right = int(column_of_azimuth(-30.0, 64, 90.0)), int(column_of_azimuth(30.0, 64, 90.0))
    maps[0, 10:20, left - 2:left + 3] = 1.0
    maps[0, 10:20, right - 2:right + 3] = 1.0
    fused, _, _ = fusion(maps, np.ones(1), _heard(30.0, geometry)[None])
    # the unheard blob falls out of a map binarised at half its maximum (the benchmarks' rule)
    assert fused[0, 15, right] == pytest.approx(1.0) and fused[0, 15, left] < 0.5


def test_a_heard_vehicle_keeps_its_whole_width_and_an_unheard_one_drops():
    """The direction says which region of the map sounds, the map how far it extends: a vehicle
    twice as wide as the likelihood's plateau, heard at its left end, is kept whole at the
    benchmarks' binarisation (0.5), a second one across the picture drops out. Weighted pixel
    by pixel (the fusion before), the heard vehicle lost most of its width."""
    from flowgrad.spatial.fusion import fuse

    geometry = preset_geometry("stereo:0.2", 90.0)
    fusion = WithDoa(geometry, (32, 112), RATE)
    heard = _heard(-20.0, geometry)[None]
    (likelihood,), _ = fusion.likelihoods(heard)
    plateau = np.nonzero(likelihood > 0.99)[0]
    start = plateau[0]
    wide = slice(start, min(112, start + 2 * len(plateau)))
    maps = np.zeros((1, 32, 112), np.float32)
    maps[0, 10:20, wide] = 1.0
    far = int(column_of_azimuth(30.0, 112, 90.0))
    maps[0, 10:20, far - 3:far + 3] = 0.9
    fused, _, _ = fusion(maps, np.ones(1), heard)
    assert (fused[0, 10:20, wide] >= 0.5).all() and (fused[0, 10:20, far - 3:far + 3] < 0.5).all()
    by_pixel = fuse(maps, likelihood[None], None)
    assert (by_pixel[0, 15, wide] < 0.5).mean() > 0.3


def test_fuse_by_region_against_a_hand_computed_map():
    from flowgrad.spatial.fusion import fuse

    maps = np.zeros((1, 4, 8), np.float32)
    maps[0, 1:3, 0:2] = 1.0   # region A: columns 0-1
    maps[0, 1:3, 5:8] = 0.8   # region B: columns 5-7
    maps[0, 0, 3] = 0.2       # below half the maximum: weighted where it lies
    likelihood = np.array([0.0, 0.5, 0.0, 0.6, 0.0, 0.0, 1.0, 0.0], np.float32)
    expected = np.zeros((4, 8), np.float32)
    expected[1:3, 0:2] = 1.0 * 0.5  # A's highest likelihood
    expected[1:3, 5:8] = 0.8 * 1.0  # B's
    expected[0, 3] = 0.2 * 0.6
    expected /= expected.max()
    assert fuse(maps, likelihood, 0.5)[0] == pytest.approx(expected, abs=1e-5)
    assert fuse(np.zeros((1, 4, 8), np.float32), likelihood, 0.5).max() == 0.0  # nothing to weigh
    for bad in (0.0, 1.5, -1.0):
        with pytest.raises(ValueError, match="region_level"):
            fuse(maps, likelihood, bad)


def test_a_channel_count_other_than_the_geometrys_is_refused():
    fusion = WithDoa(preset_geometry("square:0.2"), (8, 8), RATE)
    from flowgrad.spatial.geometry import ChannelCountError
    with pytest.raises(ChannelCountError):
        fusion(np.ones((1, 8, 8)), np.ones(1), np.zeros((1, 2, 8000)))
    with pytest.raises(ValueError):
        fusion(np.ones((2, 8, 8)), np.ones(2), np.zeros((1, 4, 8000)))


def test_the_likelihood_is_widened_to_a_plateau_centred_on_the_source():
    """The default spread keeps the peak over +-8 degrees (a vehicle's width), centred where the
    raw likelihood peaks, and still suppresses a direction 40 degrees away."""
    geometry = preset_geometry("stereo:0.2", 90.0)
    heard = _heard(-20.0, geometry)[None]
    (raw,), _ = WithDoa(geometry, (56, 112), RATE, spread_deg=0.0).likelihoods(heard)
    (wide,), _ = WithDoa(geometry, (56, 112), RATE).likelihoods(heard)
    top = np.nonzero(wide > 0.99)[0]
    span = column_of_azimuth(np.array([-28.0, -12.0]), 112, 90.0)
    assert (raw > 0.99).sum() < len(top)
    assert abs(top.mean() + 0.5 - column_of_azimuth(-20.0, 112, 90.0)) <= 2.0
    assert span[0] - 2 <= top[0] and top[-1] + 1 <= span[1] + 2
    assert wide[int(column_of_azimuth(20.0, 112, 90.0))] < 0.1
    with pytest.raises(ValueError, match="spread_deg"):
        WithDoa(geometry, (56, 112), RATE, spread_deg=-1.0)


def test_the_range_likelihood_is_flat_without_a_direction_and_scaled_by_the_maps_own_range():
    from flowgrad.spatial.doa import DirectionFinder, range_likelihood

    assert range_likelihood(np.zeros(50)).tolist() == [1.0] * 50  # digital silence: no direction
    power = np.array([0.0, 0.1, 0.1, 0.2, 0.5, 0.1, 0.35])
    assert range_likelihood(power).tolist() == pytest.approx([0, 0, 0, 0.25, 1, 0, 0.625])
    # the same shape whatever the absolute level (a quieter, less coherent window)
    assert range_likelihood(0.2 * power - 0.01).tolist() == pytest.approx(range_likelihood(power).tolist())
    with pytest.raises(ValueError, match="likelihood"):
        DirectionFinder(preset_geometry("stereo:0.2"), (8, 8), RATE, likelihood="steep")


def test_two_loud_sources_both_keep_their_part_of_the_likelihood():
    geometry = preset_geometry("stereo:0.2", 90.0)
    rng = np.random.default_rng(7)
    n = RATE // 2
    sources = [(rng.standard_normal(n) * gain, 30.0 * np.array([np.sin(np.radians(a)), 0.0, np.cos(np.radians(a))]))
               for a, gain in ((-25.0, 1.0), (30.0, 0.8))]
    heard = render_array(sources, RATE, geometry.mic_positions_m, 0.001, rng)
    (row,), _ = WithDoa(geometry, (32, 112), RATE).likelihoods(heard[None])
    for azimuth in (-25.0, 30.0):
        c = int(column_of_azimuth(azimuth, 112, 90.0))
        assert row[c - 2:c + 3].max() > 0.5  # both survive the benchmarks' binarisation
    assert row[int(column_of_azimuth(2.0, 112, 90.0))] < 0.5  # and the middle between them does not


@pytest.mark.parametrize("frame_hw", [(360, 640), (224, 224)])
def test_a_square_arrays_source_lands_on_its_pinhole_row_of_a_map_stretched_over_the_frame(frame_hw):
    """A 224x224 map covers a 16:9 frame: its rows span the frame's vertical field of view.
    A source 20 degrees up straight ahead lands on the pinhole row of the FRAME, scaled to the
    map (before, rows were taken as square pixels of the map: 32 rows off for 640x360)."""
    geometry = preset_geometry("square:0.2", 90.0)
    rng = np.random.default_rng(3)
    up = np.radians(20.0)
    where = 30.0 * np.array([0.0, -np.sin(up), np.cos(up)])  # y down: up is negative y
    heard = render_array([(rng.standard_normal(RATE // 2), where)], RATE, geometry.mic_positions_m, 0.0, rng)
    fusion = WithDoa(geometry, (224, 224), RATE, spread_deg=0.0, frame_hw=frame_hw)
    (likelihood,), (estimate,) = fusion.likelihoods(heard[None])
    fh, fw = frame_hw
    frame_row = fh / 2 - (fw / 2 / np.tan(np.radians(45.0))) * np.tan(up)  # focal in frame pixels
    expected = frame_row * 224 / fh
    row = np.unravel_index(np.argmax(likelihood), likelihood.shape)[0] + 0.5
    assert abs(row - expected) <= 4.0, (row, expected)
    assert estimate.elevation_deg == pytest.approx(20.0, abs=2.0)


def _heard_factors(geometry, rate):
    """Coherence factor of: a source in the picture at 20 dB SNR, diffuse noise only, zeros."""
    from flowgrad.spatial.with_doa import heard_factor
    from training.synth.spatial import diffuse_noise

    rng = np.random.default_rng(11)
    n = rate // 2
    a = np.radians(15.0)
    heard = render_array([(rng.standard_normal(n), 20.0 * np.array([np.sin(a), 0.0, np.cos(a)]))], rate,
                         geometry.mic_positions_m, 0.0, rng)
    rms = float(np.sqrt(np.mean(heard ** 2)))
    source = heard + diffuse_noise(heard.shape[1], rate, geometry.mic_positions_m, rms / 10, rng)  # 20 dB SNR
    noise = diffuse_noise(n, rate, geometry.mic_positions_m, 0.1, rng)
    silence = np.zeros((geometry.channels, n), np.float32)
    fusion = WithDoa(geometry, (32, 64), rate)
    _, scores, estimates = fusion(np.ones((3, 32, 64), np.float32), np.ones(3), np.stack([source, noise, silence]))
    assert scores.tolist() == pytest.approx([heard_factor(e.coherence) for e in estimates], rel=1e-5)  # min(1, P)
    return scores


@pytest.mark.parametrize("spec,rate", [("stereo:0.2", 48000), ("stereo:0.2", 16000), ("square:0.2", 48000)])
def test_the_score_is_tempered_by_whether_a_source_in_the_picture_is_heard(spec, rate):
    """min(score, P(heard | coherence)): a model without a score (1) gets the array's: above 0.5 for
    a source in the picture at 20 dB SNR, below for diffuse noise only and for digital zeros
    (before, the score passed through: 1 for all three)."""
    source, noise, silence = _heard_factors(preset_geometry(spec, 90.0), rate)
    assert source > 0.5 and noise < 0.5 and silence < 0.5, (source, noise, silence)


def test_the_combined_score_stays_in_0_1():
    from flowgrad.spatial.with_doa import heard_factor

    geometry = preset_geometry("stereo:0.2", 90.0)
    heard = np.repeat(_heard(10.0, geometry)[None], 4, axis=0)
    _, scores, (estimate, *_) = WithDoa(geometry, (16, 32), RATE)(np.ones((4, 16, 32), np.float32),
                                                                   np.array([0.0, 1.0, 1.7, 0.2]), heard)
    assert scores.dtype == np.float32 and scores.min() >= 0.0 and scores.max() <= 1.0
    assert scores[0] == 0.0 and scores[1] == pytest.approx(scores[2])  # a score above 1 counts as 1
    assert scores[1] == pytest.approx(heard_factor(estimate.coherence)) and scores[3] == pytest.approx(0.2)
