"""Direction of arrival: time per map (ours vs pyroomacoustics) and azimuth error by SNR.

    .venv/bin/python bench/doa.py [--rate 48000] [--window 0.5] [--size 320x180] [--repeat 20] [--sources 20]
    .venv/bin/python bench/doa.py --accuracy-only [--rates 16000 48000] [--arrays stereo:0.2 square:0.2]
    .venv/bin/python bench/doa.py --score-check [--sources 20]

Speed: ms per direction map of one window (--window s of --rate Hz audio): the
DirectionFinder's SRP-PHAT over the image's columns (stereo:0.2) or a grid of pixels
(square:0.1), the same directions through pyroomacoustics' SRP, GCC-PHAT of a pair
(ours and pyroomacoustics' experimental tdoa), and the two steps flowgrad.spatial.srp
chose its own way for (STFT, steering product), and the fusion of a map with a likelihood
(by region, the default, and pixel by pixel). Calls are spaced by --pause s, as maps
are in live use (back to back, OpenBLAS keeps its threads spinning and looks faster than
it is there). The live budget is 5 ms per map on 2 cores.
Accuracy: median and 90th-percentile |azimuth error| in degrees of single noise sources
at --sources azimuths spread evenly across the field of view (2 degrees in from its edges),
10 m away, rendered by training.synth.spatial.render_array with diffuse noise at each
SNR, for each array of --arrays at each rate of --rates (issue 19's target: a median of at
most 5 degrees at SNR 10 dB and above).
Score check (--score-check): whether the direction's coherence or sharpness tells a window
with a sounding source inside the picture (positive) from one of diffuse noise only
("quiet") or with a source outside it, 55 to 90 degrees off axis ("off-screen"): SLAVC's
AP (training.metrics) of each as a score, --sources windows of each kind, random azimuth,
8 to 25 m, SNR -5 to 15 dB, 48 kHz. Free field and one source at a time: an upper bound.
"""
from __future__ import annotations

import argparse
import math
import os

import numpy as np

from flowgrad.sizes import wxh_arg
from flowgrad.spatial.doa import DirectionFinder
from flowgrad.spatial.fusion import fuse
from flowgrad.spatial.gcc import gcc_phat
from flowgrad.spatial.geometry import preset_geometry
from flowgrad.spatial.srp import default_nfft, pyroomacoustics_srp, stft
from training.synth.spatial import render_array
import timing  # bench/ is on sys.path when run as a script

ARRAYS = ("stereo:0.2", "square:0.1")
ACCURACY_ARRAYS = ("stereo:0.2", "square:0.2")


def speed_rows(rate: int, window_s: float, hw: tuple[int, int], repeat: int,
               pause_s: float) -> list[tuple[str, float]]:
    """(what, ms per call) for each timed step."""

    def median_ms(fn, repeat):
        return timing.median_ms(fn, repeat, pause_s=pause_s)

    rng = np.random.default_rng(0)
    n = round(window_s * rate)
    rows = []
    for spec in ARRAYS:
        geometry = preset_geometry(spec)
        finder = DirectionFinder(geometry, hw, rate, window_s=window_s)
        x = rng.standard_normal((geometry.channels, n)).astype(np.float32)
        what = "pixels" if geometry.has_vertical_extent else "columns"
        grid = len(finder.directions)
        rows.append((f"{spec} ours, {what} ({grid} directions)", median_ms(lambda: finder(x), repeat)))
        rows.append((f"{spec} pyroomacoustics SRP, same directions",
                     median_ms(lambda: pyroomacoustics_srp(x, geometry.mic_positions_m, finder.directions, rate),
                               max(3, repeat // 5))))
    pair = rng.standard_normal((2, n))
    rows.append(("GCC-PHAT pair, ours (upsample 16)", median_ms(lambda: gcc_phat(pair[0], pair[1], rate, 0.2 / 343),
                                                                 repeat)))
    from pyroomacoustics.experimental.localization import tdoa
    rows.append(("GCC-PHAT pair, pyroomacoustics tdoa (interp 16)",
                 median_ms(lambda: tdoa(pair[0], pair[1], interp=16, fs=rate), repeat)))
    stereo = pair.astype(np.float32)
    nfft = default_nfft(rate)
    rows.append((f"STFT {nfft}/{nfft // 2} stereo: ours (strided, scipy float32)",
                 median_ms(lambda: stft(stereo, nfft), repeat)))

    def numpy_stft():
        index = np.arange(nfft)[None, :] + nfft // 2 * np.arange(1 + (n - nfft) // (nfft // 2))[:, None]
        return np.fft.rfft(pair[:, index] * np.hanning(nfft), axis=-1)

    rows.append((f"STFT {nfft}/{nfft // 2} stereo: numpy float64 (copied frames)", median_ms(numpy_stft, repeat)))
    steer, vector = rng.standard_normal((1476, 320)), rng.standard_normal(1476)
    rows.append(("steering product 1476x320: einsum (ours)", median_ms(lambda: np.einsum("k,kg->g", vector, steer),
                                                                       repeat)))
    rows.append(("steering product 1476x320: numpy @ (OpenBLAS)", median_ms(lambda: vector @ steer, repeat)))
    # A map like a model's: three movers' blobs on a faint background, and a column likelihood.
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    blobs = sum(np.exp(-(((xx - cx) / (w / 12)) ** 2 + ((yy - h * 0.6) / (h / 8)) ** 2))
                for cx in (0.2 * w, 0.5 * w, 0.8 * w))
    maps = (blobs + 0.05 * rng.random((h, w)))[None].astype(np.float32)
    likelihood = np.clip(1 - np.abs(np.arange(w) - 0.5 * w) / (0.1 * w), 0, 1).astype(np.float32)
    rows.append((f"fusion of a {w}x{h} map: by region (the default)",
                 median_ms(lambda: fuse(maps, likelihood, 0.5), repeat)))
    rows.append((f"fusion of a {w}x{h} map: pixel by pixel", median_ms(lambda: fuse(maps, likelihood), repeat)))
    return rows


def accuracy_rows(rates, arrays, window_s: float, hw: tuple[int, int], sources: int, snrs) -> list[tuple]:
    """(array, rate Hz, SNR dB, median |error|, 90th percentile |error|) in degrees."""
    rows = []
    for spec in arrays:
        geometry = preset_geometry(spec)
        half = geometry.hfov_deg / 2 - 2
        for rate in rates:
            finder = DirectionFinder(geometry, hw, rate, window_s=window_s)
            n, lead = round((window_s + 0.1) * rate), round(0.1 * rate)  # lead: the sound has reached every mic
            for snr in snrs:
                rng = np.random.default_rng(1)
                errors = []
                for az in np.linspace(-half, half, sources):
                    source = 10 * np.array([math.sin(math.radians(az)), 0.0, math.cos(math.radians(az))])
                    signal = rng.standard_normal(n)
                    direct = render_array([(signal, source)], rate, geometry.mic_positions_m, 0.0, rng)
                    rms = math.sqrt(np.mean(direct[:, lead:] ** 2)) * 10 ** (-snr / 20)
                    heard = render_array([(signal, source)], rate, geometry.mic_positions_m, rms, rng)
                    errors.append(abs(finder(heard[:, lead:]).azimuth_deg - az))
                rows.append((spec, rate, snr, float(np.median(errors)), float(np.percentile(errors, 90))))
    return rows


def score_rows(arrays, window_s: float, hw: tuple[int, int], windows: int, rate: int = 48000) -> list[tuple]:
    """(array, negatives, AP of coherence, AP of sharpness) for negatives "quiet", "off-screen", "both"."""
    from training.metrics import average_precision

    rows = []
    for spec in arrays:
        geometry = preset_geometry(spec)
        finder = DirectionFinder(geometry, hw, rate, window_s=window_s)
        mics, n = geometry.mic_positions_m, round(window_s * rate)
        rng = np.random.default_rng(5)
        found = []
        for kind in ("in", "quiet", "off-screen") * windows:
            noise_only = render_array([(np.zeros(n), np.array([0.0, 0.0, 10.0]))], rate, mics, 1.0, rng)
            if kind == "quiet":
                heard = noise_only
            else:
                az = rng.uniform(-43, 43) if kind == "in" else rng.choice([-1, 1]) * rng.uniform(55, 90)
                where = rng.uniform(8, 25) * np.array([math.sin(math.radians(az)), 0.0, math.cos(math.radians(az))])
                signal = np.cumsum(rng.standard_normal(n)) * 0.02 + rng.standard_normal(n)  # low-heavy, as engines
                direct = render_array([(signal, where)], rate, mics, 0.0, rng)
                rms = math.sqrt(np.mean(direct ** 2)) * 10 ** (-rng.uniform(-5, 15) / 20)
                heard = direct + noise_only * rms
            estimate = finder(heard)
            found.append((kind, estimate.coherence, estimate.sharpness))
        for negatives in ("quiet", "off-screen", "both"):
            chosen = [f for f in found if f[0] == "in" or negatives in ("both", f[0])]
            positive = [f[0] == "in" for f in chosen]
            ap = [average_precision(positive, [1.0] * len(chosen), [f[k] for f in chosen]) for k in (1, 2)]
            rows.append((spec, negatives, *ap))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=48000, help="audio rate in Hz (default 48000)")
    parser.add_argument("--window", type=float, default=0.5, help="seconds of audio per map (default 0.5)")
    parser.add_argument("--size", type=wxh_arg(16), default=(180, 320), metavar="WxH",
                        help="map size, width x height in pixels (default 320x180, the live flow size)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between timed calls (default 0.05)")
    parser.add_argument("--sources", type=int, default=20, help="random sources per array and SNR (default 20)")
    parser.add_argument("--snr", type=float, nargs="+", default=[20.0, 10.0, 0.0])
    parser.add_argument("--rates", type=int, nargs="+", default=[16000, 48000],
                        help="audio rates (Hz) of the accuracy table (default 16000 48000)")
    parser.add_argument("--arrays", nargs="+", default=list(ACCURACY_ARRAYS),
                        help="--mics presets of the accuracy table (default stereo:0.2 square:0.2)")
    parser.add_argument("--accuracy-only", action="store_true", help="print the accuracy table only")
    parser.add_argument("--score-check", action="store_true",
                        help="print only the AP of the direction's coherence and sharpness as sounding scores")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"CPU: {timing.cpu_name()}, {os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.score_check:
        print(f"| array | negatives | AP coherence | AP sharpness |   ({args.sources} windows of each kind)")
        print("|---|---|---|---|")
        for spec, negatives, coherence, sharp in score_rows(args.arrays, args.window, args.size, args.sources):
            print(f"| {spec} | {negatives} | {coherence:.3f} | {sharp:.3f} |")
        return
    rates = "/".join(str(r) for r in args.rates) if args.accuracy_only else args.rate
    print(f"{args.window:g} s windows at {rates} Hz; map {args.size[1]}x{args.size[0]}; hfov 90 degrees"
          + ("\n" if args.accuracy_only else f"; {args.pause:g} s between timed calls\n"))
    if not args.accuracy_only:
        print(f"{'step':<58} {'ms/call':>8}")
        for what, ms in speed_rows(args.rate, args.window, args.size, args.repeat, args.pause):
            print(f"{what:<58} {ms:>8.2f}")
        print()
    print(f"| array | rate Hz | SNR dB | median abs error deg | p90 abs error deg |   ({args.sources} azimuths "
          "across the field of view each)")
    print("|---|---|---|---|---|")
    for spec, rate, snr, median, p90 in accuracy_rows(args.rates, args.arrays, args.window, args.size, args.sources,
                                                      args.snr):
        print(f"| {spec} | {rate} | {snr:g} | {median:.2f} | {p90:.2f} |")
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
