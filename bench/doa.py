"""Direction of arrival: time per map (ours vs pyroomacoustics) and azimuth error by SNR.

    .venv/bin/python bench/doa.py [--rate 48000] [--window 0.5] [--size 320x180] [--repeat 20] [--sources 20]

Speed: ms per direction map of one window (--window s of --rate Hz audio): the
DirectionFinder's SRP-PHAT over the image's columns (stereo:0.2) or a grid of pixels
(square:0.1), the same directions through pyroomacoustics' SRP, GCC-PHAT of a pair
(ours and pyroomacoustics' experimental tdoa), and the two steps flowgrad.spatial.srp
chose its own way for (STFT, steering product). Calls are spaced by --pause s, as maps
are in live use (back to back, OpenBLAS keeps its threads spinning and looks faster than
it is there). The live budget is 5 ms per map on 2 cores.
Accuracy: median and 90th-percentile |azimuth error| in degrees of single noise sources
at random azimuths inside the picture, 10 m away, rendered by training.synth.spatial
with diffuse noise at each SNR.
"""
from __future__ import annotations

import argparse
import math
import os

import numpy as np

from flowgrad.sizes import wxh_arg
from flowgrad.spatial.doa import DirectionFinder
from flowgrad.spatial.gcc import gcc_phat
from flowgrad.spatial.geometry import preset_geometry
from flowgrad.spatial.srp import default_nfft, pyroomacoustics_srp, stft
from training.synth.spatial import diffuse_noise, render_moving_source
import timing  # bench/ is on sys.path when run as a script

ARRAYS = ("stereo:0.2", "square:0.1")


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
    return rows


def accuracy_rows(rate: int, window_s: float, hw: tuple[int, int], sources: int, snrs) -> list[tuple]:
    """(array, SNR dB, median |error|, 90th percentile |error|) in degrees."""
    rows = []
    for spec in ARRAYS:
        geometry = preset_geometry(spec)
        finder = DirectionFinder(geometry, hw, rate, window_s=window_s)
        half = geometry.hfov_deg / 2 - 2
        rng = np.random.default_rng(1)
        for snr in snrs:
            errors = []
            for _ in range(sources):
                az = rng.uniform(-half, half)
                source = 10 * np.array([math.sin(math.radians(az)), 0.0, math.cos(math.radians(az))])
                n = round((window_s + 0.1) * rate)
                direct = render_moving_source(rng.standard_normal(n), rate, source, geometry.mic_positions_m)
                lead = round(0.1 * rate)  # the sound has reached every microphone
                rms = math.sqrt(np.mean(direct[:, lead:] ** 2)) * 10 ** (-snr / 20)
                heard = direct + diffuse_noise(n, rate, geometry.mic_positions_m, rms, rng)
                errors.append(abs(finder(heard[:, lead:]).azimuth_deg - az))
            rows.append((spec, snr, float(np.median(errors)), float(np.percentile(errors, 90))))
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
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"CPU: {timing.cpu_name()}, {os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{args.window:g} s windows at {args.rate} Hz; map {args.size[1]}x{args.size[0]}; hfov 90 degrees; "
          f"{args.pause:g} s between timed calls\n")
    print(f"{'step':<58} {'ms/call':>8}")
    for what, ms in speed_rows(args.rate, args.window, args.size, args.repeat, args.pause):
        print(f"{what:<58} {ms:>8.2f}")
    print(f"\n{'array':<12} {'SNR dB':>6} {'median |err| deg':>17} {'p90 |err| deg':>14}   ({args.sources} sources each)")
    for spec, snr, median, p90 in accuracy_rows(args.rate, args.window, args.size, args.sources, args.snr):
        print(f"{spec:<12} {snr:>6g} {median:>17.2f} {p90:>14.2f}")
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
