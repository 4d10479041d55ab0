"""The evaluation benchmarks: which reader, ground-truth rule, map binarisation and
published figures go with each (REFERENCE section 6; the papers in shared/papers).

- ``urbansas``: Urbansas layout (training.data.urbansas); binary union of boxes;
  maps binarised at 0.5 (FlowGrad's code); FlowGrad's Table 1 beside ours (its
  code reports success at cIoU 0.3).
- ``flickr``: Flickr-SoundNet test (training.data.flickr); soft consensus gt;
  maps binarised at their median (LVS / Hear The Flow code); success at cIoU 0.5.
- ``vggss``: VGG-SS test (training.data.vggss); binary union gt; median; 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from .data import DataConfig, UrbansasEval
from .data.flickr import FlickrSoundNetEval
from .data.vggss import VGGSSEval

MEDIAN = "median"


@dataclass(frozen=True)
class Published:
    """One published result: method, what it was trained on, success at cIoU ``at``, AUC."""

    method: str
    trained_on: str
    success: float
    auc: float


@dataclass(frozen=True)
class Benchmark:
    """How one benchmark is evaluated.

    dataset(root, config, cache) -> a Dataset of Samples with gt.
    map_rule: a threshold in (0, 1) or MEDIAN (training.metrics.binarise_median).
    paper_at: the success threshold on cIoU the published figures use.
    still: True for single-frame sets (no clip timeline; the detector baseline does not apply).
    """

    name: str
    title: str
    dataset: Callable[[Path, DataConfig, object], object]
    map_rule: Union[float, str]
    paper_at: float
    source: str
    published: tuple[Published, ...]
    still: bool


_HTF = "Hear The Flow (WACV 2023) poster"
BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark(
        "urbansas", "Urbansas", lambda root, config, cache: UrbansasEval(root, config, cache=cache),
        # FlowGrad's Table 1 column "IoU (tau = 0.5)": tau is the map threshold; its
        # evaluation code (compute_metrics) reports the success rate at cIoU 0.3.
        0.5, 0.3, "FlowGrad, Table 1 (map threshold 0.5)", (
            Published("Vision-only+CF+TF (topline)", "COCO (supervised)", 0.68, 0.51),
            Published("Optical flow only", "-", 0.33, 0.23),
            Published("RCGrad", "VGGSound", 0.16, 0.13),
            Published("FlowGrad-H", "VGGSound", 0.50, 0.30),
            Published("FlowGrad-IC", "Urbansas", 0.26, 0.18),
            Published("FlowGrad-EN", "Urbansas", 0.37, 0.23),
        ), still=False),
    Benchmark(
        "flickr", "Flickr-SoundNet test", lambda root, config, cache: FlickrSoundNetEval(root, config, cache=cache),
        MEDIAN, 0.5, f"{_HTF}, Flickr-SoundNet table", (
            Published("Attention", "Flickr 10k", 0.436, 0.449),
            Published("CoarseToFine", "Flickr 10k", 0.522, 0.496),
            Published("AVObject", "Flickr 10k", 0.546, 0.504),
            Published("LVS*", "Flickr 10k", 0.730, 0.578),
            Published("SSPL", "Flickr 10k", 0.743, 0.587),
            Published("HTF", "Flickr 10k", 0.860, 0.634),
            Published("Attention", "Flickr 144k", 0.660, 0.558),
            Published("DMC", "Flickr 144k", 0.671, 0.568),
            Published("LVS*", "Flickr 144k", 0.702, 0.588),
            Published("LVS\u2020", "Flickr 144k", 0.697, 0.560),
            Published("HardPos", "Flickr 144k", 0.762, 0.597),
            Published("SSPL", "Flickr 144k", 0.759, 0.610),
            Published("HTF", "Flickr 144k", 0.865, 0.639),
            Published("LVS*", "VGGSound 144k", 0.719, 0.587),
            Published("HardPos", "VGGSound 144k", 0.768, 0.592),
            Published("SSPL", "VGGSound 144k", 0.767, 0.605),
            Published("HTF", "VGGSound 144k", 0.848, 0.640),
        ), still=True),
    Benchmark(
        "vggss", "VGG-SS test", lambda root, config, cache: VGGSSEval(root, config, cache=cache),
        MEDIAN, 0.5, f"{_HTF}, VGG-SS table", (
            Published("Attention", "VGGSound 10k", 0.160, 0.283),
            Published("LVS*", "VGGSound 10k", 0.297, 0.358),
            Published("SSPL", "VGGSound 10k", 0.314, 0.369),
            Published("HTF", "VGGSound 10k", 0.393, 0.398),
            Published("Attention", "VGGSound 144k", 0.185, 0.302),
            Published("AVObject", "VGGSound 144k", 0.297, 0.357),
            Published("LVS*", "VGGSound 144k", 0.301, 0.361),
            Published("LVS\u2020", "VGGSound 144k", 0.288, 0.359),
            Published("HardPos", "VGGSound 144k", 0.346, 0.380),
            Published("SSPL", "VGGSound 144k", 0.339, 0.380),
            Published("HTF", "VGGSound 144k", 0.394, 0.400),
        ), still=True),
)}


def published_table(benchmark: Benchmark) -> str:
    """The benchmark's published figures as a Markdown table."""
    at = f"{benchmark.paper_at:g}"
    lines = [f"Published ({benchmark.source}):", "",
             f"| method | trained on | success @ cIoU {at} | AUC |", "|---|---|---|---|"]
    lines += [f"| {p.method} | {p.trained_on} | {p.success:.3f} | {p.auc:.3f} |" for p in benchmark.published]
    return "\n".join(lines)
