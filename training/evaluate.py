"""``python -m training.evaluate``: the papers' localisation metrics on a benchmark.

    python -m training.evaluate --data synth_test/ --model runs/en/best.ckpt --model flow_only
    python -m training.evaluate --data urbansas/ --model flowgrad_h:runs/rc/best.ckpt \\
        --model detector:yolo.onnx --json results.json --plots plots/
    python -m training.evaluate --benchmark flickr --data flickr_test/ --model runs/htf/best.ckpt
    python -m training.evaluate --benchmark vggss --data vggss_test/ --model runs/htf/best.ckpt

Benchmarks (``--benchmark``; readers and folder layouts in training/data/):
urbansas (default: Urbansas layout, binary box union, maps binarised at 0.5),
flickr (Flickr-SoundNet test: soft consensus of the annotators' boxes) and
vggss (VGG-SS test: binary box union); the last two binarise each map at its
median, as the LVS / Hear The Flow evaluation code. The published figures of
the benchmark's paper are printed after ours.

Models (``--model``, repeatable): a ``.ckpt`` checkpoint, an ONNX export (its
``.frame.onnx`` or prefix), a registry name (``flow_only``; the names of
models with weights mean random, untrained weights and need ``--untrained``),
``flowgrad_h:RCGRAD.ckpt`` (FlowGrad-H built on a trained
RCGrad) or ``detector:DETECTOR.onnx`` (the vision-only + class filter +
temporal filter baseline; detector output format in training/detector.py).

Flow (docs/RESULTS.md has the measurements): camera shake is removed from every flow pair
(``--no-stabilise`` keeps it; fallbacks, pairs whose background could not be fitted, are
printed). A model can be fed the 5-second motion memory (flowgrad.flow.memory, made of the
pairs over the 5 s before each evaluation time) instead of one pair: append ``+memory`` to
its spec (``flow_only+memory``, ``flowgrad_h:RCGRAD.ckpt+memory``), or ``+nomemory`` to
turn off a model's default (the models with ``motion_memory = True``: flow_only and flowgrad_h);
``--motion-memory on|off`` sets it for every model. A model's label says ``+memory`` or ``+nomemory``
where its flow input is not its default.

Direction (docs/SPATIAL.md): ``+doa`` after a spec (``flow_only+doa``, ``CKPT+doa``,
``flowgrad_h:RCGRAD.ckpt+doa+memory``; flowgrad.spec) multiplies each map by the direction
heard by the dataset's microphones (flowgrad.spatial.with_doa; an ONNX export made as
``MODEL+doa`` is fused without the suffix), found from the 0.5 s of
every channel of the clip's wav, at its own rate, centred on the pair's time. The geometry is
DATA/annotations/array.json (written by python -m training.synth, or a --mics file put
there); each wav needs one channel per microphone. Silence pairs are heard as zeros (the
map is left as it was), swapped pairs with the donor's channels; each pair record gains
azimuth_deg.

Per model (the FlowGrad and Hear The Flow papers' protocols): cIoU of each evaluation pair with the map
binarised by ``--map-threshold`` (the benchmark's rule); the success rate at cIoU 0.5 (RCGrad,
LVS, Hear The Flow) and at 0.3 (FlowGrad's code), the AUC of the success rate
over cIoU thresholds 0..1 and the number of pairs, printed as a table like
the FlowGrad paper's Table 1. ``--plots`` writes success rate against cIoU
threshold (``success_curve.png``) and a grid of example overlays
(``examples.png``).

Listening (``--negatives``, urbansas layout only): negative pairs are added
(training.data.pairs: no-event times with their own audio, every positive frame
with digital silence and with the audio of a time where no vehicle sounds) and each
model's score (its confidence that a visible source sounds; 1 for models without one)
ranks all pairs for SLAVC's AP and max-F1 (training.metrics); the false-positive
rate is the share of negatives whose score reaches the live default 0.5 (below it a
map is shown quiet). ``--by-case`` adds a row per case of DATA/annotations/cases.json
(training.cases). The JSON holds, per model, ``"pairs"``: one record per pair with
clip, time, positive, kind (positive, no-event, silence, swapped), case (null
without a cases file), ciou (null for no-event pairs) and score.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from flowgrad import checkpoint
from flowgrad import engine as engines
from flowgrad import models as fg_models
from flowgrad.errors import InputError, one_line
from flowgrad.flow.memory import MEMORY_SECONDS, default_for
from flowgrad.spatial.doa import DEFAULT_WINDOW_S
from flowgrad.spatial.geometry import ArrayGeometry, load_geometry
from flowgrad.spatial.with_doa import WithDoa
from flowgrad.spec import parse_spec

from . import cases as case_file
from . import metrics, pair_report
from .benchmarks import BENCHMARKS, MEDIAN, Benchmark, published_table
from .data import DataConfig, DataError, collate
from .data.pairs import EvalPairs, array_window
from .data.flowcache import FlowCache
from .data.windows import FlowCounts
from .data.media import read_frames
from .detector import OnnxDetector, baseline_map

EXAMPLES = 6  # overlays per model in examples.png
ARRAY_FILE = "array.json"  # DATA/annotations/: the microphone geometry +doa needs


class EvaluateError(InputError):
    """Bad arguments or data (exit status 2)."""


@dataclass
class Localiser:
    """What evaluation needs of a model: a label, its audio window, and maps with scores for a batch.

    localise(batch, dataset, indices) -> (maps (B, 224, 224) float32 in [0, 1],
    scores (B,) float32 in [0, 1]: the model's confidence that a visible source sounds).
    motion_memory: feed it the motion memory instead of one flow pair.
    doa: fuse its maps with the direction heard (``+doa``; :func:`evaluate_pairs` does it).
    """

    label: str
    audio_rate: int
    audio_seconds: float
    localise: Callable
    motion_memory: bool = False
    name: str = ""
    doa: bool = False


def _engine_localiser(label: str, eng) -> Localiser:
    def localise(batch, dataset, indices):
        emb = eng.embed_audio(batch.wave.numpy()) if eng.uses_audio else None
        maps, scores = eng.localise(batch.frame.numpy(), batch.flow.numpy(), emb)
        return maps, np.asarray(scores, np.float32)
    return Localiser(label, eng.audio_rate, eng.audio_seconds, localise, name=eng.name, doa=eng.wants_doa)


def _detector_localiser(label: str, path: str, interval_s: float = 0.5) -> Localiser:
    """The baseline on the frame at t and the next annotated frame (2 fps: t + 0.5 s)."""
    detector = OnnxDetector(path)

    def localise(batch, dataset, indices):
        out = []
        for index in indices:
            item = dataset.items[index]
            video = dataset.sources[item.source].video
            (_, f0), (_, f1) = read_frames(video, [item.t, item.t + interval_s])
            out.append(baseline_map(detector(f0), detector(f1), video.frame_hw, out=dataset.config.input_size[0]))
        return np.stack(out).astype(np.float32), np.ones(len(out), np.float32)  # vision only: no confidence
    return Localiser(label, 16000, 1.0, localise)


def as_reference(model, spec: str):
    """``model`` with the published post-processing (``model.reference_twin()``: for the FlowGrad
    family a copy with ``reference=True``: median clean, raw flow product, per-clip audio BatchNorm;
    the same weights). EvaluateError for a model without a reference mode."""
    twin = model.reference_twin()
    if twin is None:
        raise EvaluateError(f"{spec}: {model.name} has no reference mode (only the FlowGrad family has one)")
    return twin


def _derived(spec: str):
    """(registry class, checkpoint path) for a ``NAME:CKPT`` spec of a model built from another's
    weights (``derived_from``, e.g. flowgrad_h:RCGRAD.ckpt), else None."""
    name, sep, path = spec.partition(":")
    if sep and name in fg_models.names() and fg_models.model_class(name).derived_from:
        return fg_models.model_class(name), path
    return None


def open_localiser(spec: str, device: str, reference: bool = False, allow_untrained: bool = False,
                   motion_memory: Optional[bool] = None) -> Localiser:
    """A :class:`Localiser` for one ``--model`` value (flowgrad.spec: ``BASE[+doa][+memory|+nomemory]``);
    EvaluateError when it cannot be opened.

    reference: run torch models with their published post-processing (:func:`as_reference`).
    allow_untrained: accept a registry name of a model with weights (random weights).
    motion_memory: feed every model the motion memory (True), one pair (False), or each
        its spec's ``+memory`` / ``+nomemory`` choice, else its class's default (None).
    """
    parsed = parse_spec(spec)
    loc = _open_localiser(parsed.base, device, reference, allow_untrained)
    if parsed.doa or loc.doa:  # +doa, or an export made as MODEL+doa (its engine's wants_doa)
        loc.doa, loc.label = True, f"{loc.label} +doa"
    if parsed.base.startswith("detector:"):
        return loc
    memory = motion_memory if motion_memory is not None else parsed.memory
    default = default_for(loc.name)
    memory = default if memory is None else memory
    if memory != default:  # the label names a departure from the model's default flow input
        loc.label = f"{loc.label} {'+memory' if memory else '+nomemory'}"
    loc.motion_memory = memory
    return loc


def _open_localiser(spec: str, device: str, reference: bool, allow_untrained: bool) -> Localiser:
    try:
        if spec.startswith("detector:"):
            return _detector_localiser(f"vision-only+CF+TF ({Path(spec[9:]).name})", spec[9:])
        mark = " reference" if reference else ""
        derived = _derived(spec)
        if derived is not None:
            cls, path = derived
            base = checkpoint.load(path)
            if base.name != cls.derived_from:
                raise EvaluateError(f"{path}: {cls.name} needs an {cls.derived_from} checkpoint, this is {base.name}")
            model = cls.derive(base)
            eng = engines.TorchEngine(as_reference(model, spec) if reference else model, device, source=spec)
            return _engine_localiser(f"{cls.name}{mark} ({Path(path).parent.name or path})", eng)
        eng = engines.open(spec, device=device, allow_untrained=allow_untrained)
        if reference:
            if not isinstance(eng, engines.TorchEngine):
                raise EvaluateError(f"{spec}: --reference needs a checkpoint or registry name (an ONNX export "
                                    "is fixed at export time: export a model built with reference=True)")
            twin = as_reference(eng.model, spec)
            if twin is not eng.model:
                eng = engines.TorchEngine(twin, device, source=spec)
        path = Path(spec)
        if spec in fg_models.names():
            label = f"{eng.name}{mark}"
        elif path.suffix == ".ckpt":
            label = f"{eng.name}{mark} ({path.parent.name or path.name})"
        else:  # an ONNX file or prefix: its name tells exports apart (e.g. en.int8)
            label = f"{eng.name} ({path.name.removesuffix('.frame.onnx').removesuffix('.onnx')})"
        return _engine_localiser(label, eng)
    except InputError as e:  # a model or detector that cannot be opened
        raise EvaluateError(str(e)) from None


def _read(data, indices: list[int], still: bool) -> tuple[list[int], list]:
    """The samples of ``indices`` that can be read. A still-frame set counts an unreadable
    entry and goes on; an Urbansas read failure (a file changed after indexing) stops."""
    kept, samples = [], []
    for i in indices:
        try:
            samples.append(data[i])
            kept.append(i)
        except DataError as e:
            if not still:
                raise EvaluateError(str(e)) from None
            data.count_unreadable(str(e))
    return kept, samples


def pair_ciou(heatmap: np.ndarray, gt: np.ndarray, map_rule) -> float:
    """cIoU of one map under a benchmark's binarisation rule (a threshold or MEDIAN).

    An empty gt scores 0 (the formula's value whenever anything is predicted).
    """
    if not gt.any():
        return 0.0
    if map_rule == MEDIAN:
        return metrics.ciou(metrics.binarise_median(heatmap), gt, 0.5)
    return metrics.ciou(heatmap, gt, map_rule)


@torch.inference_mode()
def evaluate_one(loc: Localiser, root: Path, cache: FlowCache, batch_size: int, map_rule,
                 show: bool, benchmark: Benchmark = BENCHMARKS["urbansas"],
                 stabilise: bool = True) -> tuple[dict, list[float], list[dict]]:
    """cIoUs of one model over every evaluation pair; returns (summary, cious, examples).

    map_rule: a binarisation threshold in (0, 1) or MEDIAN (see :func:`pair_ciou`).
    stabilise: remove camera shake from the flow. The summary also holds "flow_pairs" and
    "stabilise_fallbacks": the flow pairs computed in this call (not read from the cache) and
    how many of them kept their shake.
    """
    summary, cious, examples, _ = evaluate_pairs(loc, root, cache, batch_size, map_rule, show, benchmark,
                                                stabilise=stabilise)
    return summary, cious, examples


def data_config(loc: Localiser, stabilise: bool = True) -> DataConfig:
    """The data settings that feed ``loc`` its inputs: its audio rate and window, and its flow
    input (the 5 s motion memory or one pair), with camera shake removed when ``stabilise``."""
    return DataConfig(audio_rate=loc.audio_rate, audio_seconds=loc.audio_seconds, stabilise=stabilise,
                      motion_memory_s=MEMORY_SECONDS if loc.motion_memory else 0.0)


def array_geometry(root: Path) -> ArrayGeometry:
    """The microphone geometry of a dataset (ROOT/annotations/array.json, the ``--mics`` file
    format); EvaluateError (one line) when it is missing, GeometryError when it is unusable."""
    path = Path(root) / "annotations" / ARRAY_FILE
    if not path.is_file():
        raise EvaluateError(f"{path}: no microphone geometry for +doa; python -m training.synth writes it with its "
                            'clips, or put a --mics format file there ({"mic_positions_m": [[x, y, z], ...], '
                            '"hfov_deg": H})')
    return load_geometry(path)


def _check_array_channels(data, geometry: ArrayGeometry, root: Path) -> None:
    """EvaluateError naming both counts for a clip whose wav has another number of channels
    than the geometry has microphones (nothing is downmixed for direction finding)."""
    for source in data.sources:
        if source.audio.channels != geometry.channels:
            raise EvaluateError(f"{source.audio.path}: {source.audio.channels} audio channel"
                                f"{'s' * (source.audio.channels != 1)} but {root}/annotations/{ARRAY_FILE} has "
                                f"{geometry.channels} microphones; +doa needs one channel per microphone")


class _Doa:
    """The ``+doa`` of one evaluation: a WithDoa per (clip rate, map size), fed each pair's
    multichannel window (training.data.pairs.array_window)."""

    def __init__(self, geometry: ArrayGeometry, window_s: float = DEFAULT_WINDOW_S):
        self.geometry, self.window_s = geometry, window_s
        self._fusers: dict[tuple[int, tuple[int, int], tuple[int, int]], WithDoa] = {}

    def __call__(self, maps: np.ndarray, scores: np.ndarray, data,
                 indices: list[int]) -> tuple[np.ndarray, np.ndarray, list[float]]:
        """maps (B, H, W), scores (B,) of pairs ``indices`` -> (fused maps, scores, azimuths in degrees)."""
        maps, scores = np.array(maps, np.float32), np.array(scores, np.float32)
        azimuths = []
        for k, index in enumerate(indices):
            signals, rate = array_window(data, index, self.window_s)
            frame_hw = data.sources[data.items[index].source].video.frame_hw
            key = (rate, tuple(maps.shape[1:]), tuple(frame_hw))
            if key not in self._fusers:
                self._fusers[key] = WithDoa(self.geometry, key[1], rate, window_s=self.window_s, frame_hw=key[2])
            fused, score, (estimate,) = self._fusers[key](maps[k:k + 1], scores[k:k + 1], signals[None])
            maps[k], scores[k] = fused[0], score[0]
            azimuths.append(round(estimate.azimuth_deg, 2))
        return maps, scores, azimuths


def _kind(data, index: int) -> str:
    """The kind of pair ``index`` (training.data.pairs.KINDS); datasets without kinds hold positives."""
    return getattr(data.items[index], "kind", "positive") if hasattr(data, "items") else "positive"


@torch.inference_mode()
def evaluate_pairs(loc: Localiser, root: Path, cache: FlowCache, batch_size: int, map_rule, show: bool,
                   benchmark: Benchmark = BENCHMARKS["urbansas"], negatives: bool = False,
                   cases: dict | None = None, split_cases: bool = False,
                   stabilise: bool = True) -> tuple[dict, list[float], list[dict], list[dict]]:
    """One model over every evaluation pair, with ``negatives`` (urbansas only) the negative
    pairs of training.data.pairs too; returns (summary, cious of the positives, examples, pairs).

    pairs: one record per pair (training.pair_report), its case from ``cases``
    (training.cases.read; None: no cases), with ``loc.doa`` also the azimuth heard (degrees).
    ``loc.doa``: the maps are fused with the direction of DATA/annotations/array.json's array
    (:class:`_Doa`). summary: pair_report.summarise_pairs, plus
    "by_case" (pair_report.by_case) with ``split_cases``, plus "skipped".
    map_rule: a binarisation threshold in (0, 1) or MEDIAN (see :func:`pair_ciou`).
    stabilise: remove camera shake from the flow. The summary also holds "flow_pairs" and
    "stabilise_fallbacks": the flow pairs computed in this call (not read from the cache) and
    how many of them kept their shake.
    """
    if loc.doa and benchmark.still:
        raise EvaluateError(f"{loc.label}: +doa needs clips recorded by a microphone array (urbansas), not "
                            f"{benchmark.title}")
    geometry = array_geometry(root) if loc.doa else None
    config = data_config(loc, stabilise)
    data = EvalPairs(root, config, cache, negatives=True) if negatives else benchmark.dataset(root, config, cache)
    if len(data) == 0:
        raise EvaluateError(f"{root}: no {benchmark.title} evaluation pairs "
                            f"({data.skipped or 'none selected by the annotations'})")
    doa = None
    if geometry is not None:
        _check_array_channels(data, geometry, root)
        doa = _Doa(geometry)
    loader = DataLoader(range(len(data)), batch_size=batch_size, collate_fn=lambda idx: idx)
    cious: list[float] = []
    pairs: list[dict] = []
    examples: list[dict] = []
    picks = set(np.linspace(0, len(data) - 1, EXAMPLES).round().astype(int).tolist())
    for indices in tqdm(loader, desc=loc.label, disable=not show, unit="batch", leave=False):
        indices, samples = _read(data, indices, benchmark.still)
        if not samples:
            continue
        batch = collate(samples)
        maps, scores = loc.localise(batch, data, indices)
        azimuths = None
        if doa is not None:
            maps, scores, azimuths = doa(maps, scores, data, indices)
        for k, i in enumerate(indices):
            gt, kind, t = batch.gt[k].numpy(), _kind(data, i), float(batch.t[k])
            ciou = None if kind == "no-event" else pair_ciou(maps[k], gt, map_rule)  # no box, no cIoU
            pairs.append({"clip": batch.clip[k], "time": t, "positive": kind == "positive", "kind": kind,
                          "case": case_file.case_of(cases, batch.clip[k], t), "ciou": ciou,
                          "score": float(scores[k])})
            if azimuths is not None:
                pairs[-1]["azimuth_deg"] = azimuths[k]
            if kind == "positive":
                cious.append(ciou)
            if i in picks:
                mark = "" if kind == "positive" else f" {kind}"
                examples.append({"frame": batch.frame[k].numpy(), "map": maps[k], "gt": gt,
                                 "title": f"{batch.clip[k]} t={t:.1f}s{mark} cIoU {ciou or 0.0:.2f}"})
    if not cious:
        raise EvaluateError(f"{root}: no {benchmark.title} pair could be read ({data.skipped})")
    summary = pair_report.summarise_pairs(pairs, negatives)
    if split_cases:
        summary["by_case"] = pair_report.by_case(pairs, negatives)
    summary["skipped"] = data.skipped
    counts = getattr(data, "flow_counts", FlowCounts())  # still-frame sets do not count theirs
    summary["flow_pairs"], summary["stabilise_fallbacks"] = counts.pairs, counts.stabilise_fallbacks
    return summary, cious, examples, pairs


def table(results: dict[str, dict]) -> str:
    """Our figures as a Markdown table like Table 1 of the FlowGrad paper."""
    lines = ["| model | success @ cIoU 0.5 | success @ cIoU 0.3 | AUC | pairs |", "|---|---|---|---|---|"]
    for label, r in results.items():
        lines.append(f"| {label} | {r['success@0.5']:.3f} | {r['success@0.3']:.3f} | {r['auc']:.3f} | {r['n']} |")
    return "\n".join(lines)


def stabilise_line(results: dict[str, dict], stabilise: bool) -> str:
    """One line saying whether the flow was stabilised and how many pairs fell back."""
    if not stabilise:
        return "flow: camera shake kept (--no-stabilise)"
    pairs = sum(r["flow_pairs"] for r in results.values())
    falls = sum(r["stabilise_fallbacks"] for r in results.values())
    if pairs == 0:
        return "flow: camera shake removed; every flow pair came from the flow cache (fallbacks not counted)"
    return (f"flow: camera shake removed; {falls} of the {pairs} flow pairs computed in this run kept it "
            "(background not fitted: stabilise fallbacks)")


def write_plots(out: Path, curves: dict[str, list[float]], examples: dict[str, list[dict]]) -> list[Path]:
    """success_curve.png and examples.png in ``out``."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EvaluateError("--plots needs matplotlib: pip install matplotlib") from None
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, cious in curves.items():
        ax.plot(metrics.AUC_THRESHOLDS, metrics.success_curve(cious), marker=".",
                label=f"{label} (AUC {metrics.auc(cious):.2f})")
    ax.set(xlabel="cIoU threshold", ylabel="success rate", xlim=(0, 1), ylim=(0, 1),
           title="Success rate against cIoU threshold")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    curve = out / "success_curve.png"
    fig.savefig(curve, dpi=120)
    plt.close(fig)

    rows = max(1, len(examples))
    cols = max((len(v) for v in examples.values()), default=1)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for r, (label, items) in enumerate(examples.items()):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(items):
                continue
            e = items[c]
            ax.imshow(e["frame"].transpose(1, 2, 0))
            ax.imshow(e["map"], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.contour(e["gt"], levels=[0.5], colors="white", linewidths=0.8)
            ax.set_title(f"{label}\n{e['title']}" if c == 0 else e["title"], fontsize=6)
    fig.tight_layout()
    grid = out / "examples.png"
    fig.savefig(grid, dpi=110)
    plt.close(fig)
    return [curve, grid]


def _map_rule(text: str):
    if text == MEDIAN:
        return MEDIAN
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1) or 'median', got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True,
                   help="the benchmark's folder (urbansas: Urbansas layout, e.g. made by python -m training.synth)")
    p.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="urbansas",
                   help="reader, ground-truth rule, map binarisation and published figures (urbansas)")
    p.add_argument("--model", action="append", required=True, metavar="SPEC",
                   help="CKPT, ONNX, registry name, flowgrad_h:RCGRAD.ckpt or detector:DETECTOR.onnx, each with "
                        "+doa (fuse with the direction heard by DATA/annotations/array.json's microphones) and/or "
                        "+memory / +nomemory (repeatable)")
    p.add_argument("--untrained", action="store_true",
                   help="accept registry names of models with weights (random, untrained weights; without it "
                        "only flow_only is accepted by name)")
    p.add_argument("--map-threshold", type=_map_rule, default=None,
                   help="heatmap binarisation: a threshold in (0, 1) or 'median' "
                        "(default: the benchmark's: 0.5 for urbansas, median for flickr and vggss)")
    p.add_argument("--reference", action="store_true",
                   help="run checkpoints with the published post-processing (reference=True: median clean, "
                        "FlowGrad-H's raw flow product, audio BatchNorm on each clip's own statistics; "
                        "one pair per batch)")
    p.add_argument("--no-stabilise", dest="stabilise", action="store_false",
                   help="keep camera shake in the flow (default: removed from every flow pair)")
    p.add_argument("--motion-memory", choices=("auto", "on", "off"), default="auto",
                   help="feed every model the 5 s motion memory (on) or one flow pair (off); auto: each "
                        "spec's +memory / +nomemory, else the model's default")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per inference batch (8)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--flow-cache", default=None, help="folder caching flow between runs (default: a temporary one)")
    p.add_argument("--negatives", action="store_true",
                   help="urbansas only: add negative pairs (no-event times with their own audio, every positive "
                        "frame with digital silence and with swapped no-vehicle audio) and report SLAVC's AP and "
                        "max-F1 and the false-positive rate at the live threshold 0.5")
    p.add_argument("--by-case", action="store_true",
                   help="split every figure by the pairs' case (DATA/annotations/cases.json, written by "
                        "python -m training.synth; a set without it has no cases)")
    p.add_argument("--json", type=Path, default=None,
                   help="write the summaries, every positive's cIoU and every pair's record to this file")
    p.add_argument("--plots", type=Path, default=None, help="write success_curve.png and examples.png here")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    show = sys.stderr.isatty()
    results, curves, examples, records = {}, {}, {}, {}
    benchmark = BENCHMARKS[args.benchmark]
    map_rule = args.map_threshold if args.map_threshold is not None else benchmark.map_rule
    try:
        if not Path(args.data).is_dir():
            raise EvaluateError(f"{args.data}: no such folder")
        if benchmark.still and any(spec.startswith("detector:") for spec in args.model):
            raise EvaluateError(f"the detector baseline (vehicles moving between video frames) is for urbansas, "
                                f"not {args.benchmark}")
        if args.negatives and benchmark.still:
            raise EvaluateError(f"--negatives needs clips with sound events (urbansas), not {args.benchmark}")
        cases = case_file.load(Path(args.data))
        if args.by_case and cases is None:
            print(f"evaluate: note: {args.data} has no annotations/{case_file.FILENAME}: no pair has a case",
                  file=sys.stderr)
        memory = {"auto": None, "on": True, "off": False}[args.motion_memory]
        localisers = [open_localiser(spec, args.device, args.reference, args.untrained, memory)
                      for spec in args.model]
        with tempfile.TemporaryDirectory() as tmp:
            cache = FlowCache(Path(args.flow_cache or tmp))
            for loc in localisers:
                # Reference mode normalises audio with the batch's own statistics, as the
                # published code does for one clip at a time: evaluate one pair per batch.
                summary, cious, ex, pairs = evaluate_pairs(
                    loc, Path(args.data), cache, 1 if args.reference else args.batch_size, map_rule, show, benchmark,
                    negatives=args.negatives, cases=cases, split_cases=args.by_case, stabilise=args.stabilise)
                label = loc.label if loc.label not in results else f"{loc.label} #{len(results) + 1}"
                results[label], curves[label], examples[label], records[label] = summary, cious, ex, pairs
                print(f"evaluate: {label}: done ({summary['n']} pairs)", file=sys.stderr)
        plots = write_plots(args.plots, curves, examples) if args.plots else []
    except InputError as e:  # EvaluateError, unusable annotations, media, benchmark files, models
        print(f"evaluate: error: {one_line(e)}", file=sys.stderr)
        return 2
    print(f"{benchmark.title}, maps binarised at "
          f"{'their median' if map_rule == MEDIAN else map_rule}:\n")
    if args.negatives or args.by_case:
        print(pair_report.table(results, args.negatives, args.by_case))
    else:
        print(table(results))
    print()
    print(published_table(benchmark))
    print(stabilise_line(results, args.stabilise))
    skipped = {k: v["skipped"] for k, v in results.items() if v["skipped"]}
    if skipped:
        print(f"evaluate: skipped inputs: {skipped}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"data": str(args.data), "benchmark": args.benchmark, "map_threshold": map_rule,
                                         "negatives": args.negatives,
                                         "models": {k: {**results[k], "cious": curves[k], "pairs": records[k]}
                                                    for k in results}},
                                        indent=2) + "\n")
    for path in plots:
        print(f"evaluate: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
