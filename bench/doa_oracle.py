"""How far fusing a direction can take a model's maps: an upper bound with a perfect direction.

    PYTHONPATH=$PWD .venv/bin/python bench/doa_oracle.py --data data/loud1_test \\
        --flow-cache data/flowcache_loud1_test --model assets/models/flowgrad_en.ckpt

On every positive evaluation pair of a synthetic array set (training.synth; the Urbansas
layout with annotations/array.json), the model's maps (its default flow input, as
training.evaluate feeds it) are scored as they are, fused with the direction heard (the
``+doa`` of training.evaluate, flowgrad.spatial.with_doa), and fused with an ORACLE
likelihood instead: 1 over the columns of the sounding vehicles' boxes, 0 elsewhere, i.e. a
perfect azimuth of every sounding vehicle with exactly its width, by region (the shipped
fusion, FUSION_REGION_LEVEL) and pixel by pixel. The last row fuses with the boxes
themselves: the ceiling of any fusion that only reweights the map. Prints a Markdown table of
success at cIoU 0.5 and 0.3 (maps binarised at 0.5) and each row's ratio at cIoU 0.5 to the
maps without direction.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from flowgrad.spatial.fusion import fuse
from flowgrad.spatial.with_doa import FUSION_REGION_LEVEL
from training.data import collate
from training.data.flowcache import FlowCache
from training.evaluate import (BENCHMARKS, EvaluateError, _Doa, _read, array_geometry, data_config, open_localiser,
                               pair_ciou)

ROWS = ("without direction", "heard direction (+doa)", "oracle direction, by region (the fusion)",
        "oracle direction, pixel by pixel", "the boxes themselves (any reweighting's ceiling)")


@torch.inference_mode()
def oracle_cious(spec: str, root: Path, cache: FlowCache, batch_size: int = 16, progress: bool = True) -> dict:
    """ROWS -> the cIoU (threshold 0.5) of each positive pair of ``root`` under model ``spec``."""
    loc = open_localiser(spec, "cpu")
    data = BENCHMARKS["urbansas"].dataset(root, data_config(loc), cache)
    doa = _Doa(array_geometry(root))
    cious = {row: [] for row in ROWS}
    for start in tqdm(range(0, len(data), batch_size), desc=loc.label, unit="batch", disable=not progress):
        indices, samples = _read(data, list(range(start, min(start + batch_size, len(data)))), False)
        if not samples:
            continue
        batch = collate(samples)
        maps, scores = loc.localise(batch, data, indices)
        heard, _, _ = doa(maps, scores, data, indices)
        gt = batch.gt.numpy()
        columns = gt.any(axis=1).astype(np.float32)  # (B, W): where the sounding vehicles are
        fused = (maps, heard, fuse(maps, columns, FUSION_REGION_LEVEL), fuse(maps, columns, None),
                 fuse(maps, gt.astype(np.float32), None))
        for row, m in zip(ROWS, fused):
            cious[row] += [pair_ciou(m[k], gt[k], 0.5) for k in range(len(indices))]
    return cious


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="an array set made by python -m training.synth")
    parser.add_argument("--flow-cache", type=Path, required=True, help="flow cache directory (made if absent)")
    parser.add_argument("--model", required=True, help="a model spec, as training.evaluate's --model (no +doa)")
    args = parser.parse_args(argv)
    if not (args.data / "annotations" / "array.json").is_file():
        print(f"error: {args.data} has no annotations/array.json (make it with python -m training.synth)",
              file=sys.stderr)
        return 2
    try:
        cious = oracle_cious(args.model, args.data, FlowCache(args.flow_cache))
    except EvaluateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    base = np.mean(np.array(cious[ROWS[0]]) >= 0.5)
    print(f"\n{args.model} on {args.data} ({len(cious[ROWS[0]])} positive pairs)\n")
    print("| maps | success @ cIoU 0.5 | success @ cIoU 0.3 | x without direction @ 0.5 |")
    print("|---|---|---|---|")
    for row, c in cious.items():
        s5, s3 = np.mean(np.array(c) >= 0.5), np.mean(np.array(c) >= 0.3)
        ratio = f"{s5 / base:.2f}" if base > 0 else "-"
        print(f"| {row} | {s5:.3f} | {s3:.3f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
