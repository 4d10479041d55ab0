"""The text a person watching a live run reads: the start-up line and the status lines.

Pure functions of an engine's attributes and of :meth:`realtime.pipeline.Pipeline.stats`
dicts; the callers (run_live) add their program's name and print.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from flowgrad.checkpoint import display_path

_VIDEO_COUNTS = ("dropped", "reconnects")


def describe_model(engine) -> str:
    """The model part of the start-up line: its name and the file it came from, or that
    its weights are random (or that it has none)."""
    if getattr(engine, "untrained", False):
        return f"{engine.name} UNTRAINED random weights"
    if not Path(engine.source).exists():  # a registry name of a model without weights (flow_only)
        return f"{engine.name} (no weights)"
    uncalibrated = engine.uses_audio and not getattr(engine, "score_calibrated", True)
    return f"{engine.name} from {display_path(engine.source)}" + (" (score uncalibrated)" if uncalibrated else "")


def start_line(engine, device: str, cameras: Sequence[str], streams: Sequence[str], address: str) -> str:
    """What runs: "<model> (<backend>[ <precision>], <device>) on <camera | N cameras>,
    publishing '<stream>', ... on <address>"."""
    precision = "" if getattr(engine, "precision", "float32") == "float32" else f" {engine.precision}"
    where = cameras[0] if len(cameras) == 1 else f"{len(cameras)} cameras"
    names = ", ".join(f"'{s}'" for s in streams)
    return (f"{describe_model(engine)} ({engine.backend}{precision}, {device}) on {where}, "
            f"publishing {names} on {address}")


def live_line(all_stats: list[dict], streams: Sequence[str]) -> str:
    """The line of live figures: :func:`status_line` for one stream, :func:`streams_line` for several."""
    return status_line(all_stats[0]) if len(all_stats) == 1 else streams_line(all_stats, streams)


def status_line(stats: dict) -> str:
    """One stream's line: maps/s, latency p50/p95 (ms), published, drops per stage, its sources,
    the sound level when the pipeline measures one, the newest map's sounding score and direction."""
    lat = stats["latency_ms"]
    lat_txt = "-" if lat["p50"] is None else f"{lat['p50']:.0f}/{lat['p95']:.0f}"
    drops = stats["drops"]
    return (f"{stats['fps']:5.1f} maps/s  latency p50/p95 {lat_txt} ms  published {stats['published']}  "
            f"dropped frames {drops['frames']} flows {drops['flows']} maps {drops['maps']}  "
            f"{sources_text(stats['source'])}{level_text(stats)}{score_text(stats)}{doa_text(stats)}"
            f"{stabilise_text(stats)}")


def score_text(stats: dict) -> str:
    """The score part of a status line, e.g. "  score 0.83" or "  score 0.12 quiet"; '' before any map."""
    score = stats.get("score")
    return "" if score is None else f"  score {score:.2f}{' quiet' if stats.get('quiet') else ''}"


def doa_text(stats: dict) -> str:
    """The direction part of a status line, e.g. "  azimuth +12.3 deg (conf 0.81, 1.9 ms)": the
    newest map's direction of arrival (positive: right of the picture's centre), its confidence
    and the direction finding's median time per map; '' without one."""
    doa = stats.get("doa")
    if doa is None:
        return ""
    ms = stats.get("stage_ms", {}).get("doa")
    return f"  azimuth {doa['azimuth_deg']:+.1f} deg (conf {doa['confidence']:.2f}" + \
        ("" if ms is None else f", {ms:.1f} ms") + ")"


def stabilise_text(stats: dict) -> str:
    """The shake-compensation part of a status line, e.g. "  unstabilised 3" (flow fields whose
    background could not be fitted); '' when there were none."""
    n = stats.get("stabilise_fallbacks", 0)
    return f"  unstabilised {n}" if n else ""


def level_text(stats: dict) -> str:
    """The level part of a status line, e.g. "  level -23.4 dBFS(A)"; '' without a level."""
    level = stats.get("level_db")
    return "" if level is None else f"  level {level:.1f} {stats['level_ref']}"


def streams_line(all_stats: list[dict], streams: Sequence[str]) -> str:
    """Several streams' line: per stream maps/s, p95 latency (ms), level and score when known, and
    any source trouble."""
    def one(name, stats):
        p95 = stats["latency_ms"]["p95"]
        text = f"{name} {stats['fps']:.1f}/s p95 {'-' if p95 is None else f'{p95:.0f}'} ms"
        if stats.get("level_db") is not None:
            text += f" {stats['level_db']:.0f} {stats['level_ref']}"
        if stats.get("score") is not None:
            text += f" score {stats['score']:.2f}{' quiet' if stats.get('quiet') else ''}"
        if stats.get("doa") is not None:
            text += f" az {stats['doa']['azimuth_deg']:+.0f}"
        trouble = source_trouble(stats["source"])
        return text + (f" [{trouble}]" if trouble else "")
    return "  ".join(one(n, s) for n, s in zip(streams, all_stats))


def sources_text(src: dict) -> str:
    """The sources' part of the status line: states, the video source's own drops and
    reconnects (a file read slower than real time drops frames before the pipeline sees them),
    what is wrong with the audio."""
    text = _video_text(src)
    return text + (f"  {_audio_text(src)}" if "audio" in src else "")


def source_trouble(src: dict) -> str:
    """What is wrong with a stream's sources, for the several-camera line ('' when all is well):
    a video source that is not live or drops or reconnects, an audio source that failed or
    whose samples were repaired."""
    video = src.get("video_stats", {})
    found = []
    if src.get("video") != "live" or any(video.get(key) for key in _VIDEO_COUNTS):
        found.append(_video_text(src))
    if src.get("audio") == "failed" or src.get("audio_problem"):
        found.append(_audio_text(src))
    return "; ".join(found)


def _video_text(src: dict) -> str:
    video = src.get("video_stats", {})
    counts = [f"{video[key]} {key}" for key in _VIDEO_COUNTS if video.get(key)]
    return f"video {src.get('video')}" + (f" ({', '.join(counts)})" if counts else "")


def _audio_text(src: dict) -> str:
    return f"audio {src['audio']}" + (f" ({src['audio_problem']})" if src.get("audio_problem") else "")
