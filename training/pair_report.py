"""Figures and tables of ``training.evaluate``'s pair records (``--negatives``, ``--by-case``).

A pair record is a dict ``{"clip", "time", "positive", "kind", "case", "ciou", "score"}``:
kind one of training.data.pairs.KINDS, case a training.cases case or None, ciou the
pair's cIoU (None for a no-event pair, which has no box), score the model's
confidence that a visible source sounds (1 for models without one).
"""
from __future__ import annotations

import math
from typing import Optional

from . import metrics
from .cases import PRECEDENCE
from .data.pairs import KINDS

NO_CASE = "none"  # the by-case key of pairs without a case (a set without cases.json)
_THRESHOLD = metrics.LIVE_THRESHOLD


def _finite(value: float) -> Optional[float]:
    return None if value is None or math.isnan(value) else float(value)


def summarise_pairs(pairs: list[dict], negatives: bool) -> dict:
    """The figures of a set of pair records.

    Always, over the positives: success@0.5, success@0.3, auc (None without positives)
    and n (the number of positives). With ``negatives`` also: ap and max_f1 (SLAVC, over
    positives and negatives, ranked by score), fpr@0.5 (share of negatives whose score is
    at least the live default 0.5, i.e. not shown quiet) and fpr@0.5 per negative kind,
    positives_quiet@0.5 (share of positives shown quiet), and the negatives per kind.
    Undefined figures (no pair to compute them on) are None.
    """
    pos = [p for p in pairs if p["positive"]]
    if pos:
        out = metrics.summarise([p["ciou"] for p in pos])
    else:
        out = {"success@0.5": None, "success@0.3": None, "auc": None, "n": 0}
    if not negatives:
        return out
    neg = [p for p in pairs if not p["positive"]]
    flags, cious, scores = [p["positive"] for p in pairs], [p["ciou"] for p in pairs], [p["score"] for p in pairs]
    out["ap"] = _finite(metrics.average_precision(flags, cious, scores)) if pairs else None
    out["max_f1"] = _finite(metrics.max_f1(flags, cious, scores)) if pairs else None
    out["fpr@0.5"] = _finite(metrics.loud_rate([p["score"] for p in neg], _THRESHOLD))
    out["fpr@0.5_by_kind"] = {k: _finite(metrics.loud_rate([p["score"] for p in neg if p["kind"] == k], _THRESHOLD))
                              for k in KINDS[1:]}
    loud = metrics.loud_rate([p["score"] for p in pos], _THRESHOLD)
    out["positives_quiet@0.5"] = None if math.isnan(loud) else 1.0 - loud
    out["negatives"] = {k: sum(p["kind"] == k for p in neg) for k in KINDS[1:]}
    return out


def by_case(pairs: list[dict], negatives: bool) -> dict[str, dict]:
    """:func:`summarise_pairs` of each case's pairs, in the cases' precedence order
    (cases without pairs left out; pairs without a case under NO_CASE)."""
    order = list(PRECEDENCE) + [NO_CASE]
    groups: dict[str, list[dict]] = {}
    for p in pairs:
        groups.setdefault(p["case"] or NO_CASE, []).append(p)
    return {case: summarise_pairs(groups[case], negatives) for case in order if case in groups}


def _cell(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(results: dict[str, dict], negatives: bool, cases: bool) -> str:
    """A Markdown table of the summaries in ``results`` (label -> summary, with "by_case"
    when ``cases``): one row per model, and with ``cases`` one more per model and case."""
    head = ["model"] + (["case"] if cases else [])
    if negatives:
        head += ["AP", "max-F1", "FPR @ 0.5", "positives quiet", "negatives"]
    head += ["success @ cIoU 0.5", "success @ cIoU 0.3", "AUC", "positives"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, summary in results.items():
        rows = [("all", summary)] + (list(summary.get("by_case", {}).items()) if cases else [])
        for case, r in rows:
            cells = [label] + ([case] if cases else [])
            if negatives:
                cells += [_cell(r["ap"]), _cell(r["max_f1"]), _cell(r["fpr@0.5"]), _cell(r["positives_quiet@0.5"]),
                          str(sum(r["negatives"].values()))]
            cells += [_cell(r["success@0.5"]), _cell(r["success@0.3"]), _cell(r["auc"]), str(r["n"])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
