"""Tests for flowgrad.audio against independent numpy/scipy references.

The references deliberately avoid the code paths under test: the RCGrad
power spectrogram is checked against an explicit DFT sum in float64, the HTF
front-end against scipy.signal.spectrogram itself, and the resampler against
analytic sines and scipy.signal.resample_poly.
"""

import math

import numpy as np
import pytest
import scipy.signal
import torch

from flowgrad.audio import (
    htf_spectrogram,
    power_spectrogram,
    rcgrad_spectrogram,
    rcgrad_spectrogram_dft,
    resample,
    resampled_length,
    tukey_window,
)


def _noise(batch, n, seed=0, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, generator=g) * scale


def _sine(freq_hz, rate_hz, n):
    t = np.arange(n, dtype=np.float64) / rate_hz
    return np.sin(2 * np.pi * freq_hz * t)


# --------------------------------------------------------------------------
# RCGrad
# --------------------------------------------------------------------------


def _dft_power_reference(x, n_fft=512, hop=353):
    """torchaudio Spectrogram semantics spelled out by hand in float64."""
    x = np.asarray(x, dtype=np.float64)
    padded = np.pad(x, n_fft // 2, mode="reflect")
    n = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)  # periodic Hann
    n_frames = 1 + len(x) // hop
    frames = np.stack([padded[i * hop : i * hop + n_fft] for i in range(n_frames)])  # (N, n_fft)
    k = np.arange(n_fft // 2 + 1)
    basis = np.exp(-2j * np.pi * np.outer(k, n) / n_fft)  # (F, n_fft): X[k] = sum_n x[n] e^{-2 pi i k n / N}
    spec = basis @ (frames * window).T  # (F, N)
    return np.abs(spec) ** 2


def test_power_spectrogram_matches_direct_dft():
    wave = _noise(2, 4000, seed=1)
    # A loud tone in one clip so that the comparison covers a big dynamic range.
    wave[1] += torch.from_numpy(_sine(1000, 16000, 4000)).float()
    got = power_spectrogram(wave).double().numpy()
    assert got.shape == (2, 257, 1 + 4000 // 353)
    for b in range(2):
        ref = _dft_power_reference(wave[b].double().numpy())
        rel_global = np.abs(got[b] - ref).max() / ref.max()
        assert rel_global < 1e-4, rel_global
        # Elementwise too, on every bin that is not buried in float32 round-off.
        mask = ref > 1e-3 * ref.max()
        rel_elem = (np.abs(got[b] - ref)[mask] / ref[mask]).max()
        assert rel_elem < 1e-4, rel_elem


@pytest.mark.parametrize(
    "seconds, rate, frames", [(5, 16000, 227), (1, 22050, 63)]
)
def test_rcgrad_frame_counts(seconds, rate, frames):
    out = rcgrad_spectrogram(_noise(2, seconds * rate))
    assert out.shape == (2, 1, 257, frames)
    assert out.dtype == torch.float32


def test_rcgrad_clip_stats_standardise_each_clip():
    wave = _noise(3, 16000, seed=2)
    wave[1] *= 20.0  # very different loudness per clip
    wave[2] *= 0.01
    out = rcgrad_spectrogram(wave, stats="clip").double()
    for b in range(3):
        assert abs(out[b].mean().item()) < 1e-5
        assert abs(out[b].std().item() - 1.0) < 1e-5


def test_rcgrad_batch_stats_match_whole_tensor_formula():
    wave = _noise(3, 16000, seed=3)
    wave[1] *= 20.0
    out = rcgrad_spectrogram(wave, stats="batch").double().numpy()
    # Standardisation recomputed in float64 numpy from the (separately
    # verified) power spectrogram: one mean and one unbiased std for the batch.
    logp = np.log(power_spectrogram(wave).double().numpy() + 1e-7)
    ref = (logp - logp.mean()) / (logp.std(ddof=1) + 1e-9)
    assert np.abs(out[:, 0] - ref).max() < 1e-4
    # And the whole pipeline against the DFT reference.
    logp_ref = np.log(np.stack([_dft_power_reference(w) for w in wave.double().numpy()]) + 1e-7)
    ref_full = (logp_ref - logp_ref.mean()) / (logp_ref.std(ddof=1) + 1e-9)
    assert np.abs(out[:, 0] - ref_full).max() < 1e-3
    # Batch mode is not per-clip: the loud clip sits above zero mean.
    assert out[1].mean() > 0.5


def test_rcgrad_clip_mode_is_batch_independent():
    wave = _noise(4, 8000, seed=4)
    wave[0] *= 30.0
    batched = rcgrad_spectrogram(wave, stats="clip")
    for b in range(4):
        alone = rcgrad_spectrogram(wave[b : b + 1], stats="clip")
        torch.testing.assert_close(alone, batched[b : b + 1], atol=1e-5, rtol=1e-5)
    # Sanity check that the test can fail: batch mode does depend on batch-mates.
    alone = rcgrad_spectrogram(wave[1:2], stats="batch")
    assert (alone - rcgrad_spectrogram(wave, stats="batch")[1:2]).abs().max() > 0.1


@pytest.mark.parametrize("fn", [rcgrad_spectrogram, rcgrad_spectrogram_dft])
def test_rcgrad_digital_silence_standardises_to_zeros_whatever_the_batch(fn):
    """A constant spectrogram holds nothing to standardise: zeros (not rounding noise divided by
    ~0, which made the embedding, and the sounding score, of silence depend on the batch)."""
    for batch in (1, 3, 16):
        out = fn(torch.zeros(batch, 80000))
        assert out.abs().max() < 1e-2, (batch, float(out.abs().max()))
    wave = _noise(2, 8000, seed=6)  # real sound is standardised as before (std far above the floor)
    logspec = fn(wave * 0.01)
    assert logspec.std(dim=(1, 2, 3)).sub(1).abs().max() < 1e-3


# --------------------------------------------------------------------------
# Hear The Flow
# --------------------------------------------------------------------------


def test_tukey_window_matches_scipy():
    for n, alpha in [(512, 0.25), (513, 0.25), (100, 0.5), (64, 1.0), (32, 0.0)]:
        for periodic in (True, False):
            got = tukey_window(n, alpha, periodic, dtype=torch.float64).numpy()
            ref = scipy.signal.windows.tukey(n, alpha, sym=not periodic)
            assert np.abs(got - ref).max() < 1e-12, (n, alpha, periodic)
    # spectrogram's window=('tukey', 0.25) goes through get_window -> periodic.
    ref = scipy.signal.get_window(("tukey", 0.25), 512)
    assert np.abs(tukey_window(512, 0.25, dtype=torch.float64).numpy() - ref).max() < 1e-12


def _htf_reference(x, fs):
    _, _, s = scipy.signal.spectrogram(
        np.asarray(x, dtype=np.float64), fs, nperseg=512, noverlap=274, window=("tukey", 0.25)
    )
    return np.log(s + 1e-7) / 12


def test_htf_matches_scipy_spectrogram():
    wave = _noise(1, 3 * 22050, seed=5)
    # DC offset and a tone exercise detrending and the one-sided doubling.
    wave += 0.3 + 0.5 * torch.from_numpy(_sine(3000, 22050, 3 * 22050)).float()
    out = htf_spectrogram(wave, sample_rate=22050)
    assert out.shape == (1, 1, 257, 276)
    ref = _htf_reference(wave[0].double().numpy(), 22050)
    err = np.abs(out[0, 0].double().numpy() - ref).max()
    assert err < 1e-4, err


def test_htf_other_rate_and_length():
    wave = _noise(2, 16000 + 77, seed=6)
    out = htf_spectrogram(wave, sample_rate=16000)
    frames = (16077 - 512) // 238 + 1
    assert out.shape == (2, 1, 257, frames)
    for b in range(2):
        ref = _htf_reference(wave[b].double().numpy(), 16000)
        assert np.abs(out[b, 0].double().numpy() - ref).max() < 1e-4
    # Shortest legal input: exactly one segment.
    assert htf_spectrogram(_noise(1, 512)).shape == (1, 1, 257, 1)


# --------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------


@pytest.mark.parametrize("orig, new", [(48000, 16000), (16000, 22050), (44100, 22050)])
def test_resample_sine_matches_analytic(orig, new):
    x = torch.from_numpy(_sine(440, orig, orig)).float()  # 1 s
    y = resample(x, orig, new)
    assert y.shape == (resampled_length(orig, orig, new),) == (new,)
    ref = _sine(440, new, len(y))
    err = np.abs(y.double().numpy() - ref)[100:-100].max()
    assert err < 1e-3, err


def test_resample_anti_aliasing():
    orig, new = 48000, 16000

    def peak(freq):
        x = torch.from_numpy(_sine(freq, orig, orig)).float()
        return resample(x, orig, new)[200:-200].abs().max().item()

    assert abs(peak(7000) - 1.0) < 1e-2  # within the pass band: amplitude kept
    # Above the new Nyquist (8 kHz) it would alias to 7 kHz: must be > 40 dB down.
    assert 20 * math.log10(peak(9000)) < -40


def test_resample_matches_scipy_resample_poly_on_noise():
    rng = np.random.default_rng(7)
    x = rng.standard_normal(48000)
    for orig, new in [(48000, 16000), (16000, 22050), (44100, 22050)]:
        g = math.gcd(orig, new)
        ref = scipy.signal.resample_poly(x, new // g, orig // g)
        got = resample(torch.from_numpy(x).float(), orig, new).double().numpy()
        assert got.shape == ref.shape
        a, b = got[200:-200], ref[200:-200]
        corr = np.corrcoef(a, b)[0, 1]
        assert corr > 0.99, (orig, new, corr)


def test_resample_shapes_and_identity():
    x = _noise(3, 1001, seed=8).reshape(3, 1, 1001).double()
    assert resample(x, 16000, 16000) is x
    y = resample(x, 16000, 22050)
    assert y.shape == (3, 1, math.ceil(1001 * 22050 / 16000))
    assert y.dtype == torch.float64
    # Leading axes are independent signals.
    torch.testing.assert_close(y[1], resample(x[1], 16000, 22050))
    for n in (1, 2, 3, 160, 161, 999):
        assert resampled_length(n, 48000, 16000) == math.ceil(n / 3)
        assert resample(torch.zeros(n), 48000, 16000).shape == (math.ceil(n / 3),)
    assert resample(torch.zeros(2, 0), 16000, 8000).shape == (2, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_cpu():
    wave = _noise(2, 22050, seed=9)
    for fn in (
        lambda w: rcgrad_spectrogram(w),
        lambda w: htf_spectrogram(w),
        lambda w: resample(w, 22050, 16000),
    ):
        cpu = fn(wave)
        gpu = fn(wave.cuda())
        assert gpu.is_cuda
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [rcgrad_spectrogram, htf_spectrogram, power_spectrogram],
    ids=["rcgrad", "htf", "power"],
)
def test_spectrogram_bad_input_raises(fn):
    good = _noise(1, 4000)
    with pytest.raises(ValueError, match="2-D"):
        fn(good[0])  # missing batch axis
    with pytest.raises(ValueError, match="2-D"):
        fn(good[None])
    with pytest.raises(ValueError, match="floating"):
        fn((good * 32767).to(torch.int16))
    bad = good.clone()
    bad[0, 10] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fn(bad)
    bad[0, 10] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn(bad)
    with pytest.raises(ValueError, match="samples"):
        fn(torch.zeros(1, 256))


def test_length_limits():
    with pytest.raises(ValueError, match="512"):
        htf_spectrogram(torch.zeros(1, 511))
    with pytest.raises(ValueError, match="257"):
        rcgrad_spectrogram(torch.zeros(1, 256))
    assert rcgrad_spectrogram(_noise(1, 257)).shape == (1, 1, 257, 1)


def test_other_bad_arguments_raise():
    x = _noise(1, 4000)
    with pytest.raises(ValueError, match="stats"):
        rcgrad_spectrogram(x, stats="global")
    with pytest.raises(ValueError, match="sample_rate"):
        htf_spectrogram(x, sample_rate=0)
    for orig, new in [(0, 16000), (16000, -1), (16000.5, 8000)]:
        with pytest.raises(ValueError):
            resample(x, orig, new)
    with pytest.raises(ValueError, match="floating"):
        resample(torch.zeros(10, dtype=torch.int32), 16000, 8000)
    with pytest.raises(ValueError, match="NaN"):
        resample(torch.tensor([0.0, float("nan")]), 16000, 8000)
