"""``generate``: write N seeded clips with their ground truth in the Urbansas layout."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training import cases

from . import annotations as ann
from .ambience import SOURCES_TEXT, ambience
from .config import SynthConfig, SynthError
from .listening import add_listening
from .render import Renderer
from .scene import Scene, make_scene
from .sound import mix
from .writer import write_csv, write_video, write_wav

# 1.1: silent movers, busy traffic, quiet stretches, ambience, cases.json, SOURCES.
# 1.2: spatial sound (one channel per microphone, propagation delays), array.json, azimuths.json.
VERSION = "1.2"
_OUTPUTS = ("video", "audio", "annotations", "synth.json", "README.md", "SOURCES")


@dataclass(frozen=True)
class ClipInfo:
    """One written clip: its id (file stem), the mp4 per frame rate
    ({fps: path}), the wav path and the scene it was drawn from."""

    clip_id: str
    videos: dict
    audio: Path
    scene: Scene


def clip_seeds(seed: int, index: int) -> tuple[np.random.Generator, ...]:
    """Independent generators (flags, scene, audio, listening, ambience) of clip ``index``:
    a clip depends only on (seed, index), not on how many clips are generated. The
    listening and ambience streams came later (version 1.1): the first three still draw
    what they always drew."""
    return tuple(np.random.default_rng([seed, index, part]) for part in range(5))


def _prepare(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthError(f"{out_dir} exists and is not a directory: choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise SynthError(f"{out_dir} is not empty: choose an empty --out or pass --overwrite")
        for name in _OUTPUTS:  # only what a previous run wrote; anything else stays
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _write_clip(out_dir: Path, clip_id: str, scene: Scene, audio: np.ndarray, config: SynthConfig) -> dict:
    renderer = Renderer(scene)
    videos = {}
    for fps in config.video_rates:
        path = out_dir / "video" / f"video_{fps}fps" / f"{clip_id}.mp4"
        frames = (renderer.frame(i / fps) for i in range(ann.frame_count(config.seconds, fps)))
        # The AAC track is stereo: microphones 0 and 1 (a left-right pair in both presets).
        write_video(path, frames, fps, config.width, config.height,
                    audio[:2] if fps == config.fps else None, config.audio_rate)
        videos[fps] = path
    return videos


def generate(out_dir, clips: int, seed: int, config: SynthConfig = SynthConfig(), *,
             overwrite: bool = False, progress: bool = False) -> list[ClipInfo]:
    """Write ``clips`` clips drawn from ``seed`` into ``out_dir`` and return them.

    Layout: video/video_{fps}fps/<clip>.mp4 for config.video_rates (the main
    rate with the AAC track), audio/<clip>.wav, annotations/*.csv, synth.json,
    README.md, SOURCES, annotations/cases.json (training.cases), annotations/array.json
    (the microphones, with the synth camera's field of view) and annotations/azimuths.json
    (every sounding vehicle's true direction per 2 fps time). Same (seed, config)
    -> byte-identical CSVs, JSON and wav.
    Raises SynthError for bad arguments or a non-empty ``out_dir`` without
    ``overwrite`` (which then replaces only those outputs).
    """
    if isinstance(clips, bool) or not isinstance(clips, int) or clips < 1:
        raise SynthError(f"clips={clips!r}: need an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SynthError(f"seed={seed!r}: need an integer >= 0")
    out_dir = Path(out_dir)
    _prepare(out_dir, overwrite)
    for sub in [f"video/video_{fps}fps" for fps in config.video_rates] + ["audio", "annotations"]:
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    infos, video_rows, audio_rows, case_rows, summaries, azimuths = [], [], [], [], {}, {}
    for index in tqdm(range(clips), unit="clip", disable=not progress):
        flags, scene_rng, audio_rng, listening_rng, ambience_rng = clip_seeds(seed, index)
        night = bool(flags.random() < config.night_fraction)
        shake = bool(flags.random() < config.shake_fraction)
        scene = add_listening(make_scene(config, scene_rng, night, shake), config, listening_rng)
        clip_id = f"synth{seed}_{index:04d}"
        n = int(round(scene.seconds * config.audio_rate))
        mics = config.mic_positions_m
        extra = ambience(n, config.audio_rate, ambience_rng, mics, config.ambience) if config.ambience else None
        audio = mix(scene, config.audio_rate, audio_rng, mics, extra)
        wav = out_dir / "audio" / f"{clip_id}.wav"
        write_wav(wav, audio, config.audio_rate)
        videos = _write_clip(out_dir, clip_id, scene, audio, config)
        video_rows += ann.video_rows(scene, clip_id)
        audio_rows += ann.audio_rows(scene, clip_id)
        case_rows += ann.case_rows(scene, clip_id)
        azimuths[clip_id] = ann.azimuth_entries(scene)
        summaries[clip_id] = scene.summary()
        infos.append(ClipInfo(clip_id, videos, wav, scene))
    write_csv(out_dir / "annotations" / "video_annotations.csv", ann.VIDEO_COLUMNS, video_rows)
    write_csv(out_dir / "annotations" / "audio_annotations.csv", ann.AUDIO_COLUMNS, audio_rows)
    meta = {"generator": "training.synth", "version": VERSION, "seed": seed, "clips": clips,
            "config": asdict(config), "scenes": summaries}
    (out_dir / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    cases.write(out_dir / "annotations" / cases.FILENAME, case_rows)
    (out_dir / "annotations" / "array.json").write_text(ann.array_geometry(config).to_json() + "\n")
    (out_dir / "annotations" / "azimuths.json").write_text(
        json.dumps({"version": ann.AZIMUTHS_VERSION, "clips": azimuths}) + "\n")
    (out_dir / "README.md").write_text(ann.readme(config))
    (out_dir / "SOURCES").write_text(SOURCES_TEXT)
    return infos
