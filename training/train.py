"""``python -m training.train``: contrastive training of a registry model on unlabelled windows.

    python -m training.train --model rcgrad --data synth/ --out runs/rcgrad
    python -m training.train --model flowgrad_en --data synth/ --out runs/en --init runs/rcgrad/best.ckpt
    torchrun --nproc_per_node 4 -m training.train --model flowgrad_en --data urbansas/ --out runs/en

Recipe (the FlowGrad paper's training set-up): Adam (lr 1e-3), the model's objective
(:mod:`training.objectives`), reduce-on-plateau x0.1 after ``--plateau``
epochs without a better validation loss, early stop after ``--early-stop``,
at most ``--epochs``. Validation is a held-out fraction of the CLIPS (never
windows of a training clip); each epoch line gives the number of windows the
validation loss averages over, and without any (a single usable clip,
``--val-fraction 0``) says so and lets the training loss pick ``best.ckpt``.
Windows that cannot be read (including audio, frame or flow holding NaN or
infinity) are replaced by a window of another clip and counted; the counts per
reason are printed at the end. ``--init`` and ``--resume`` refuse files holding
code or NaN weights in one line. Under ``torchrun`` every process trains on its
own shard with gradients averaged (DistributedDataParallel; NCCL on GPUs,
gloo on CPUs); only rank 0 writes files.

Negatives (``--negatives F``, default 0.25): each batch of B positive windows comes
with round(F * B) negative pairs (training.data.negatives: silence, quiet and
off-screen-only windows, another clip's audio; ``--negative-kinds``), which every
objective takes (its log names each loss term); validation batches get the same,
drawn from the validation clips only. With audio annotations, windows whose audio
holds no on-screen vehicle are negatives, not positives. ``--negatives 0`` trains
exactly as before negatives existed. After training, best.ckpt's sounding score is
calibrated on the validation clips (:func:`_calibrate_best`, training.calibration_pairs).

Boxes (``--box-loss W``, default 0): beyond the papers' audio-visual supervision, the
model's own map is pulled towards the sounding vehicles' boxes at the windows whose
time is an annotated evaluation time (every window centre with the default 1 s
stride on a 2 fps annotation grid), ``W x (BCE + 1 - Dice)`` (training.losses.box_map_loss),
logged as ``loss_box``; the boxes get the same mirror and crop as the picture.

RUN_DIR receives: ``epoch_NNN.ckpt`` (weights after each epoch, flowgrad
checkpoint format), ``best.ckpt`` (lowest validation loss), ``state.pt`` (the
optimiser, scheduler, objective and counters, for ``--resume``; tensors and
plain values only), ``log.jsonl`` (one line per epoch) and ``args.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from flowgrad import checkpoint, models
from flowgrad.errors import InputError
from flowgrad.files import atomic_write
from flowgrad.flow.memory import MEMORY_SECONDS

from . import objectives
from .data import AnnotationError, DataConfig, FolderWindows, UrbansasWindows, collate
from .data.negatives import (KINDS, OFFSCREEN, QUIET, EpochSampler, NegativeWindows, collate_negatives,
                             label_windows, negatives_per_batch, read_events)
from .data.windows import SKIP_NON_FINITE, SKIP_READ_FAILED
from . import calibration_pairs
from .augment import AugmentConfig, augment
from .batching import ClipGroupedBatches
from .losses import box_map_loss
from .data.flowcache import FlowCache


class TrainError(InputError):
    """Bad arguments or data, reported as one line (exit status 2)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (saved as args.json).

    model / width: registry name and ResNet width multiplier.
    epochs, batch_size (per process), lr, seed, workers (DataLoader processes).
    val_fraction: fraction of clips held out for validation (at least one clip).
    plateau / early_stop: epochs without improvement before the LR is cut x0.1 / training stops.
    max_steps: stop after this many optimiser steps in total (smoke tests); None = no limit.
    amp: bfloat16 autocast on CUDA.
    init: checkpoint to start from (an rcgrad checkpoint for IC/EN, or the same model).
    flow_init_rgb: IC/EN flow filters from the mean RGB filters (the papers' option).
    clips_per_batch: 0 = random batches (the papers); K >= 2 = batches of K clips with
        batch_size // K windows each (training.batching: negatives from the same clip).
    augment: mirror / crop / brightness / audio-gain augmentation of training batches (training.augment).
    stabilise: remove camera shake from the flow (default; --no-stabilise keeps it).
    motion_memory: train on the 5 s motion memory (flowgrad.flow.memory) instead of one flow
        pair; evaluate such a model with its spec's ``+memory``.
    negatives: negative pairs per positive window in each batch (0 = none; training.data.negatives).
    negative_kinds: which kinds of negatives (training.data.negatives.KINDS).
    box_weight: weight of the box term (training.losses.box_map_loss: the model's map against
        the sounding vehicles' boxes of windows at annotated times; 0 = the papers' weak
        supervision only). Needs an Urbansas-layout set with annotations.
    """

    model: str
    data: str
    out: str
    width: float = 1.0
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    workers: int = 0
    val_fraction: float = 0.1
    plateau: int = 5
    early_stop: int = 10
    max_steps: Optional[int] = None
    amp: bool = False
    device: str = "cpu"
    init: Optional[str] = None
    flow_init_rgb: bool = True
    stride_s: float = 1.0
    flow_cache: Optional[str] = None
    clips_per_batch: int = 0
    augment: bool = False
    stabilise: bool = True
    motion_memory: bool = False
    negatives: float = 0.25
    negative_kinds: tuple[str, ...] = KINDS
    box_weight: float = 0.0


class TrainStep(nn.Module):
    """Model + objective as one module, so DistributedDataParallel sees every parameter
    used in the loss (the objective calls the model's submodules, not its forward).

    box_weight > 0 adds ``box_weight * box_map_loss(map, gt)`` on the positives' own
    maps (gt: (B, H, W) box masks on the map's grid, all-zero rows unsupervised),
    logged as ``loss_box``; a batch without any box skips the maps' forward pass."""

    def __init__(self, model: nn.Module, objective: nn.Module, box_weight: float = 0.0):
        super().__init__()
        self.model, self.objective, self.box_weight = model, objective, box_weight

    def forward(self, frame, flow, wave, negatives=None, gt=None):
        loss, logs = self.objective(self.model, frame, flow, wave, negatives=negatives)
        if self.box_weight and gt is not None:
            if not bool(gt.flatten(1).any()):
                return loss, {**logs, "loss_box": 0.0}
            maps, _ = self.model(frame, flow, self.model.embed_audio(wave))
            box = box_map_loss(maps, gt)
            loss = loss + self.box_weight * box
            logs = {**logs, "loss": loss.item(), "loss_box": box.item()}
        return loss, logs


# ------------------------------------------------------------------ set-up


def open_windows(root: str, config: DataConfig, flow_cache: Optional[str] = None, boxes: bool = False):
    """Unlabelled training windows from an Urbansas-layout folder (it has ``video/``)
    or from any folder of videos with sound; boxes: with each window's box mask
    (UrbansasWindows ``boxes``; a folder without annotations is a TrainError)."""
    path = Path(root)
    if not path.is_dir():
        raise TrainError(f"{root}: no such folder; give a dataset folder (e.g. made by python -m training.synth)")
    cache = FlowCache(Path(flow_cache)) if flow_cache else None
    if not (path / "video").is_dir():
        if boxes:
            raise TrainError(f"--box-loss: {root} has no video/ and annotations/ (Urbansas layout); "
                             "boxes come from annotations/video_annotations.csv")
        return FolderWindows(path, config, cache=cache)
    try:
        return UrbansasWindows(path, config, cache=cache, boxes=boxes)
    except AnnotationError as e:
        raise TrainError(f"--box-loss: {e}") from None


def clip_ids(dataset) -> list[str]:
    """The clip id of every window of a WindowDataset."""
    return [dataset.sources[item.source].clip for item in dataset.items]


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 2:
        return 0, 1
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model(config: TrainConfig) -> tuple[nn.Module, list[str]]:
    """The model to train (fresh, or initialised from ``config.init``) and notes for the log.

    What may initialise what is the model's rule (``model.init_from``): the same
    model, or another named in its ``init_sources`` (FlowGrad-IC / -EN from RCGrad).
    """
    notes = []
    if not objectives.trainable(config.model):
        raise TrainError(f"{config.model} is not trainable: {models.model_class(config.model).not_trained_because}")
    model = models.create(config.model, width=config.width)
    if config.init:
        try:
            start = checkpoint.load(config.init)
        except checkpoint.CheckpointError as e:
            raise TrainError(str(e)) from None
        try:
            how = model.init_from(start)
        except models.InitError as e:
            raise TrainError(f"{config.init}: {e}") from None
        notes.append(f"initialised from {config.init} ({how})")
    elif config.flow_init_rgb and model.has_flow_filters:
        model.init_flow_filters_from_rgb()
        notes.append("flow filters initialised from the mean RGB filters")
    return model, notes


def split_by_clip(clips: list[str], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of windows for training and validation; ``clips[i]`` is window i's clip id.

    A seeded shuffle of the distinct clips; at least one clip is held out when
    there are two or more (no validation with a single clip).
    """
    names = sorted(set(clips))
    rng = random.Random(seed)
    rng.shuffle(names)
    n_val = 0 if len(names) < 2 or val_fraction <= 0 else max(1, round(len(names) * val_fraction))
    held = set(names[:n_val])
    train = [i for i, c in enumerate(clips) if c not in held]
    val = [i for i, c in enumerate(clips) if c in held]
    return train, val


# ------------------------------------------------------------------ loop


def _batches(loader, desc, show):
    return tqdm(loader, desc=desc, leave=False, disable=not show, unit="batch")


def _to(device, batch):
    """(frame, flow, wave, gt or None) of a Batch on ``device``."""
    gt = batch.gt.to(device) if batch.gt is not None else None
    return batch.frame.to(device), batch.flow.to(device), batch.wave.to(device), gt


def _even_batches(n: int, batch_size: int) -> list[list[int]]:
    """0 .. n-1 in ceil(n / batch_size) consecutive batches whose sizes differ by at most
    one, so no batch holds a single window when n >= 2 (a contrastive loss needs negatives)."""
    k = max(1, math.ceil(n / batch_size))
    return [list(range(i * n // k, (i + 1) * n // k)) for i in range(k)]


def _sum_across(values: list[float], world: int, device) -> list[float]:
    """Element-wise sum of per-process figures over all processes."""
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _first_line(error: Exception) -> str:
    """The error's message on one line; for an error re-raised from a DataLoader worker
    (its text is the worker's traceback), the original error's last line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if "Traceback" in str(error) and lines else " ".join(lines)


def _mean_across(value: float, count: int, world: int, device) -> float:
    """The mean of a per-process mean, weighted by per-process counts."""
    if world == 1:
        return value
    t = torch.tensor([value * count, float(count)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t[0] / t[1]).item() if t[1] > 0 else float("nan")


def run(config: TrainConfig, resume: bool = False) -> dict:
    """Train; returns {"best_val_loss", "validated", "epochs", "steps", "best", "skipped", "calibration"}
    (rank 0's view).

    best_val_loss is the lowest validation loss, or the lowest training loss when
    no epoch of this run had validation windows (validated False). skipped:
    reason -> count of the inputs left out (at indexing, and while reading, over
    every process). calibration: what :func:`_calibrate_best` stored in best.ckpt, or None.
    """
    rank, world = _distributed()
    try:
        result = _run(config, resume, rank, world)
        if world > 1:
            # Tear down together: a process that destroys the group while its peer still
            # writes checkpoints can see the peer's connection drop and abort (seen once in CI).
            dist.barrier()
        return result
    finally:
        if world > 1:
            dist.destroy_process_group()


def _run(config: TrainConfig, resume: bool, rank: int, world: int) -> dict:
    out = Path(config.out)
    show = rank == 0 and sys.stderr.isatty()
    device = torch.device(config.device if config.device != "cuda" else f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA GPU here; use --device cpu")
    _seed_everything(config.seed + rank)

    model, notes = build_model(config)
    data = open_windows(config.data, DataConfig(audio_rate=model.audio_rate, audio_seconds=model.audio_seconds,
                                                stride_s=config.stride_s, stabilise=config.stabilise,
                                                motion_memory_s=MEMORY_SECONDS if config.motion_memory else 0.0),
                         flow_cache=config.flow_cache, boxes=config.box_weight > 0)
    if len(data) == 0:
        raise TrainError(f"{config.data}: no usable training windows ({data.skipped or 'no clips'})")
    index_skips = data.skipped  # read-time skips come with the batches, from any worker process
    clips = clip_ids(data)
    train_idx, val_idx = split_by_clip(clips, config.val_fraction, config.seed)
    try:
        n_neg = negatives_per_batch(config.negatives, config.batch_size)
        labels = label_windows(data, read_events(Path(config.data)) if isinstance(data, UrbansasWindows) else None)
    except (ValueError, AnnotationError) as e:
        raise TrainError(str(e)) from None
    train_all, val_all = train_idx, val_idx  # every window of the clips: the negatives draw from them
    if n_neg:  # windows whose audio holds no on-screen vehicle are negatives now, not positives
        train_idx = [i for i in train_idx if labels[i] not in (QUIET, OFFSCREEN)]
        val_idx = [i for i in val_idx if labels[i] not in (QUIET, OFFSCREEN)]
    if len(train_idx) < 2 * world:
        raise TrainError(f"{config.data}: only {len(train_idx)} training windows; need at least 2 per process")

    objective = objectives.objective_for(model)
    frozen = [name for name in objective.frozen if config.init]  # freezing random weights would be pointless
    for name in frozen:
        getattr(model, name).requires_grad_(False)
    model.to(device)
    objective.to(device)
    step_module: nn.Module = TrainStep(model, objective, config.box_weight)
    if world > 1:
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    params = [p for p in step_module.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.1, patience=config.plateau)

    counters = {"epoch": 0, "steps": 0, "best_val_loss": math.inf, "stale": 0}
    if resume:
        counters = _load_state(out, model, objective, optimiser, scheduler)
    elif rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "args.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")

    sampler = batches = None
    if config.clips_per_batch:
        try:
            batches = ClipGroupedBatches([clips[i] for i in train_idx], config.batch_size, config.clips_per_batch,
                                         config.seed, rank, world)
        except ValueError as e:
            raise TrainError(f"--clips-per-batch: {e}") from None
        train_loader = DataLoader(data.subset(train_idx), batch_sampler=batches, num_workers=config.workers,
                                  persistent_workers=config.workers > 0, collate_fn=collate)
    else:
        if world > 1:
            sampler = torch.utils.data.distributed.DistributedSampler(
                data.subset(train_idx), num_replicas=world, rank=rank, seed=config.seed, drop_last=True)
        train_loader = DataLoader(data.subset(train_idx), batch_size=config.batch_size, shuffle=sampler is None,
                                  sampler=sampler, num_workers=config.workers,
                                  drop_last=len(train_idx) > config.batch_size,
                                  generator=torch.Generator().manual_seed(config.seed),
                                  persistent_workers=config.workers > 0, collate_fn=collate)
    val_loader = None
    if val_idx and config.clips_per_batch and len({clips[i] for i in val_idx}) >= config.clips_per_batch:
        # Validate the task that is trained: the same batch make-up, fixed across epochs.
        val_batches = ClipGroupedBatches([clips[i] for i in val_idx], config.batch_size, config.clips_per_batch,
                                         config.seed, rank, world)
        val_loader = DataLoader(data.subset(val_idx), batch_sampler=val_batches, num_workers=config.workers,
                                collate_fn=collate)
    elif val_idx:
        mine = val_idx[rank::world]
        val_loader = DataLoader(data.subset(mine), batch_sampler=_even_batches(len(mine), config.batch_size),
                                num_workers=config.workers, collate_fn=collate)
    neg_loader = _negative_loader(data, labels, train_all, config, n_neg, len(train_loader), config.seed * 31 + rank)
    val_neg_loader = (_negative_loader(data, labels, val_all, config, n_neg, len(val_loader), config.seed * 31 + 7)
                      if val_loader is not None else None)
    if rank == 0:
        print(f"train: {config.model} width {config.width}: {len(train_idx)} training / {len(val_idx)} validation "
              f"windows, {world} process(es) on {device}" + "".join(f"; {n}" for n in notes)
              + (f"; frozen: {', '.join(frozen)}" if frozen else "")
              + ("; no validation: the training loss picks best.ckpt" if not val_idx else "")
              + (f"; {n_neg} negatives per batch ({', '.join(neg_loader.dataset.kinds)})" if neg_loader else ""),
              file=sys.stderr)


    read_skips: Counter = Counter()  # inputs passed over while reading, in this process
    validated = False  # the last epoch had validation windows (else the training loss picks best.ckpt)
    aug_rng = torch.Generator().manual_seed(config.seed * 7919 + rank)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda")
    while counters["epoch"] < config.epochs and counters["stale"] < config.early_stop:
        epoch = counters["epoch"] + 1
        for shuffler in (sampler, batches, neg_loader.sampler if neg_loader else None):
            if shuffler is not None:
                shuffler.set_epoch(epoch)
        step_module.train()
        for name in frozen:
            getattr(model, name).eval()
        t0, total, n = time.time(), 0.0, 0
        terms: Counter = Counter()  # loss term -> sum over windows, for the epoch's means
        kinds: Counter = Counter()
        bar = _batches(train_loader, f"epoch {epoch}", show)
        negative_batches = iter(neg_loader) if neg_loader else None
        for batch in bar:
            read_skips.update(batch.skipped)
            frame, flow, wave, gt = _to(device, batch)
            negatives = _next_negatives(negative_batches, device, read_skips, kinds)
            if config.augment:
                frame, flow, wave, *gt = augment(frame, flow, wave, AugmentConfig(), aug_rng, mask=gt)
                gt = gt[0] if gt else None
                if negatives is not None:
                    negatives = augment(*negatives, AugmentConfig(), aug_rng)
            with autocast:
                loss, logs = step_module(frame, flow, wave, negatives, gt)
            if not torch.isfinite(loss):
                raise TrainError(f"epoch {epoch}: the loss became {loss.item()}; lower --lr")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total, n = total + loss.item() * len(frame), n + len(frame)
            terms.update({k: v * len(frame) for k, v in logs.items() if k.startswith("loss_")})
            counters["steps"] += 1
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if config.max_steps is not None and counters["steps"] >= config.max_steps:
                break
        train_loss = _mean_across(total / max(n, 1), n, world, device)
        train_terms = {k: round(_mean_across(v / max(n, 1), n, world, device), 5) for k, v in sorted(terms.items())}
        val_loss, val_windows = (_validate(step_module, val_loader, val_neg_loader, device, autocast, show, world,
                                           read_skips) if val_loader else (math.nan, 0))
        validated = val_windows > 0
        monitored = val_loss if validated else train_loss  # no validation: the training loss stands in
        scheduler.step(monitored)
        improved = monitored < counters["best_val_loss"]
        counters.update(epoch=epoch, best_val_loss=min(monitored, counters["best_val_loss"]),
                        stale=0 if improved else counters["stale"] + 1)
        if rank == 0:
            record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss if validated else None,
                      "val_windows": val_windows, "lr": optimiser.param_groups[0]["lr"], "steps": counters["steps"],
                      "seconds": round(time.time() - t0, 1), "world_size": world}
            if train_terms:
                record.update(train_terms=train_terms)
            if n_neg:
                record.update(negatives=dict(sorted(kinds.items())))
            _save_epoch(out, model, objective, optimiser, scheduler, counters, record, improved)
            val_text = (f"val {val_loss:.4f} on {val_windows} windows" if validated
                        else "no validation windows (best.ckpt by the training loss)")
            term_text = (" (" + ", ".join(f"{k[5:]} {v:.4f}" for k, v in train_terms.items()) + ")"
                         if train_terms else "")
            print(f"train: epoch {epoch}: train {train_loss:.4f}{term_text} {val_text} "
                  f"lr {record['lr']:.1e}{' (best)' if improved else ''} [{record['seconds']} s]", file=sys.stderr)
        if config.max_steps is not None and counters["steps"] >= config.max_steps:
            break
    calibration = None
    if rank == 0 and val_all and (out / "best.ckpt").is_file():
        calibration = _calibrate_best(out / "best.ckpt", data.subset(val_all), [labels[i] for i in val_all],
                                      device, config.batch_size, config.seed)
    totals = _sum_across([float(read_skips[r]) for r in (SKIP_READ_FAILED, SKIP_NON_FINITE)], world, device)
    skipped = Counter(index_skips)
    skipped.update({r: int(n) for r, n in zip((SKIP_READ_FAILED, SKIP_NON_FINITE), totals) if n})
    return {"best_val_loss": counters["best_val_loss"], "validated": validated, "epochs": counters["epoch"],
            "steps": counters["steps"], "best": str(out / "best.ckpt"), "skipped": dict(skipped),
            "calibration": calibration}


def _negative_loader(data, labels, indices, config: TrainConfig, per_batch: int, batches: int, seed: int):
    """A DataLoader of ``batches`` NegativeBatches of ``per_batch`` pairs drawn from the windows at
    ``indices`` (their clips' windows, all labels), or None without negatives or any kind to draw."""
    if not per_batch or not batches:
        return None
    windows = NegativeWindows(data.subset(indices), [labels[i] for i in indices], config.negative_kinds,
                              length=per_batch * batches, seed=seed)
    if not windows.kinds:
        return None
    return DataLoader(windows, batch_size=per_batch, sampler=EpochSampler(len(windows)), num_workers=config.workers,
                      persistent_workers=config.workers > 0, collate_fn=collate_negatives)


def _next_negatives(batches, device, read_skips: Counter, kinds: Counter):
    """The next NegativeBatch's (frame, flow, wave) on ``device``, or None without negatives;
    counts its kinds and the inputs passed over to make it."""
    if batches is None:
        return None
    batch = next(batches, None)
    if batch is None:
        return None
    read_skips.update(batch.skipped)
    kinds.update(batch.kind)
    return batch.frame.to(device), batch.flow.to(device), batch.wave.to(device)


@torch.no_grad()
def _validate(step_module, loader, neg_loader, device, autocast, show, world, read_skips: Counter) -> tuple[float, int]:
    """(mean validation loss, windows it is the mean over, all processes together);
    (nan, 0) when no batch held two windows. neg_loader: the validation negatives (the
    same draws every epoch) or None. Counts passed-over inputs in ``read_skips``."""
    step_module.eval()
    total, n = 0.0, 0
    negative_batches = iter(neg_loader) if neg_loader else None
    for batch in _batches(loader, "validate", show):
        read_skips.update(batch.skipped)
        frame, flow, wave, gt = _to(device, batch)
        negatives = _next_negatives(negative_batches, device, read_skips, Counter())
        if len(frame) < 2:  # a contrastive loss needs negatives
            continue
        with autocast:
            loss, _ = step_module(frame, flow, wave, negatives, gt)
        total, n = total + loss.item() * len(frame), n + len(frame)
    total, n = _sum_across([total, float(n)], world, device)
    return (total / n, int(n)) if n else (math.nan, 0)


def _calibrate_best(best: Path, windows, labels, device, batch_size: int, seed: int, hooks=None) -> Optional[dict]:
    """Fit best.ckpt's sounding-score calibration on the validation windows and store it there.

    windows / labels: every window of the validation clips and its window_label
    (training.calibration_pairs says which pairs are positive and negative). hooks(model) ->
    (evidence_fn, calibrate_fn, store_fn) gives the model's raw evidence
    ``(frame, flow, wave) -> (B,)``, the fit ``(evidence, labels) -> (scale, bias)`` and
    ``store_fn(scale, bias)`` that sets it on the model (default
    :func:`training.calibration_pairs.model_hooks`). Returns
    what was stored ({"scale", "bias", "pairs"}, also saved in best.ckpt's meta as
    "calibration"), or None (said in one line) when there are no pairs of both classes.
    """
    model = checkpoint.load(best, map_location=device).eval()
    evidence_fn, calibrate_fn, store_fn = (hooks or calibration_pairs.model_hooks)(model)
    pairs = calibration_pairs.calibration_pairs(windows, labels, evidence_fn, batch_size, seed, device)
    try:
        scale, bias = calibration_pairs.fit(pairs, calibrate_fn)
    except ValueError as e:
        print(f"train: calibration: not fitted ({e})", file=sys.stderr)
        return None
    store_fn(scale, bias)
    stored = {"scale": scale, "bias": bias, "pairs": pairs.counts()}
    checkpoint.save(best, model, **{**checkpoint.read_meta(best)["meta"], "calibration": stored})
    print(f"train: calibration: scale {scale:.4g} bias {bias:.4g} from {pairs.counts()} -> {best}", file=sys.stderr)
    return stored


# ------------------------------------------------------------------ files


def _save_epoch(out: Path, model, objective, optimiser, scheduler, counters, record, improved) -> None:
    meta = {"epoch": record["epoch"], "val_loss": record["val_loss"], "train_loss": record["train_loss"]}
    checkpoint.save(out / f"epoch_{record['epoch']:03d}.ckpt", model, **meta)
    if improved:
        checkpoint.save(out / "best.ckpt", model, **meta)
    state = {"model": model.state_dict(), "objective": objective.state_dict(), "optimiser": optimiser.state_dict(),
             "scheduler": scheduler.state_dict(), "counters": dict(counters)}
    with atomic_write(out / "state.pt") as handle:
        torch.save(state, handle)
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def _load_state(out: Path, model, objective, optimiser, scheduler) -> dict:
    path = out / "state.pt"
    if not path.is_file():
        raise TrainError(f"{path}: nothing to resume (no state.pt); start without --resume")
    try:
        # never runs code: a file holding pickled objects gets the project's one-line refusal
        state = checkpoint.read_tensors(path, what="training state")
        if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
            raise TrainError(f"{path}: not a training state of training.train (no 'model' weights); "
                             "start without --resume")
        checkpoint.check_finite(path, state["model"], "model.")
        if isinstance(state.get("objective"), dict):
            checkpoint.check_finite(path, state["objective"], "objective.")
    except checkpoint.CheckpointError as e:
        raise TrainError(str(e)) from None
    try:
        model.load_state_dict(state["model"])
        objective.load_state_dict(state["objective"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        counters = dict(state["counters"])
    except Exception as e:  # a corrupt or foreign file: say so, lose nothing
        raise TrainError(f"{path}: cannot resume from it ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    print(f"train: resuming after epoch {counters['epoch']} (best val {counters['best_val_loss']:.4f})", file=sys.stderr)
    return counters


# ------------------------------------------------------------------ CLI


def _kinds(text: str) -> tuple[str, ...]:
    """--negative-kinds: comma-separated names from KINDS."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"choose from {','.join(KINDS)}, got {text!r}")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    trainable = [n for n in models.names() if objectives.trainable(n)]
    p.add_argument("--model", required=True, choices=trainable, help="registry model to train")
    p.add_argument("--data", required=True, help="dataset folder: Urbansas layout (e.g. from python -m "
                   "training.synth) or any folder of videos with sound")
    p.add_argument("--out", required=True, help="run folder for checkpoints and logs")
    d = TrainConfig
    p.add_argument("--width", type=float, default=d.width, help="ResNet-18 width multiplier (default 1.0)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="at most this many epochs (default 100)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="windows per step and process (default 64)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of shuffles, split and initialisation (default 0)")
    p.add_argument("--workers", type=int, default=d.workers, help="DataLoader worker processes (default 0)")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction, help="fraction of clips held out (0.1)")
    p.add_argument("--plateau", type=int, default=d.plateau, help="epochs without improvement before LR x0.1 (5)")
    p.add_argument("--early-stop", type=int, default=d.early_stop, help="epochs without improvement before "
                   "stopping (10)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (smoke tests)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda (default: cuda when available)")
    p.add_argument("--amp", action="store_true", help="bfloat16 mixed precision on CUDA")
    p.add_argument("--init", default=None, help="start from this checkpoint (same model, or rcgrad for IC/EN)")
    p.add_argument("--no-flow-init-rgb", dest="flow_init_rgb", action="store_false",
                   help="IC/EN: keep random flow filters instead of the mean RGB filters")
    p.add_argument("--stride-s", type=float, default=d.stride_s, help="seconds between window centres (1.0)")
    p.add_argument("--flow-cache", default=None, help="folder caching flow between runs (default: none)")
    p.add_argument("--clips-per-batch", type=int, default=0, metavar="K",
                   help="batches of K clips, batch-size/K windows each, so negatives include other moments of "
                        "the same clip (default 0: random batches, as the papers)")
    p.add_argument("--augment", action="store_true",
                   help="mirror/crop/brightness/audio-gain augmentation of training batches (same change to "
                        "picture and flow)")
    p.add_argument("--no-stabilise", dest="stabilise", action="store_false",
                   help="keep camera shake in the flow (default: removed from every flow pair)")
    p.add_argument("--motion-memory", action="store_true",
                   help="train on the 5 s motion memory instead of one flow pair (evaluate with SPEC+memory)")
    p.add_argument("--negatives", type=float, default=d.negatives, metavar="F",
                   help="negative pairs per positive window in each batch: silence, quiet and off-screen-only "
                        "windows, another clip's audio (default 0.25; 0 = none, training as before)")
    p.add_argument("--negative-kinds", type=_kinds, default=d.negative_kinds, metavar="K,K",
                   help=f"which negatives (default all: {','.join(KINDS)})")
    p.add_argument("--box-loss", dest="box_weight", type=float, default=d.box_weight, metavar="W",
                   help="add W x (BCE + Dice) of the model's map against the sounding vehicles' boxes of windows "
                        "at annotated times (annotations/ of an Urbansas-layout set; default 0: the papers' "
                        "audio-visual supervision only)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its state.pt")
    return p


def main(argv=None) -> int:
    args = vars(build_parser().parse_args(argv))
    resume = args.pop("resume")
    try:
        config = TrainConfig(**args)
        if not (math.isfinite(config.box_weight) and config.box_weight >= 0):
            raise TrainError(f"--box-loss must be a finite number >= 0, got {config.box_weight}")
        if config.batch_size < 2:
            raise TrainError("--batch-size must be >= 2: the contrastive losses need negatives")
        try:
            negatives_per_batch(config.negatives, config.batch_size)
        except ValueError as e:
            raise TrainError(f"--negatives: {e}") from None
        out = Path(config.out)
        if not resume and (out / "state.pt").exists():
            raise TrainError(f"{out}: already holds a run; pass --resume to continue it or choose another --out")
        result = run(config, resume=resume)
    except InputError as e:  # TrainError; DataError: a sample and its substitutes could not be read
        print(f"train: error: {_first_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train: interrupted; continue with --resume", file=sys.stderr)
        return 130
    if result["skipped"]:
        counts = ", ".join(f"{reason}: {count}" for reason, count in result["skipped"].items())
        print(f"train: skipped inputs: {counts}", file=sys.stderr)
    loss = "validation loss {:.4f}" if result["validated"] else "training loss {:.4f} (no validation windows)"
    print(f"train: done after {result['epochs']} epochs / {result['steps']} steps; best "
          f"{loss.format(result['best_val_loss'])} -> {result['best']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
