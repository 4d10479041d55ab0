"""Fit the ``+doa`` sounding factor: Platt scaling of the direction's coherence on a dataset's pairs.

    PYTHONPATH=. .venv/bin/python bench/doa_coherence_fit.py --data data/coh_val

For every positive, no-event and silence pair of ``--data`` (training.data.pairs.EvalPairs
with negatives; swapped pairs are left out: their audio is a real source heard elsewhere),
the SRP-PHAT coherence (flowgrad.spatial.doa.DoaEstimate.coherence) of the pair's 0.5 s
multichannel window, then flowgrad.calibration.fit_platt_balanced of positives against the
negatives: the (scale, bias) that flowgrad.spatial.with_doa stores as COHERENCE_SCALE and
COHERENCE_BIAS. Prints the fit, the AUROC of coherence and the share of each kind below 0.5.
Needs no flow: only the audio is read.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from flowgrad.calibration import auroc, fit_platt_balanced, platt_probability
from flowgrad.spatial.doa import DEFAULT_WINDOW_S, DirectionFinder
from training.data.pairs import EvalPairs, array_window
from training.data.windows import DataConfig
from training.evaluate import array_geometry

MAP_HW = (224, 224)  # coherence is the SRP peak; the grid's size barely moves it


def coherences(root: Path) -> tuple[np.ndarray, list[str]]:
    """(N,) coherence and (N,) kind of each positive, no-event and silence pair of ``root``."""
    geometry = array_geometry(root)
    data = EvalPairs(root, DataConfig(), cache=None, negatives=True)
    finders: dict[tuple, DirectionFinder] = {}
    values, kinds = [], []
    for index, item in enumerate(data.items):
        if item.kind == "swapped":
            continue
        signals, rate = array_window(data, index, DEFAULT_WINDOW_S)
        frame_hw = tuple(data.sources[item.source].video.frame_hw)
        key = (rate, frame_hw)
        if key not in finders:
            finders[key] = DirectionFinder(geometry, MAP_HW, rate, likelihood="range", frame_hw=frame_hw)
        values.append(finders[key](signals).coherence)
        kinds.append(item.kind)
    return np.asarray(values), kinds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a dataset written by training.synth")
    args = parser.parse_args(argv)
    values, kinds = coherences(args.data)
    kinds = np.asarray(kinds)
    positive = kinds == "positive"
    scale, bias = fit_platt_balanced(values, positive)
    factor = platt_probability(values, scale, bias)
    print(f"pairs: {len(values)} ({', '.join(f'{k} {int((kinds == k).sum())}' for k in np.unique(kinds))})")
    print(f"COHERENCE_SCALE = {scale:.4f}\nCOHERENCE_BIAS = {bias:.4f}")
    print(f"AUROC of coherence, positives vs negatives: {auroc(values[positive], values[~positive]):.3f}")
    for kind in np.unique(kinds):
        v = values[kinds == kind]
        print(f"{kind}: coherence median {np.median(v):.3f} (10%..90% {np.quantile(v, .1):.3f}..{np.quantile(v, .9):.3f}); "
              f"factor < 0.5: {np.mean(factor[kinds == kind] < 0.5):.3f}")


if __name__ == "__main__":
    main()
