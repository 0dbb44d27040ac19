"""`train(cfg)`: reads a dataset directory, writes a run directory: config.toml (resolved settings),
mask_budget.parquet, train_log.parquet (per epoch), checkpoints/{last,best}.pt, provenance, and the
`done` marker last. Checks every input before touching the run directory; resumes exactly from
`last.pt`; runs unchanged under torchrun (only rank 0 writes)."""

from __future__ import annotations

import math
import random
import shutil
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from spurspec.artefacts import io, provenance, schemas
from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.layout import RunLayout
from spurspec.config import build, dumps_toml, to_dict
from spurspec.errors import ConfigError, ExistsError, InputError
from spurspec.training import (
    budget,
    checkpoint,
    data,
    distributed,
    granularity,
    loop,
    models,
    networks,
    progress,
    summaries,
)
from spurspec.training.config import RESUMABLE_CHANGES, TrainConfig
from spurspec.training.methods import METHODS

STAGE = "train"


@dataclass
class TrainResult:
    out: Path
    up_to_date: bool = False  # the run had already finished; nothing was done
    finished: bool = False  # the `done` marker is written (False after --epochs-this-run stops early)
    epochs_run: int = 0  # epochs trained by this invocation
    best_epoch: int = -1
    best_metric: float | None = None
    select_metric: str = ""
    log: list[dict[str, Any]] = field(default_factory=list)
    rank: int = 0  # under torchrun, only rank 0 reports
    notes: list[str] = field(default_factory=list)


def check(cfg: TrainConfig) -> tuple[granularity.Granularity, str]:
    """Validate every choice against its registry; returns (granularity, selection metric)."""
    gran = granularity.parse(cfg.granularity)
    models.MODELS.get(cfg.model)
    METHODS.get(cfg.method)
    summaries.get(cfg.summary)
    choices = {"loss": (cfg.loss, loop.LOSSES), "balance": (cfg.balance, loop.BALANCES),
               "box_mode": (cfg.box_mode, ("union", "components")), "augment": (cfg.augment, data.AUGMENTS)}
    for key, (value, valid) in choices.items():
        if value not in valid:
            raise ConfigError(f"{key} {value!r} is not one of: {', '.join(valid)}")
    metric = cfg.select_metric or gran.default_select
    if metric not in loop.SELECT_METRICS:
        raise ConfigError(f"select_metric {metric!r} is not one of: {', '.join(loop.SELECT_METRICS)}")
    if metric == "dice" and not gran.pixel:
        raise ConfigError("select_metric dice needs a pixel granularity (bbox, seg, grid:K); binary has no Dice")
    for key in ("epochs", "batch_size", "patience"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be at least 1, got {getattr(cfg, key)}")
    if cfg.lr <= 0 or cfg.weight_decay < 0:
        raise ConfigError("lr must be > 0 and weight_decay >= 0")
    if cfg.workers is not None and cfg.workers < 0:
        raise ConfigError(f"workers must be >= 0, got {cfg.workers}")
    return gran, metric


def saved_config(layout: RunLayout) -> TrainConfig:
    with open(layout.config, "rb") as fh:
        return build(TrainConfig, tomllib.load(fh), where=str(layout.config))


def _check_run_dir(cfg: TrainConfig, layout: RunLayout, resume: bool, force: bool) -> str:
    """'fresh' | 'resume' | 'done' | 'replace'; raises before anything is written."""
    root = layout.root
    if not root.exists() or not any(root.iterdir()):
        return "fresh"
    if resume:
        if not layout.config.exists():
            raise ExistsError(f"{root}: exists but is not a spurspec run (no config.toml); nothing to resume")
        old = saved_config(layout)
        changed = [k for k, v in to_dict(cfg).items() if k not in RESUMABLE_CHANGES and to_dict(old)[k] != v]
        if changed:
            diffs = ", ".join(f"{k}: {to_dict(old)[k]!r} -> {to_dict(cfg)[k]!r}" for k in changed)
            raise ConfigError(f"{root}: --resume with different settings ({diffs}); use a new --out or --force")
        if layout.done.exists():
            return "done"
        return "resume" if layout.checkpoint("last").exists() else "fresh"
    if not force:
        raise ExistsError(f"{root}: already holds a run; pass --resume to continue it or --force to start over")
    if not layout.config.exists():
        raise ExistsError(f"{root}: exists and is not a spurspec run; refusing to replace it even with --force")
    return "replace"


def _split_rows(ds: Dataset) -> dict[str, np.ndarray]:
    split = np.asarray(ds.manifest.column("split").to_pylist())
    return {s: np.flatnonzero(split == s) for s in schemas.SPLITS}


def _check_classes(ds: Dataset, rows: np.ndarray, what: str, labels: np.ndarray) -> None:
    present = set(np.unique(labels[rows]).tolist())
    if present != {0, 1}:
        have = "no images" if not present else f"only label {sorted(present)[0]}"
        raise InputError(f"{ds.layout.manifest}: the {what} has {have}; training needs both classes there")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(cfg: TrainConfig, resume: bool = False, force: bool = False, progress: bool | Any = True) -> TrainResult:
    """Train one run. `progress`: True = rich bar and epoch lines, False = silent, or a reporter."""
    dist, device = distributed.setup(cfg.device)
    try:
        return _train(cfg, resume, force, progress, dist, device)
    finally:
        dist.close()


def _train(cfg, resume, force, show, dist: distributed.Dist, device: torch.device) -> TrainResult:
    report = (progress.Rich() if show is True else show or progress.Silent()) if dist.main else progress.Silent()
    gran, metric = check(cfg)
    layout = RunLayout(Path(cfg.out))
    state = _check_run_dir(cfg, layout, resume, force)
    result = TrainResult(out=layout.root, select_metric=metric, rank=dist.rank)
    if state == "done":
        result.up_to_date, result.finished = True, True
        return result

    ds = Dataset.open(cfg.dataset)
    labels = np.asarray(ds.manifest.column("label").to_numpy(zero_copy_only=False)).astype(np.int64)
    rows = _split_rows(ds)
    if dist.main:
        targets = granularity.prepare(ds, gran, cfg.box_mode, say=lambda t: (result.notes.append(t), report.say(t)))
    dist.barrier()
    if not dist.main:
        targets = granularity.prepare(ds, gran, cfg.box_mode, say=lambda t: None)
    train_rows, budget_table = rows["train"], None
    if gran.pixel:
        train_rows, budget_table = budget.choose(ds.manifest, rows["train"], cfg.mask_budget, cfg.seed)
    elif cfg.mask_budget is not None:
        raise ConfigError("--mask-budget applies to pixel granularities (bbox, seg, grid:K), not binary")
    _check_classes(ds, train_rows, "train split" + (" (after the mask budget)" if gran.pixel else ""), labels)
    _check_classes(ds, rows["val"], "val split", labels)

    if state == "replace" and dist.main:
        shutil.rmtree(layout.root)
    dist.barrier()
    if dist.main and state != "resume":
        io.write_text(layout.config, dumps_toml(to_dict(replace(cfg, epochs_this_run=None))))
        if budget_table is not None:
            io.write_table(layout.mask_budget, budget_table, schemas.MASK_BUDGET)

    _seed_everything(cfg.seed)
    model = models.build(cfg.model, ds.channels, gran.pixel)
    if cfg.pretrained is not None:
        n = networks.load_pretrained(model, cfg.pretrained)
        report.say(f"loaded {n} encoder tensors from {cfg.pretrained}")
    cuda = device.type == "cuda"
    model = model.to(device, memory_format=torch.channels_last if cuda else torch.preserve_format)
    amp_dtype = None
    if cuda and cfg.amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    n_pos = int((labels[train_rows] == 1).sum())
    pos_weight = (len(train_rows) - n_pos) / n_pos if cfg.balance == "pos-weight" else 1.0

    start, best, best_epoch, log = 0, None, -1, []
    if state == "resume":
        ck = checkpoint.load(layout.checkpoint("last"), map_location=device)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        checkpoint.set_rng_states(ck["rng"])
        start, best, best_epoch, log = ck["epoch"] + 1, ck["best"], ck["best_epoch"], list(ck["log"])
        report.say(f"resuming {layout.root} after epoch {start} (best {metric} {best} at epoch {best_epoch + 1})")
    net = model
    if dist.active:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    step = loop.Step(net, optimizer, scaler, device, amp_dtype, gran.pixel, cfg.loss, pos_weight, cuda,
                     objective=METHODS.get(cfg.method).objective())

    workers = cfg.workers if cfg.workers is not None else data.default_workers(device)
    dataset = data.RowsDataset(ds.root, labels, targets, cfg.augment, cfg.seed)
    val_set = data.RowsDataset(ds.root, labels, targets, "none", cfg.seed)
    val_loader = data.loader(val_set, data.shard(rows["val"], dist.rank, dist.world).tolist(), cfg.batch_size, workers, device)
    summary = summaries.get(cfg.summary)
    since_best = 0 if best_epoch < 0 else (start - 1 - best_epoch)
    stop_at = cfg.epochs if cfg.epochs_this_run is None else min(cfg.epochs, start + cfg.epochs_this_run)
    stopped_early = False
    for epoch in range(start, stop_at):
        if since_best >= cfg.patience:
            stopped_early = True
            break
        epoch_rows = data.epoch_rows(train_rows, labels, cfg.balance, cfg.seed, epoch)
        sampler = data.EpochSampler(epoch_rows, epoch, cfg.seed, dist.rank, dist.world)
        report.start_epoch(epoch, cfg.epochs, len(sampler) * dist.world)
        stats = loop.train_epoch(step, data.loader(dataset, sampler, cfg.batch_size, workers, device),
                                 lambda n, loss: report.batch(n * dist.world, loss))
        val = _validate(step, val_loader, summary, dist)
        total_loss, total_n, wait = dist.sum([stats["loss_sum"], stats["n"], stats["wait_seconds"]])
        seconds = max(dist.sum([stats["seconds"]])[0] / dist.world, 1e-9)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        value = val[f"val_{metric}"]
        best_auroc = next((r["val_auroc"] for r in log if r["epoch"] == best_epoch), None)
        is_best = _improves(value, val["val_auroc"], best, best_auroc)
        if is_best:
            best, best_epoch, since_best = value, epoch, 0
        else:
            since_best += 1
        row = {"epoch": epoch, "train_loss": total_loss / max(total_n, 1), **val, "lr": lr,
               "images_per_s": total_n / seconds, "data_wait_fraction": wait / dist.world / seconds,
               "epoch_seconds": seconds, "is_best": is_best}
        log.append(row)
        result.epochs_run += 1
        if dist.main:
            meta = {"granularity": gran.name, "model": cfg.model, "select_metric": metric, "channels": ds.channels}
            kwargs = dict(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, epoch=epoch,
                          best=best, best_epoch=best_epoch, log=log, meta=meta)
            if is_best:
                checkpoint.save(layout.checkpoint("best"), **kwargs)
            checkpoint.save(layout.checkpoint("last"), **kwargs)
            io.write_table(layout.train_log, pa.Table.from_pylist(log), schemas.TRAIN_LOG)
        report.end_epoch(row)
        dist.barrier()
    report.close()
    result.log, result.best_epoch, result.best_metric = log, best_epoch, best
    if stop_at < cfg.epochs and not stopped_early:
        report.say(f"stopped after epoch {stop_at} as asked; continue with --resume")
        return result
    if stopped_early:
        report.say(f"early stop: no {metric} improvement for {cfg.patience} epochs")
    if dist.main:
        inputs = {"dataset": ds.fingerprint()}
        boxes_prov = ds.layout.provenance("derive-boxes")
        if gran.source in ("boxes", "grid") and boxes_prov.exists():
            inputs["derive-boxes"] = provenance.file_digest(boxes_prov)
        settings = {**to_dict(replace(cfg, epochs_this_run=None)), "select_metric": metric, "world_size": dist.world}
        provenance.write(layout.provenance(STAGE), STAGE, settings, inputs)
        io.write_text(layout.done, "")  # last: its presence means every file above is complete
    result.finished = True
    return result


def _validate(step: loop.Step, val_loader, summary, dist: distributed.Dist) -> dict[str, float]:
    """Val loss, AUROC and (pixel) mean Dice over positives with a target, across all ranks."""
    part = loop.predict(step, val_loader, summary)
    parts = dist.gather(part)
    cat = {k: np.concatenate([p[k] for p in parts]) for k in part}
    dice = cat["dice"][~np.isnan(cat["dice"])] if step.pixel else np.zeros(0)
    return {
        "val_loss": float(cat["loss"].mean()) if len(cat["loss"]) else float("nan"),
        "val_auroc": loop.auroc(cat["label"], cat["score"]),
        "val_dice": float(dice.mean()) if len(dice) else float("nan"),
    }


def _improves(value: float, auroc: float, best: float | None, best_auroc: float | None) -> bool:
    """Is this epoch better than the best so far? Ties on the selection metric are broken by val
    AUROC: thresholded Dice often stays exactly 0 for the first epochs of pixel training, and
    without a tie-break the first epoch would be kept and patience would stop a learning run."""
    if math.isnan(value):
        return False
    if best is None or value > best:
        return True
    if value < best or math.isnan(auroc):
        return False
    return best_auroc is None or math.isnan(best_auroc) or auroc > best_auroc
