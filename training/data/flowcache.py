"""Training flow computed once and kept on disk.

Each entry is the model-ready flow of one (clip, t): (2, *input_size) in
pixels of the full video frame per flow_interval_s, stored as float16, and the
camera's displacement over the pair that the stabiliser fitted ((dx, dy) in
full-frame pixels, float32, NaN when unknown: the motion memory follows the
camera with it), in a plain ``.npz`` of two arrays, ``flow`` and ``camera``
(read with ``allow_pickle=False``). float16 keeps a relative
error of at most 2**-11 (0.05 %) at every magnitude, i.e. under 1/1000 px for
flow under 2 px and under 1/64 px up to 32 px, so magnitude-normalised maps
move by well under 1e-3; a fixed int16 step of 1/64 px was tried first and
shifted a flow-magnitude map by 7e-3 on 2 px motion. Storing the 224 x 224
input grid instead of the working-resolution field keeps an entry at ~200 kB
rather than ~3.7 MB for a 1280x720 frame.

The file name is a SHA-256 of the clip file's resolved path, size and
modification time, t, the flow settings (interval, working size, input size,
Farneback parameters, stabilisation) and the storage format, so an entry made from an older
file or other settings is never found, only left behind.

``python -m training.data.flowcache --data DIR`` fills the cache for a dataset and names the
entries of an older format left behind (``.npy``, before format 3), with the command that deletes them.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from flowgrad.errors import InputError, one_line
from flowgrad.files import atomic_write
from flowgrad.sizes import wxh_arg

from .folder import FolderWindows
from .media import MediaError, VideoInfo, read_frames
from .urbansas import UrbansasEval, UrbansasWindows
from .windows import DataConfig, FlowPair, WindowDataset, compute_flow, config_fingerprint, flow_frame_times

log = logging.getLogger(__name__)

FORMAT_VERSION = 3
STORED_DTYPE = np.float16
_FLOAT16_MAX = float(np.finfo(np.float16).max)

ComputeFn = Callable[[VideoInfo, float, DataConfig], FlowPair]
Camera = Optional[tuple[float, float]]


@dataclass
class FlowCacheStats:
    """Counters of one FlowCache object (per process: DataLoader workers keep their own).

    hits: entries read. misses: entries computed (absent before).
    corrupt: unreadable or malformed entries, recomputed and rewritten.
    """

    hits: int = 0
    misses: int = 0
    corrupt: int = 0


def _stamp(path) -> tuple[str, int, int]:
    """(resolved path, size in bytes, mtime in ns) of an input file, for cache keys; MediaError if gone."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise MediaError(f"{path}: cannot stat the file for the flow cache ({e})") from e
    return str(Path(path).resolve()), st.st_size, st.st_mtime_ns


def quantise(flow: np.ndarray) -> np.ndarray:
    """float flow in px -> float16 (round to nearest), saturating at +-65504 px rather than inf."""
    return np.clip(flow, -_FLOAT16_MAX, _FLOAT16_MAX).astype(STORED_DTYPE)


def dequantise(stored: np.ndarray) -> np.ndarray:
    """Stored float16 -> float32 px."""
    return stored.astype(np.float32)


class FlowCache:
    """Flow entries under ``directory`` (created on first write).

    Safe for several processes at once: entries are written to a temporary
    name and renamed into place, so a reader sees a whole file or none.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.stats = FlowCacheStats()

    def entry_path(self, video: VideoInfo, t: float, config: DataConfig) -> Path:
        """Where the entry for (video file as it is now, t seconds, config) lives.

        Raises MediaError when the video file is gone.
        """
        clip, size, mtime_ns = _stamp(video.path)
        return self._path({"clip": clip, "size": size, "mtime_ns": mtime_ns, "t": round(float(t), 6)}, config)

    def _path(self, source: dict, config: DataConfig) -> Path:
        """Entry file of a flow source (what identifies the input files) under ``config``."""
        payload = {"format": FORMAT_VERSION, "dtype": np.dtype(STORED_DTYPE).name, **source,
                   **config_fingerprint(config)}
        key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        return self.directory / key[:2] / f"{key}.npz"

    def _load(self, path: Path, config: DataConfig) -> Optional[tuple[np.ndarray, Camera]]:
        """The stored (flow, camera), or None when absent; a malformed entry counts as corrupt."""
        if not path.exists():
            return None
        try:
            entry = np.load(path, allow_pickle=False)
            if not isinstance(entry, np.lib.npyio.NpzFile):
                return self._corrupt(path, "not an .npz of flow and camera")
            with entry:
                stored, camera = entry["flow"], entry["camera"]
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
            return self._corrupt(path, f"unreadable ({one_line(e)})")
        if stored.dtype != STORED_DTYPE or stored.shape != (2, *config.input_size):
            return self._corrupt(path, f"holds {stored.dtype} {stored.shape}, "
                                       f"expected float16 {(2, *config.input_size)}")
        if camera.dtype != np.float32 or camera.shape != (2,) or np.isinf(camera).any():
            return self._corrupt(path, f"holds a camera of {camera.dtype} {camera.shape}, expected 2 float32")
        return stored, (None if np.isnan(camera).any() else (float(camera[0]), float(camera[1])))

    def _corrupt(self, path: Path, why: str) -> None:
        if self.stats.corrupt == 0:
            log.warning("flow cache entry %s is %s; recomputing (further cases counted in stats.corrupt)", path, why)
        self.stats.corrupt += 1
        return None

    def _store(self, path: Path, stored: np.ndarray, camera: Camera) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            np.savez(f, flow=stored, camera=np.array(camera if camera is not None else (np.nan, np.nan), np.float32))

    def _entry(self, path: Path, video: VideoInfo, t: float, config: DataConfig,
               compute: ComputeFn) -> tuple[Optional[np.ndarray], np.ndarray, Camera]:
        """(frame if it was computed else None, stored flow, camera), computing on a miss."""
        made = []

        def make() -> tuple[torch.Tensor, Camera]:
            pair = compute(video, t, config)
            made.append(pair.frame)
            return pair.flow, pair.camera
        stored, camera = self._get_or_make(path, config, make)
        return (made[0] if made else None), stored, camera

    def _get_or_make(self, path: Path, config: DataConfig,
                     make: Callable[[], tuple[torch.Tensor, Camera]]) -> tuple[np.ndarray, Camera]:
        """The stored (flow, camera) at ``path``; on a miss ``make()`` -> (flow px, camera) is stored
        (the flow quantised, the camera as float32)."""
        entry = self._load(path, config)
        if entry is not None:
            self.stats.hits += 1
            return entry
        self.stats.misses += 1
        flow, camera = make()
        stored = quantise(flow.numpy())
        if camera is not None:
            camera = tuple(float(v) for v in np.float32(camera))
        self._store(path, stored, camera)
        return stored, camera

    def flow(self, video: VideoInfo, t: float, config: DataConfig,
             compute: ComputeFn = compute_flow) -> FlowPair:
        """The flow pair at t, as ``compute_flow`` returns it, through the cache.

        A miss computes and stores; either way the flow and camera returned are the
        stored ones (the flow quantised), so every epoch sees the same input. Returns a
        :class:`FlowPair` with the (H, W, 3) uint8 BGR frame. Raises MediaError.
        """
        path = self.entry_path(video, t, config)
        frame, stored, camera = self._entry(path, video, t, config, compute)
        if frame is None:
            frame = read_frames(video, [flow_frame_times(video, t, config)[0]])[0][1]
        return FlowPair(frame, torch.from_numpy(dequantise(stored)), camera)

    def flow_field(self, video: VideoInfo, t: float, config: DataConfig,
                   compute: ComputeFn = compute_flow) -> FlowPair:
        """:meth:`flow` without its frame (None; none is decoded on a hit). Raises MediaError."""
        _, stored, camera = self._entry(self.entry_path(video, t, config), video, t, config, compute)
        return FlowPair(None, torch.from_numpy(dequantise(stored)), camera)

    def still_flow(self, entry, frame_bgr: np.ndarray, config: DataConfig, compute) -> torch.Tensor:
        """Flow of a still-frame evaluation entry (training.data.stills) through the cache.

        The key is made of the entry's frame and flow-source files as they are
        now (path, size, mtime) and the flow settings. ``compute(entry,
        frame_bgr, config)`` -> (2, *input_size) float32 px runs on a miss.
        Returns the stored (float16-quantised) flow as float32. Raises MediaError.
        """
        files = [entry.frame] + ([entry.next_frame] if entry.next_frame is not None else list(entry.flow_images))
        stamps = [list(_stamp(f)) for f in files]
        stored, _ = self._get_or_make(self._path({"still": stamps}, config), config,
                                      lambda: (compute(entry, frame_bgr, config), None))
        return torch.from_numpy(dequantise(stored))

    def ensure(self, video: VideoInfo, t: float, config: DataConfig, compute: ComputeFn = compute_flow) -> None:
        """Make sure a valid entry exists for (video, t, config); no frame is decoded on a hit."""
        self._entry(self.entry_path(video, t, config), video, t, config, compute)


def stale_entries(directory: Path) -> list[Path]:
    """Entries under ``directory`` that no version of this cache reads any more: the ``.npy``
    files of formats 1 and 2 (before the camera was kept). Their keys are hashes, so they are
    never found again, only left behind."""
    return sorted(Path(directory).glob("??/*.npy")) if Path(directory).is_dir() else []


class _Precompute(torch.utils.data.Dataset):
    """Index i -> ensure the cache entry of dataset item i; returns (item ok, stats delta)."""

    def __init__(self, dataset: WindowDataset, cache: FlowCache) -> None:
        self.dataset, self.cache = dataset, cache

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[bool, int, int, int]:
        item = self.dataset.items[i]
        before = (self.cache.stats.hits, self.cache.stats.misses, self.cache.stats.corrupt)
        try:
            # Entries are flow pairs; a motion memory is made of them when read.
            config = dataclasses.replace(self.dataset.config, motion_memory_s=0.0)
            self.cache.ensure(self.dataset.sources[item.source].video, item.t, config)
            ok = True
        except (MediaError, OSError) as e:
            log.warning("flow cache: %s at t = %.3f s not computed: %s",
                        self.dataset.sources[item.source].clip, item.t, e)
            ok = False
        s = self.cache.stats
        return ok, s.hits - before[0], s.misses - before[1], s.corrupt - before[2]


def precompute(datasets: Sequence[WindowDataset], cache: FlowCache, workers: int = 0,
               progress: bool = True) -> dict[str, int]:
    """Fill ``cache`` for every item of ``datasets``, ``workers`` processes at once.

    Returns counts: items, hits, misses (computed now), corrupt, failed.
    """
    from tqdm import tqdm

    totals = {"items": 0, "hits": 0, "misses": 0, "corrupt": 0, "failed": 0}
    for dataset in datasets:
        loader = torch.utils.data.DataLoader(_Precompute(dataset, cache), batch_size=None,
                                             num_workers=workers)
        for ok, hits, misses, corrupt in tqdm(loader, total=len(dataset), disable=not progress,
                                              desc=f"flow {type(dataset).__name__}", unit="pair"):
            totals["items"] += 1
            totals["hits"] += hits
            totals["misses"] += misses
            totals["corrupt"] += corrupt
            totals["failed"] += not ok
    return totals


def main(argv: Optional[list[str]] = None) -> int:
    """CLI: precompute the flow of a dataset's training windows (and Urbansas eval pairs)."""
    parser = argparse.ArgumentParser(prog="python -m training.data.flowcache", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="dataset root: Urbansas layout (has video/) or a folder of videos")
    parser.add_argument("--cache", type=Path, help="cache directory (default: DATA/flowcache)")
    parser.add_argument("--stride", type=float, default=DataConfig.stride_s, help="training window stride, s")
    parser.add_argument("--work-size", type=wxh_arg(), metavar="WxH", dest="work_hw",
                        help="Farneback working size, width x height in pixels, e.g. 640x360 (default: full frame)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default: 0, this one)")
    parser.add_argument("--no-stabilise", dest="stabilise", action="store_false",
                        help="keep camera shake in the flow (default: removed, as training and evaluation use it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if not args.data.is_dir():
        print(f"error: --data {args.data} is not a directory", file=sys.stderr)
        return 2
    cache = FlowCache(args.cache if args.cache is not None else args.data / "flowcache")
    try:
        config = DataConfig(stride_s=args.stride, flow_work_hw=args.work_hw, stabilise=args.stabilise)
    except ValueError as e:  # option values the configuration refuses
        parser.error(str(e))
    try:
        if (args.data / "video").is_dir():
            datasets = [UrbansasWindows(args.data, config)]
            if (args.data / "annotations").is_dir():
                datasets.append(UrbansasEval(args.data, config))
        else:
            datasets = [FolderWindows(args.data, config)]
    except InputError as e:  # unusable annotations or media
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    totals = precompute(datasets, cache, workers=args.workers)
    print(f"flow cache {cache.directory}: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    stale = stale_entries(cache.directory)
    if stale:
        size_mb = sum(p.stat().st_size for p in stale) / 2**20
        what = "1 entry" if len(stale) == 1 else f"{len(stale)} entries"
        print(f"flow cache {cache.directory}: {what} of an older format ({size_mb:.1f} MB of .npy files) "
              f"no longer read: find {cache.directory} -name '*.npy' -delete frees the space")
    for d in datasets:
        if d.skipped:
            print(f"{type(d).__name__} skipped: {d.skipped}")
    return 1 if totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
