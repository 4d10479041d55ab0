"""Audio front-ends and resampling in pure torch.

Everything here runs on whatever device the input tensor lives on (CPU or
GPU) and never calls numpy, torchaudio or scipy, so the same code path is
used for training, evaluation and the tests' CPU references.

Conventions used in all docstrings:

* ``wave`` is a mono waveform, amplitude in [-1, 1] (not enforced), with time
  measured in **samples** at the stated rate in **Hz**.
* ``B`` is the batch size, ``T`` the number of samples per clip.
* Spectrograms are returned as ``(B, 1, F, N)``: a singleton channel axis,
  ``F`` frequency bins (bin ``k`` is centred on ``k * sample_rate / n_fft`` Hz)
  and ``N`` time frames.

Public API
----------
``power_spectrogram(wave, n_fft=512, hop=353)``
``rcgrad_spectrogram(wave, stats="clip")``
``htf_spectrogram(wave, sample_rate=22050)``
``tukey_window(n, alpha=0.25, periodic=True, ...)``
``resample(wave, orig_hz, new_hz, ...)``
``newest_window(wave, n)``
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "power_spectrogram",
    "rcgrad_spectrogram",
    "htf_spectrogram",
    "tukey_window",
    "resample",
    "resampled_length",
    "newest_window",
    "RCGRAD_N_FFT",
    "RCGRAD_HOP",
    "HTF_NPERSEG",
    "HTF_NOVERLAP",
]

# RCGrad reference: torchaudio.transforms.Spectrogram(n_fft=512, hop_length=353).
RCGRAD_N_FFT = 512
RCGRAD_HOP = 353
# Hear The Flow / LVS reference: scipy.signal.spectrogram(nperseg=512, noverlap=274).
HTF_NPERSEG = 512
HTF_NOVERLAP = 274

_LOG_EPS = 1e-7
_STD_EPS = 1e-9
# Least standard deviation (natural-log power units) the RCGrad standardisation divides by. Real
# sound has ~1 or more; a constant spectrogram (digital silence) has only rounding noise, which
# divided by ~0 became arbitrary, batch-dependent values, and so did the sounding score of silence.
_STD_FLOOR = 1e-3


# --------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------


def _check_wave(wave: torch.Tensor, name: str, *, ndim: int | None, min_len: int) -> None:
    """Reject inputs that would otherwise fail deep inside torch or, worse,
    silently produce garbage (NaN spectrograms, integer-PCM magnitudes)."""
    if not isinstance(wave, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(wave).__name__}")
    if ndim is not None and wave.ndim != ndim:
        raise ValueError(
            f"{name}: expected a {ndim}-D tensor of shape (B, T), got shape {tuple(wave.shape)}"
        )
    if ndim is None and wave.ndim < 1:
        raise ValueError(f"{name}: expected a tensor with a time axis (..., T), got a scalar")
    if not wave.is_floating_point():
        # Integer PCM would need a scale factor we cannot guess (int16 vs int32).
        raise ValueError(
            f"{name}: expected a floating-point tensor (e.g. float32 in [-1, 1]), got {wave.dtype}"
        )
    t = wave.shape[-1]
    if t < min_len:
        raise ValueError(f"{name}: need at least {min_len} samples along the last axis, got {t}")
    if wave.numel() > 0 and not bool(torch.isfinite(wave).all()):
        raise ValueError(f"{name}: input contains NaN or infinite values")


# --------------------------------------------------------------------------
# RCGrad front-end
# --------------------------------------------------------------------------


def power_spectrogram(wave: torch.Tensor, n_fft: int = RCGRAD_N_FFT, hop: int = RCGRAD_HOP) -> torch.Tensor:
    """Un-normalised power spectrogram, identical to
    ``torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=hop)``.

    Periodic Hann window of ``n_fft`` samples, frames centred on multiples of
    ``hop`` samples (reflect padding of ``n_fft // 2`` samples on each side),
    one-sided FFT, power ``|X[k]|^2`` with no window or length normalisation.

    Args:
        wave: ``(B, T)`` floating tensor, samples at any rate. Requires
            ``T > n_fft // 2`` (reflect padding needs that many samples).
        n_fft: FFT / window length in samples.
        hop: frame hop in samples.

    Returns:
        ``(B, n_fft // 2 + 1, 1 + T // hop)`` tensor, same dtype and device as
        ``wave``; units are squared amplitude (not per Hz).
    """
    _check_wave(wave, "power_spectrogram", ndim=2, min_len=n_fft // 2 + 1)
    window = torch.hann_window(n_fft, periodic=True, dtype=wave.dtype, device=wave.device)
    spec = torch.stft(
        wave,
        n_fft=n_fft,
        hop_length=hop,
        win_length=n_fft,
        window=window,
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    # real^2 + imag^2 rather than abs()**2: avoids a sqrt followed by a square.
    return spec.real.square() + spec.imag.square()


def rcgrad_spectrogram(wave: torch.Tensor, stats: str = "clip") -> torch.Tensor:
    """RCGrad audio front-end: log power spectrogram standardised by one
    scalar mean and standard deviation.

    Steps: :func:`power_spectrogram` with ``n_fft=512``, ``hop=353``, then
    ``log(x + 1e-7)``, then ``(x - mean) / (max(std, 1e-3) + 1e-9)`` where ``std`` is the
    unbiased ``torch.std``.

    Args:
        wave: ``(B, T)`` floating tensor (float32 normally), mono, at the
            model's sample rate in Hz (16000 for RCGrad). Needs ``T > 256``
            samples. 5 s at 16 kHz (80000 samples) gives 227 frames; 1 s at
            22.05 kHz gives 63 frames.
        stats: ``"clip"`` (default) standardises each clip with its own
            scalar mean/std over all of its bins and frames, so a clip's
            output does not depend on what else is in the batch.
            ``"batch"`` uses one mean/std over the whole ``(B, 257, N)``
            tensor, which is what the reference implementation did.

    Returns:
        ``(B, 1, 257, 1 + T // 353)`` tensor, dtype and device of ``wave``,
        dimensionless (standardised log power).
    """
    if stats not in ("clip", "batch"):
        raise ValueError(f"rcgrad_spectrogram: stats must be 'clip' or 'batch', got {stats!r}")
    _check_wave(wave, "rcgrad_spectrogram", ndim=2, min_len=RCGRAD_N_FFT // 2 + 1)
    logspec = torch.log(power_spectrogram(wave, RCGRAD_N_FFT, RCGRAD_HOP) + _LOG_EPS)
    if stats == "batch":
        mean = logspec.mean()
        std = logspec.std()
    else:
        mean = logspec.mean(dim=(1, 2), keepdim=True)
        std = logspec.std(dim=(1, 2), keepdim=True)
    return ((logspec - mean) / (torch.clamp(std, min=_STD_FLOOR) + _STD_EPS)).unsqueeze(1)


# --------------------------------------------------------------------------
# Hear The Flow / LVS front-end
# --------------------------------------------------------------------------


def tukey_window(
    n: int,
    alpha: float = 0.25,
    periodic: bool = True,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Tukey (tapered cosine) window matching ``scipy.signal.windows.tukey``.

    ``periodic=True`` corresponds to scipy's ``sym=False``, which is what
    ``scipy.signal.get_window`` (and hence ``scipy.signal.spectrogram``)
    uses: the symmetric window of length ``n + 1`` with its last sample
    dropped.

    Args:
        n: window length in samples.
        alpha: fraction of the window inside the cosine tapers (0 gives a
            rectangular window, 1 a Hann window).
        periodic: periodic (FFT) window if True, symmetric otherwise.

    Returns:
        ``(n,)`` tensor of the given dtype/device, values in [0, 1].
    """
    if n <= 0:
        raise ValueError(f"tukey_window: n must be positive, got {n}")
    if n == 1:
        return torch.ones(1, dtype=dtype, device=device)
    if alpha <= 0:
        return torch.ones(n, dtype=dtype, device=device)
    m = n + 1 if periodic else n
    if alpha >= 1.0:
        w = torch.hann_window(m, periodic=False, dtype=torch.float64, device=device)
        return w[:n].to(dtype)
    # Same piecewise construction as scipy so that the split points (and the
    # exact 1.0 plateau) agree sample for sample.
    idx = torch.arange(m, dtype=torch.float64, device=device)
    width = int(math.floor(alpha * (m - 1) / 2.0))
    rising = 0.5 * (1 + torch.cos(math.pi * (-1 + 2.0 * idx / alpha / (m - 1))))
    falling = 0.5 * (1 + torch.cos(math.pi * (-2.0 / alpha + 1 + 2.0 * idx / alpha / (m - 1))))
    w = torch.ones(m, dtype=torch.float64, device=device)
    w = torch.where(idx <= width, rising, w)
    w = torch.where(idx >= m - width - 1, falling, w)
    return w[:n].to(dtype)


def htf_spectrogram(wave: torch.Tensor, sample_rate: int = 22050) -> torch.Tensor:
    """Hear The Flow / LVS audio front-end.

    Re-implements ``scipy.signal.spectrogram(x, fs=sample_rate, nperseg=512,
    noverlap=274, window=('tukey', 0.25))`` with scipy's other defaults:
    no padding (segments of 512 samples every 238 samples, the trailing
    partial segment dropped), ``detrend='constant'`` (each segment's mean is
    subtracted before windowing), periodic Tukey window, one-sided spectrum
    with every bin except DC and Nyquist doubled, ``scaling='density'``
    (divided by ``sample_rate * sum(window**2)``). Then ``log(x + 1e-7) / 12``.

    Args:
        wave: ``(B, T)`` floating tensor, mono, samples at ``sample_rate``
            Hz. Needs ``T >= 512``.
        sample_rate: sampling rate in Hz; only enters through the density
            scaling (so it shifts the log output by a constant).

    Returns:
        ``(B, 1, 257, (T - 512) // 238 + 1)`` tensor, dtype and device of
        ``wave``; 3 s at 22.05 kHz (66150 samples) gives 257 x 276. Before the
        log the units are power spectral density (amplitude^2 / Hz).
    """
    _check_wave(wave, "htf_spectrogram", ndim=2, min_len=HTF_NPERSEG)
    if sample_rate <= 0:
        raise ValueError(f"htf_spectrogram: sample_rate must be positive, got {sample_rate}")
    step = HTF_NPERSEG - HTF_NOVERLAP
    frames = wave.unfold(-1, HTF_NPERSEG, step)  # (B, N, 512), a view
    frames = frames - frames.mean(dim=-1, keepdim=True)
    window = tukey_window(HTF_NPERSEG, 0.25, periodic=True, dtype=wave.dtype, device=wave.device)
    spec = torch.fft.rfft(frames * window, n=HTF_NPERSEG, dim=-1)
    power = spec.real.square() + spec.imag.square()
    power = power / (sample_rate * window.square().sum())
    # One-sided density: fold the negative frequencies onto the positive ones.
    # DC and Nyquist have no mirror image (nperseg is even), so they stay single.
    gain = torch.full((power.shape[-1],), 2.0, dtype=power.dtype, device=power.device)
    gain[0] = 1.0
    gain[-1] = 1.0
    power = power * gain
    return (torch.log(power + _LOG_EPS) / 12.0).transpose(1, 2).unsqueeze(1)


def newest_window(wave: torch.Tensor, n: int) -> torch.Tensor:
    """The newest ``n`` samples of ``wave`` (..., T), zero-padded on the left when T < n.

    Returns (..., n), the same dtype and device: the model's audio window from
    whatever has been heard so far, silence standing in for what is missing.
    """
    wave = wave[..., max(0, wave.shape[-1] - n):]
    return F.pad(wave, (n - wave.shape[-1], 0)) if wave.shape[-1] < n else wave


# --------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------


def resampled_length(n_samples: int, orig_hz: int, new_hz: int) -> int:
    """Number of output samples :func:`resample` produces.

    ``ceil(n_samples * new_hz / orig_hz)``, computed exactly in integers: the
    output covers the same time span as the input, i.e. output sample ``j``
    (at time ``j / new_hz`` seconds) is kept iff ``j / new_hz < n_samples /
    orig_hz``. Matches ``torchaudio.functional.resample``.
    """
    return -((-n_samples * new_hz) // orig_hz)


def _check_rate(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"resample: {name} must be a positive integer in Hz, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"resample: {name} must be a whole number of Hz, got {value!r}")
        value = int(value)
    if value <= 0:
        raise ValueError(f"resample: {name} must be positive, got {value}")
    return value


def _sinc_kernel(
    orig: int,
    new: int,
    lowpass_filter_width: int,
    rolloff: float,
    beta: float,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, int]:
    """Polyphase Kaiser-windowed sinc bank.

    ``orig``/``new`` are the gcd-reduced rates. Returns ``(new, 1, K)``
    kernels (phase ``p`` produces output samples ``p, p + new, ...``) and the
    left padding ``width`` in input samples.
    """
    # Cut off below the lower Nyquist frequency; rolloff < 1 leaves room for
    # the transition band so the frequencies just under Nyquist are what gets
    # attenuated rather than aliases folding back in.
    base_freq = min(orig, new) * rolloff
    # Half-length in input samples spanning `lowpass_filter_width` zero
    # crossings of the sinc.
    width = math.ceil(lowpass_filter_width * orig / base_freq)
    # Build in float64: the kernel is tiny, and float32 here would put ~1e-7
    # relative error on every tap before the signal is even touched.
    idx = torch.arange(-width, width + orig, dtype=torch.float64, device=device) / orig
    phase = -torch.arange(new, dtype=torch.float64, device=device)[:, None] / new
    t = (phase + idx) * base_freq  # time in units of the sinc's zero-crossing spacing
    t = t.clamp(-lowpass_filter_width, lowpass_filter_width)
    ratio = t / lowpass_filter_width
    window = torch.i0(beta * torch.sqrt((1 - ratio.square()).clamp_min(0.0))) / torch.i0(
        torch.tensor(beta, dtype=torch.float64, device=device)
    )
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, torch.ones_like(t), t))
    # base_freq / orig is the sinc's DC gain correction for this sampling.
    kernels = sinc * window * (base_freq / orig)
    return kernels.to(dtype).unsqueeze(1), width


def resample(
    wave: torch.Tensor,
    orig_hz: int,
    new_hz: int,
    *,
    lowpass_filter_width: int = 32,
    rolloff: float = 0.99,
    beta: float = 8.6,
) -> torch.Tensor:
    """Band-limited polyphase resampling with a Kaiser-windowed sinc.

    The rate ratio is reduced by its gcd to ``orig:new``; the signal is
    filtered by a low-pass at ``min(orig_hz, new_hz) / 2 * rolloff`` Hz and
    evaluated at the new sample times with one ``conv1d`` of stride
    ``orig`` and ``new`` output channels (one per polyphase branch). Samples
    beyond the ends of the input are treated as zeros, so the first and last
    ~``lowpass_filter_width`` output samples are edge-affected.

    With the defaults (32 zero crossings per side, Kaiser beta 8.6) the
    pass band is flat to within about 1e-4 up to roughly 0.9 x the lower
    Nyquist frequency and the stop band is below about -80 dB from roughly
    1.08 x that Nyquist frequency.

    Args:
        wave: ``(..., T)`` floating tensor (float32/float64), samples at
            ``orig_hz``; any leading batch/channel axes; any device.
        orig_hz: input sampling rate in Hz (positive integer).
        new_hz: output sampling rate in Hz (positive integer).
        lowpass_filter_width: sinc zero crossings kept on each side; larger
            means a sharper transition band and a longer kernel.
        rolloff: cutoff as a fraction of the lower Nyquist frequency.
        beta: Kaiser window shape parameter (stop-band depth vs. transition).

    Returns:
        ``(..., T')`` tensor, same dtype and device, with
        ``T' = ceil(T * new_hz / orig_hz)`` (see :func:`resampled_length`).
        When ``orig_hz == new_hz`` the input tensor itself is returned.
    """
    orig_hz = _check_rate(orig_hz, "orig_hz")
    new_hz = _check_rate(new_hz, "new_hz")
    if lowpass_filter_width <= 0:
        raise ValueError(f"resample: lowpass_filter_width must be positive, got {lowpass_filter_width}")
    if not 0 < rolloff <= 1:
        raise ValueError(f"resample: rolloff must be in (0, 1], got {rolloff}")
    _check_wave(wave, "resample", ndim=None, min_len=0)
    if orig_hz == new_hz:
        return wave

    g = math.gcd(orig_hz, new_hz)
    orig, new = orig_hz // g, new_hz // g
    lead, length = wave.shape[:-1], wave.shape[-1]
    target = resampled_length(length, orig, new)
    if length == 0:
        return wave.new_zeros(*lead, 0)

    kernels, width = _sinc_kernel(orig, new, lowpass_filter_width, rolloff, beta, wave.dtype, wave.device)
    x = wave.reshape(-1, 1, length)
    # Left pad puts the kernel's centre on input sample 0 for output sample 0;
    # the extra `orig` on the right makes the last polyphase block complete.
    x = F.pad(x, (width, width + orig))
    y = F.conv1d(x, kernels, stride=orig)  # (N, new, blocks)
    y = y.transpose(1, 2).reshape(x.shape[0], -1)[:, :target]
    return y.reshape(*lead, target)


# --------------------------------------------------------------------------
# Export-friendly front-ends (fixed real-DFT basis as a convolution)
# --------------------------------------------------------------------------
#
# TensorRT's ONNX parser has no STFT / DFT / window ops. The functions below
# compute the same spectrograms as their torch.stft / torch.fft counterparts
# with only Pad, Conv, Mul, Add, Log, Reduce* and Sqrt, so the whole audio
# front-end can live inside an exported graph. They do no data-dependent
# validation (no ``.item()`` / ``bool(tensor)``), so they also trace.


def _dft_basis(window64: torch.Tensor, n_fft: int, detrend: bool) -> torch.Tensor:
    """(2 * (n_fft // 2 + 1), 1, n_fft) float64 conv1d weight: rows
    ``w[n] cos(2 pi k n / n_fft)`` then ``w[n] sin(2 pi k n / n_fft)`` for
    k = 0 .. n_fft // 2 (the sign of the sine rows does not matter for power).

    ``detrend=True`` folds scipy's ``detrend='constant'`` into the basis: the
    DFT of ``w * (x - mean(x))`` is ``sum_n x[n] (w[n] e_k[n] - W_k / n_fft)``
    with ``W_k = sum_m w[m] e_k[m]``, still linear in ``x``.
    """
    n = torch.arange(n_fft, dtype=torch.float64, device=window64.device)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64, device=window64.device)
    # Reduce k * n modulo n_fft in integers so the angle stays exact.
    kn = (k[:, None] * n[None, :]).remainder(n_fft)
    angle = 2.0 * math.pi * kn / n_fft
    cos = torch.cos(angle) * window64
    sin = torch.sin(angle) * window64
    if detrend:
        cos = cos - cos.sum(dim=1, keepdim=True) / n_fft
        sin = sin - sin.sum(dim=1, keepdim=True) / n_fft
    return torch.cat([cos, sin], dim=0).unsqueeze(1)


def power_spectrogram_dft(wave: torch.Tensor, n_fft: int = RCGRAD_N_FFT, hop: int = RCGRAD_HOP) -> torch.Tensor:
    """:func:`power_spectrogram` computed as reflect padding + one ``conv1d``.

    The conv1d kernel is the fixed real DFT basis (cos and sin rows times the
    periodic Hann window, built in float64 then cast to ``wave.dtype``), stride
    ``hop``; power is ``cos_part**2 + sin_part**2``. Same shapes, units and
    framing as :func:`power_spectrogram` (``(B, n_fft // 2 + 1, 1 + T // hop)``);
    agrees with it to float32 rounding. Exports to ONNX as Pad (reflect), Conv,
    Slice, Mul and Add only. Requires ``T > n_fft // 2``; not checked here
    (data-independent so that it traces).
    """
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64, device=wave.device)
    basis = _dft_basis(window, n_fft, detrend=False).to(wave.dtype)
    x = F.pad(wave.unsqueeze(1), (n_fft // 2, n_fft // 2), mode="reflect")
    out = F.conv1d(x, basis, stride=hop)  # (B, 2 * bins, frames)
    bins = n_fft // 2 + 1
    re, im = out[:, :bins], out[:, bins:]
    return re * re + im * im


def rcgrad_spectrogram_dft(wave: torch.Tensor, stats: str = "clip") -> torch.Tensor:
    """:func:`rcgrad_spectrogram` built on :func:`power_spectrogram_dft`.

    The standardisation is written out (mean, unbiased variance, sqrt) with
    ReduceMean-style reductions, so it exports without ``aten::std``.
    ``stats`` as in :func:`rcgrad_spectrogram`. Returns ``(B, 1, 257, N)``.
    """
    if stats not in ("clip", "batch"):
        raise ValueError(f"rcgrad_spectrogram_dft: stats must be 'clip' or 'batch', got {stats!r}")
    logspec = torch.log(power_spectrogram_dft(wave, RCGRAD_N_FFT, RCGRAD_HOP) + _LOG_EPS)
    bins, frames = logspec.shape[1], logspec.shape[2]
    if stats == "batch":
        mean = logspec.mean(dim=(0, 1, 2), keepdim=True)
        count = logspec.shape[0] * bins * frames
        dev = logspec - mean
        var = (dev * dev).mean(dim=(0, 1, 2), keepdim=True) * (count / (count - 1))
    else:
        mean = logspec.mean(dim=(1, 2), keepdim=True)
        count = bins * frames
        dev = logspec - mean
        var = (dev * dev).mean(dim=(1, 2), keepdim=True) * (count / (count - 1))
    return (dev / (torch.clamp(torch.sqrt(var), min=_STD_FLOOR) + _STD_EPS)).unsqueeze(1)


def htf_spectrogram_dft(wave: torch.Tensor, sample_rate: int = 22050) -> torch.Tensor:
    """:func:`htf_spectrogram` as one ``conv1d`` with a fixed basis.

    No padding, stride 238 (= 512 - 274), periodic Tukey(0.25) window; the
    per-segment mean removal (scipy's ``detrend='constant'``) is folded into
    the basis (see :func:`_dft_basis`), the density scaling and the one-sided
    doubling are one constant per-bin multiply. Then ``log(x + 1e-7) / 12``.
    Returns ``(B, 1, 257, (T - 512) // 238 + 1)``; requires ``T >= 512``
    (not checked here, so that it traces).
    """
    window = tukey_window(HTF_NPERSEG, 0.25, periodic=True, dtype=torch.float64, device=wave.device)
    basis = _dft_basis(window, HTF_NPERSEG, detrend=True).to(wave.dtype)
    step = HTF_NPERSEG - HTF_NOVERLAP
    out = F.conv1d(wave.unsqueeze(1), basis, stride=step)
    bins = HTF_NPERSEG // 2 + 1
    re, im = out[:, :bins], out[:, bins:]
    # Built from a Python list (not by item assignment) so that it traces to one
    # constant instead of ScatterND ops.
    gain = torch.tensor([1.0] + [2.0] * (bins - 2) + [1.0], dtype=torch.float64, device=wave.device)
    scale = (gain / (sample_rate * window.square().sum())).to(wave.dtype)[:, None]
    power = (re * re + im * im) * scale
    return (torch.log(power + _LOG_EPS) / 12.0).unsqueeze(1)


__all__ += ["power_spectrogram_dft", "rcgrad_spectrogram_dft", "htf_spectrogram_dft"]
