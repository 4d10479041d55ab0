"""``python -m training.calibrate CKPT --data ROOT [--out CKPT2]``: calibrate a model's sounding score.

Positives are the benchmark's evaluation pairs (the pairs ``training.evaluate``
scores, read the same way). Negatives (``--negatives``):

* ``evaluation`` (the default for sets with sound events, urbansas): exactly the
  negative pairs ``training.evaluate --negatives`` counts: the 2 fps times with no
  on-screen vehicle sound (no-event), every positive frame with digital silence, and
  with the audio of a time where no vehicle sounds (swapped);
* ``other-clip`` (the default for still-frame sets, which have no sound events): the
  positive frames with digital silence and with the audio of a pair from another clip
  (swapped), which may hold another vehicle: a model that hears "a vehicle" cannot
  tell it from the frame's own, so this fit sets the 0.5 point high.

The model's raw ``sounding_evidence`` of every pair is fitted with Platt scaling
(:func:`flowgrad.calibration.fit_platt`), each class (positives, negatives)
weighing half, so the score is the probability of "sounding" under an even
prior. The fitted scale and bias go into the model's buffers and the
checkpoint is written atomically (in place unless ``--out``), its meta keeping
what it had plus ``score_calibration`` (data, counts, scale, bias).

Prints a table: examples of each kind, their evidence and scores before and after,
the fitted scale and bias, the Brier score before and after and the AUROC of the
evidence of positives against each kind of negative. Bad input (a missing folder,
a file that is not a checkpoint, a model without audio, a set without pairs, a
set that cannot be fitted) is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from flowgrad import checkpoint
from flowgrad.calibration import auroc, brier
from flowgrad.errors import InputError, one_line

from .benchmarks import BENCHMARKS
from .calibration_pairs import CalibrationPairs, calibration_pairs, kind_pairs, model_hooks
from .calibration_pairs import fit as calibration_pairs_fit
from .data import DataConfig, DataError
from .data.flowcache import FlowCache
from .data.pairs import EvalPairs

NEGATIVES = ("evaluation", "other-clip")


class CalibrateError(InputError):
    """Bad arguments, model or data (exit status 2)."""


def collect_pairs(model, data, batch_size: int = 8, device: str = "cpu", show: bool = False,
                  still: bool = False, seed: int = 0) -> CalibrationPairs:
    """The model's raw evidence for every pair of ``data``: an :class:`EvalPairs` with negatives
    gives each pair with its own kind (training.calibration_pairs.kind_pairs); any other
    benchmark dataset gives each pair with its own audio (positive), digital silence and another
    clip's audio (swapped), as at the end of training. still: a still-frame set, whose
    unreadable pairs are counted and passed over (a video set's stop the run, as in
    training.evaluate)."""
    model = model.to(device).eval()
    evidence, _, _ = model_hooks(model)

    def unreadable(e: DataError) -> None:
        if not still:
            raise CalibrateError(str(e)) from None
        data.count_unreadable(str(e))

    with torch.inference_mode():
        if isinstance(data, EvalPairs):
            pairs = kind_pairs(data, evidence, batch_size, device, unreadable, show)
        else:
            pairs = calibration_pairs(data, None, evidence, batch_size, seed, device, unreadable, show)
    if not pairs.kind:
        raise CalibrateError(f"no evaluation pair could be read ({data.skipped})")
    return pairs


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def fit(pairs: CalibrationPairs, model) -> tuple[float, float, dict]:
    """(scale, bias, report) of the model's calibration fit (training.calibration_pairs.model_hooks:
    balanced Platt scaling); report holds the table's figures."""
    scale, bias = calibration_pairs_fit(pairs, model_hooks(model)[1])
    x, y = pairs.evidence.double().numpy(), pairs.labels.numpy() > 0.5
    kind = np.asarray(pairs.kind)
    report = {"kinds": {}, "brier_before": brier(_sigmoid(x), y), "brier_after": brier(_sigmoid(scale * x + bias), y)}
    pos = x[kind == "positive"]
    for k in pairs.counts():
        e = x[kind == k]
        report["kinds"][k] = {"n": len(e), "mean": float(e.mean()), "sd": float(e.std()),
                              "before": float(_sigmoid(e).mean()), "after": float(_sigmoid(scale * e + bias).mean()),
                              "below_half": float((_sigmoid(scale * e + bias) < 0.5).mean()),
                              "auroc": None if k == "positive" else auroc(pos, e)}
    return scale, bias, report


def table(report: dict, scale: float, bias: float) -> str:
    """The report as a Markdown table and two summary lines."""
    lines = ["| examples | n | evidence mean ± sd | score before | score after | score < 0.5 | AUROC vs positives |",
             "|---|---|---|---|---|---|---|"]
    for k, r in report["kinds"].items():
        auc = "-" if r["auroc"] is None else f"{r['auroc']:.3f}"
        lines.append(f"| {k} | {r['n']} | {r['mean']:.4f} ± {r['sd']:.4f} | {r['before']:.3f} | {r['after']:.3f} "
                     f"| {r['below_half']:.2f} | {auc} |")
    lines.append("")
    lines.append(f"fitted: scale {scale:.4f}, bias {bias:.4f} (score = sigmoid(scale * evidence + bias); "
                 "positives and negatives weigh half each)")
    lines.append(f"Brier score: {report['brier_before']:.4f} before (uncalibrated), {report['brier_after']:.4f} after")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="a flowgrad checkpoint of a model that uses audio")
    p.add_argument("--data", required=True, help="the benchmark's folder (as training.evaluate --data)")
    p.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="urbansas", help="reader of --data (urbansas)")
    p.add_argument("--negatives", choices=NEGATIVES, default=None,
                   help="evaluation: the negatives training.evaluate --negatives counts (default for urbansas); "
                        "other-clip: silence and another clip's audio (default for still-frame sets)")
    p.add_argument("--out", type=Path, default=None, help="write the calibrated checkpoint here (default: in place)")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per inference batch (8)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--flow-cache", default=None, help="folder caching flow between runs (default: a temporary one)")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    show = sys.stderr.isatty()
    out = args.out or Path(args.checkpoint)
    try:
        if not Path(args.data).is_dir():
            raise CalibrateError(f"{args.data}: no such folder")
        if args.batch_size < 1:
            raise CalibrateError(f"--batch-size must be at least 1, got {args.batch_size}")
        model = checkpoint.load(args.checkpoint)
        if not model.uses_audio:
            raise CalibrateError(f"{args.checkpoint}: {model.name} has no audio: its score is a constant 1 and "
                                 "takes no calibration")
        meta = checkpoint.read_meta(args.checkpoint)["meta"]
        benchmark = BENCHMARKS[args.benchmark]
        negatives = args.negatives or ("other-clip" if benchmark.still else "evaluation")
        if negatives == "evaluation" and benchmark.still:
            raise CalibrateError(f"--negatives evaluation needs clips with sound events (urbansas), "
                                 f"not {args.benchmark}")
        with tempfile.TemporaryDirectory() as tmp:
            config = DataConfig(audio_rate=model.audio_rate, audio_seconds=model.audio_seconds)
            cache = FlowCache(Path(args.flow_cache or tmp))
            data = (EvalPairs(Path(args.data), config, cache, negatives=True) if negatives == "evaluation"
                    else benchmark.dataset(Path(args.data), config, cache))
            if len(data) == 0 or (negatives == "evaluation" and data.kind_counts()["positive"] == 0):
                raise CalibrateError(f"{args.data}: no {benchmark.title} evaluation pairs "
                                     f"({data.skipped or 'none selected by the annotations'})")
            pairs = collect_pairs(model, data, args.batch_size, args.device, show, benchmark.still)
        try:
            scale, bias, report = fit(pairs, model)
        except ValueError as e:
            raise CalibrateError(f"{args.data}: cannot calibrate {model.name}: {one_line(e)}") from None
        model.set_score_calibration(scale, bias)
        counts = {k: r["n"] for k, r in report["kinds"].items()}
        meta["score_calibration"] = {"data": str(args.data), "benchmark": args.benchmark, "counts": counts,
                                     "negatives": negatives, "scale": scale, "bias": bias,
                                     "method": "platt, balanced classes"}
        checkpoint.save(out, model.cpu(), **meta)
    except InputError as e:  # CalibrateError, checkpoints, annotations, media
        print(f"calibrate: error: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable --out
        print(f"calibrate: error: {out}: cannot write it: {one_line(e.strerror or e)}", file=sys.stderr)
        return 2
    if "swapped" not in report["kinds"]:
        print("calibrate: no swapped-audio negatives (one clip only, or no time where no vehicle sounds)",
              file=sys.stderr)
    print(f"{model.name} ({args.checkpoint}) on {args.data}, negatives: {negatives}:\n")
    print(table(report, scale, bias))
    print(f"calibrate: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
