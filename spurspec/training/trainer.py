"""`train(cfg)`: reads a dataset directory, writes a run directory: config.toml (resolved settings),
mask_budget.parquet, train_log.parquet (per epoch), checkpoints/{last,best}.pt, provenance, and the
`done` marker last. Checks every input before touching the run directory; resumes exactly from
`last.pt`; runs unchanged under torchrun (only rank 0 writes). The training method is looked up by
name (methods.METHODS) and driven through its hooks (methods/base.py): its data, loss, state,
train_log columns and own tables are its own, so nothing here names a method."""

from __future__ import annotations

import contextlib
import math
import random
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from spurspec import runtime
from spurspec.artefacts import io, locks, provenance, schemas
from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.layout import RunLayout
from spurspec.artefacts.run import TRAIN_STAGE, Completion, RunRecord, dataset_link
from spurspec.config import dumps_toml, to_dict
from spurspec.errors import ConfigError, ExistsError, InputError
from spurspec.metrics.auroc import auroc
from spurspec.training import checkpoint, distributed, loop, methods, models, progress
from spurspec.training.checks import check
from spurspec.training.config import (
    KEEP_NEGATIVES,
    LOCATIONS,
    RESUMABLE_CHANGES,
    TrainConfig,
    pretrained_source,
    same_setting,
)
from spurspec.training.data import augment, budget, granularity
from spurspec.training.data import rows as data
from spurspec.training.methods.base import Method, MethodData, RunContext, RunData, Stage
from spurspec.training.models import summaries, weights
from spurspec.training.models.heads import BinaryHead, PixelHead

STAGE = TRAIN_STAGE  # RUN/provenance/train.json; the run record reads it too


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


def saved_config(layout: RunLayout) -> TrainConfig:
    """The resolved settings a run was trained with (its config.toml, through the run record)."""
    return RunRecord.open(layout.root).settings(TrainConfig)


def _check_run_dir(cfg: TrainConfig, layout: RunLayout, resume: bool, force: bool) -> str:
    """'fresh' | 'resume' | 'done' | 'replace'; raises before anything is written."""
    root = layout.root
    if not root.exists() or not any(root.iterdir()):
        return "fresh"
    if resume:
        if not layout.config.exists():
            raise ExistsError(f"{root}: exists but is not a spurspec run (no config.toml); nothing to resume")
        old, new = to_dict(saved_config(layout)), to_dict(cfg)
        # Where the run and its dataset live is not their identity: the dataset is compared by content.
        changed = [k for k, v in new.items()
                   if k not in (*RESUMABLE_CHANGES, *LOCATIONS) and not same_setting(k, old[k], v)]
        if changed:
            diffs = ", ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in changed)
            raise ConfigError(f"{root}: --resume with different settings ({diffs}); use a new --out or --force")
        RunRecord.open(root).open_dataset(moved_to=Path(cfg.dataset))
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
        check(cfg)  # refused settings touch no file, not even the lock
        runtime.configure(cfg.threads)
        # One writer per run directory (a second one exits 4 naming this one); rank 0 writes.
        with locks.hold(cfg.out, STAGE) if dist.main else contextlib.nullcontext():
            return _train(cfg, resume, force, progress, dist, device)
    finally:
        dist.close()


@dataclass
class _Run:
    """Everything the epochs of one run share, built once."""

    cfg: TrainConfig
    gran: granularity.Granularity
    metric: str
    layout: RunLayout
    dist: distributed.Dist
    report: Any
    data: RunData
    own: MethodData  # the method's own data (its prepare_data's answer)
    method: Method
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    step: loop.Step


@dataclass
class _State:
    """Early-stopping state, saved in every checkpoint and restored by --resume."""

    start: int = 0
    best: float | None = None
    best_epoch: int = -1
    log: list[dict[str, Any]] = field(default_factory=list)


def _train(cfg, resume, force, show, dist: distributed.Dist, device: torch.device) -> TrainResult:
    report = (progress.Rich() if show is True else show or progress.Silent()) if dist.main else progress.Silent()
    gran, metric = check(cfg)
    layout = RunLayout(Path(cfg.out))
    state = _check_run_dir(cfg, layout, resume, force)
    result = TrainResult(out=layout.root, select_metric=metric, rank=dist.rank)
    if state == "done":
        if dist.main:
            _relink(cfg, layout, report, resumed=False)
        result.up_to_date, result.finished = True, True
        return result
    data_, own = _prepare_data(cfg, gran, dist, lambda t: (result.notes.append(t), report.say(t)))
    # The model (and any pretrained weights it fetches) before the run directory: a failed
    # download or a bad weights file leaves nothing that blocks the corrected rerun.
    model = _model(cfg, gran, data_, dist, report, fresh=state != "resume")
    _start_run_dir(cfg, layout, state, data_.budget if data_.budget is not None else own.budget, dist,
                   data_.ds.fingerprint(), report)
    run = _build(cfg, gran, metric, layout, dist, device, report, data_, own, model)
    progress_ = _resume(run) if state == "resume" else _State()
    if state != "resume":
        run.method.begin(_stage(run))
    stopped_early = _epochs(run, progress_, result)
    report.close()
    result.log, result.best_epoch, result.best_metric = progress_.log, progress_.best_epoch, progress_.best
    stop_at = cfg.epochs if cfg.epochs_this_run is None else min(cfg.epochs, progress_.start + cfg.epochs_this_run)
    if stop_at < cfg.epochs and not stopped_early:
        report.say(f"stopped after epoch {stop_at} as asked; continue with --resume")
        return result
    if stopped_early:
        report.say(f"early stop: no {metric} improvement for {cfg.patience} epochs")
    run.method.end(_stage(run))
    _finish(run, progress_)
    result.finished = True
    return result


def _prepare_data(cfg: TrainConfig, gran: granularity.Granularity, dist: distributed.Dist, say) -> tuple[RunData, MethodData]:
    """Open the dataset, make sure its targets exist (rank 0 derives missing boxes), apply the
    mask budget, check both classes are present where training and selection need them, then
    let the method read what it needs beyond that; refuses the method when the data cannot serve it."""
    ds = Dataset.open(cfg.dataset)
    if gran.pixel:
        models.check_pixel_size(ds.size, ds.root)
    labels = np.asarray(ds.manifest.column("label").to_numpy(zero_copy_only=False)).astype(np.int64)
    rows = _split_rows(ds)
    targets = dist.rank0_first(lambda main: granularity.prepare(
        ds, gran, cfg.box_mode, say=say if main else progress.Silent().say, head=cfg.head))
    balance = effective_balance(cfg.balance, ds)
    train_rows, budget_table, unlabelled = _train_rows(cfg, gran, ds, labels, rows["train"], targets, balance)
    fewer = " (after the mask budget)" if gran.pixel and cfg.mask_budget is not None else ""
    fewer = " (after the train fraction)" if cfg.train_fraction is not None else fewer
    _check_classes(ds, train_rows, "train split" + fewer, labels)
    _check_classes(ds, rows["val"], "val split", labels)
    data_ = RunData(ds, labels, rows, targets, train_rows, balance, budget_table, unlabelled,
                    effective_augment(cfg.augment, ds))
    own = methods.METHODS.get(cfg.method).load().prepare_data(cfg, data_, dist, say)
    methods.require(cfg.method, {"pixel": gran.pixel, "binary": not gran.pixel, "one_process": not dist.active,
                                 **own.have})
    return data_, own


def _train_rows(cfg: TrainConfig, gran: granularity.Granularity, ds: Dataset, labels: np.ndarray, train: np.ndarray,
                targets, balance: str) -> tuple[np.ndarray, pa.Table | None, np.ndarray]:
    """(training rows, the mask table, the unlabelled rows) in the study's order: the mask budget,
    the negative subsampling, then the train fraction (the study drew its sample_ratio from the
    subsampled images). Under a three-class head negatives' masks are targets, so both count them."""
    rows, table, unlabelled = train, None, np.zeros(0, np.int64)
    negatives_masked = targets is not None and targets.classes == 3
    if gran.pixel:
        rows, table = budget.choose(ds.manifest, train, cfg.mask_budget, cfg.seed, negatives_masked)
        unlabelled = _unlabelled(cfg, labels, train, rows)
        rows = np.union1d(rows, unlabelled)
    if balance == "subsample-once":
        rows = data.keep_negatives_once(rows, labels, KEEP_NEGATIVES, cfg.seed)
    if cfg.train_fraction is not None:
        rows, sampled = budget.sample(ds.manifest, rows, cfg.train_fraction, cfg.seed, negatives_masked)
        table = sampled if gran.pixel else None
    return rows, table, unlabelled


def _unlabelled(cfg: TrainConfig, labels: np.ndarray, train: np.ndarray, pixel_rows: np.ndarray) -> np.ndarray:
    """The training positives without a kept mask, for a method that learns from them (its card
    needs "unlabelled"; none otherwise); refuses that method when there are none."""
    if "unlabelled" not in methods.METHODS.get(cfg.method).needs:
        return np.zeros(0, np.int64)
    rows = budget.unlabelled(labels, train, pixel_rows)
    methods.require(cfg.method, {"pixel": True, "binary": False, "unlabelled": len(rows) > 0})
    return rows


def effective_balance(balance: str, ds: Dataset) -> str:
    """`study` as the study's code did it: negatives kept once with p = 0.33 on chest films, no
    subsampling on ISIC (whose classes the study left as they were); other modes as named."""
    if balance != "study":
        return balance
    return "none" if ds.info.get("name") == "isic" else "subsample-once"


def effective_augment(augment: str, ds: Dataset) -> str:
    """`study` as the study's code did it: its augmentation list on chest films, none on ISIC (the
    study's ISIC loader has none); other modes as named."""
    return "none" if augment == "study" and ds.info.get("name") == "isic" else augment


def _start_run_dir(cfg: TrainConfig, layout: RunLayout, state: str, budget_table: pa.Table | None,
                   dist: distributed.Dist, fingerprint: str, report) -> None:
    """Every input has been checked: only now is the run directory replaced or written."""
    if state == "replace" and dist.main:
        shutil.rmtree(layout.root)
    dist.barrier()
    if dist.main and state == "resume":
        _relink(cfg, layout, report, resumed=True)
    if dist.main and state != "resume":
        io.write_text(layout.config, dumps_toml(recorded_settings(cfg)))
        if budget_table is not None:
            io.write_table(layout.mask_budget, budget_table, schemas.MASK_BUDGET)
        # What the run trains on, by content, from its first epoch: --resume and the stages after
        # it accept the dataset at a new place only when its content is this one.
        provenance.write(layout.provenance(STAGE), STAGE, recorded_settings(cfg), {"dataset": fingerprint},
                         completion=Completion(False, 0, cfg.epochs).as_record(), dataset_at=_dataset_at(cfg))


def _dataset_at(cfg: TrainConfig) -> str:
    """Where the dataset was when the run started: a run copied elsewhere alone still finds it
    there (RunRecord.dataset checks the content first)."""
    return str(Path(cfg.dataset).absolute())


def recorded_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The settings a run records (config.toml, provenance): paths relative to the run directory,
    so the run can move (with its dataset, or pointed at the dataset's new place on --resume)."""
    return {**to_dict(replace(cfg, epochs_this_run=None)), "out": ".", "dataset": dataset_link(cfg.out, cfg.dataset)}


def _relink(cfg: TrainConfig, layout: RunLayout, report, resumed: bool) -> None:
    """A run records its dataset's new place (same content, checked by _check_run_dir); a resumed
    one also the settings a resume may change (epochs, patience), so a later --resume and
    `evaluate`'s completion read the current plan."""
    record = RunRecord.open(layout.root)
    if record.relink(Path(cfg.dataset)):
        report.say(f"{layout.root}: dataset now read from {cfg.dataset} (same content); the run records its new place")
    text = dumps_toml(recorded_settings(cfg))
    if resumed and text != layout.config.read_text(encoding="utf-8"):
        io.write_text(layout.config, text)


def _model(cfg: TrainConfig, gran, data_: RunData, dist: distributed.Dist, report, fresh: bool) -> torch.nn.Module:
    """The seeded model; a fresh run loads its pretrained encoder (rank 0 fetches a missing
    file into the cache first, the other ranks then read it). A resumed run gets every weight
    from its checkpoint, so it needs no cache on the node it resumes on."""
    _seed_everything(cfg.seed)
    out_channels = (PixelHead(data_.targets.classes).out_channels if data_.targets is not None
                    else BinaryHead(cfg.binary_head).out_features)
    model = models.build(cfg.model, data_.ds.channels, gran.pixel, out_channels, cfg.normalisation,
                         data_.ds.info.get("name"))
    source = pretrained_source(cfg)
    if source is None or not fresh:
        return model

    def load(main: bool) -> None:
        n = weights.load_pretrained(model, source)
        if main:
            report.say(f"loaded {n} encoder tensors from {source}")

    dist.rank0_first(load)
    return model


def _build(cfg, gran, metric, layout, dist, device, report, data_: RunData, own: MethodData, model) -> _Run:
    """The method, optimiser, schedule, scaler and the step around the model, on its device."""
    amp_dtype, channels_last = accelerator_options(device, cfg.amp)
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    head = _head(data_)
    method = methods.METHODS.get(cfg.method).load()(RunContext(cfg, data_, own, model, head, device, dist))
    optimizer = torch.optim.Adam([*model.parameters(), *method.parameters()], lr=cfg.lr,
                                 weight_decay=cfg.weight_decay)
    if cfg.schedule == "constant":
        scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    n_pos = int((data_.labels[data_.train_rows] == 1).sum())
    pos_weight = (len(data_.train_rows) - n_pos) / n_pos if data_.balance == "pos-weight" else 1.0
    net = model
    if dist.active:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:  # the first steps pay the compile time; the saved weights are the plain model's
        net = torch.compile(net)
    step = loop.Step(net, optimizer, scaler, device, amp_dtype, gran.pixel, cfg.loss, pos_weight, channels_last,
                     objective=method, head=head, binary=BinaryHead(cfg.binary_head, cfg.binary_score),
                     augment=augment.batch_augment(data_.augment, cfg.seed, device))
    return _Run(cfg, gran, metric, layout, dist, report, data_, own, method, model, optimizer, scheduler, scaler, step)


def _stage(run: _Run) -> Stage:
    """What the method's begin and end may do with this run."""
    return Stage(run.cfg, run.data, run.own, run.layout, run.model, run.step, run.dist, run.report.say)


def _unlabelled_items(run: _Run) -> np.ndarray:
    """The training rows whose items carry `labelled` False: the run's (a method that learns from
    positives without a kept mask) and the method's own (positives whose region is not kept)."""
    return np.union1d(run.data.unlabelled, run.own.unlabelled)


def accelerator_options(device: torch.device, amp: bool, bf16: bool | None = None) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype, channels_last) of the GPU path: on CUDA, bf16 autocast where the GPU has it
    (else fp16, with the gradient scaler) when `amp`, and channels_last memory (tensor cores read
    NHWC); on a CPU neither (fp32, default memory format). `bf16` overrides the device query (tests).
    tests/unit/test_gpu_path.py runs both on a CPU through the same loop."""
    if device.type != "cuda":
        return None, False
    if bf16 is None:
        bf16 = torch.cuda.is_bf16_supported()
    return ((torch.bfloat16 if bf16 else torch.float16) if amp else None), True


def _head(data_: RunData) -> PixelHead | None:
    return PixelHead(data_.targets.classes) if data_.targets is not None else None


def _resume(run: _Run) -> _State:
    """Restore weights, optimiser, schedule, scaler, RNG states and early-stopping state."""
    ck = checkpoint.load(run.layout.checkpoint("last"), map_location=run.step.device)
    run.model.load_state_dict(ck["model"])
    run.optimizer.load_state_dict(ck["optimizer"])
    run.scheduler.load_state_dict(ck["scheduler"])
    run.scaler.load_state_dict(ck["scaler"])
    run.method.load_state_dict(ck.get("method", {}))
    checkpoint.set_rng_states(ck["rng"])
    state = _State(ck["epoch"] + 1, ck["best"], ck["best_epoch"], list(ck["log"]))
    run.report.say(f"resuming {run.layout.root} after epoch {state.start} "
                   f"(best {run.metric} {state.best} at epoch {state.best_epoch + 1})")
    return state


def _epochs(run: _Run, state: _State, result: TrainResult) -> bool:
    """Train from state.start until the epoch budget, this invocation's share, or patience ends
    it; returns whether patience stopped it."""
    cfg, dist, device = run.cfg, run.dist, run.step.device
    workers = cfg.workers if cfg.workers is not None else data.default_workers(device)
    dataset = data.RowsDataset(run.data.ds.root, run.data.labels, run.data.targets or run.own.targets,
                               run.data.augment, cfg.seed, unlabelled=_unlabelled_items(run))
    val_set = data.RowsDataset(run.data.ds.root, run.data.labels, run.data.targets, "none", cfg.seed)
    val_rows = data.shard(run.data.rows["val"], dist.rank, dist.world).tolist()
    val_loader = data.loader(val_set, val_rows, cfg.batch_size, workers, device)
    summary = summaries.get(cfg.summary)
    since_best = 0 if state.best_epoch < 0 else (state.start - 1 - state.best_epoch)
    stop_at = cfg.epochs if cfg.epochs_this_run is None else min(cfg.epochs, state.start + cfg.epochs_this_run)
    for epoch in range(state.start, stop_at):
        if cfg.patience and since_best >= cfg.patience:
            return True
        epoch_rows = data.epoch_rows(run.data.train_rows, run.data.labels, run.data.balance, cfg.seed, epoch)
        sampler = data.EpochSampler(epoch_rows, epoch, cfg.seed, dist.rank, dist.world)
        run.report.start_epoch(epoch, cfg.epochs, len(sampler) * dist.world)
        stats = loop.train_epoch(run.step, data.loader(dataset, sampler, cfg.batch_size, workers, device),
                                 lambda n, loss: run.report.batch(n * dist.world, loss))
        row = _log_row(run, epoch, stats, _validate(run.step, val_loader, summary, dist, cfg.dice))
        run.scheduler.step()
        since_best = 0 if _record_epoch(run, state, row) else since_best + 1
        result.epochs_run += 1
        run.report.end_epoch(row)
        dist.barrier()
    return False


def _log_row(run: _Run, epoch: int, stats: dict[str, float], val: dict[str, float]) -> dict[str, Any]:
    """One train_log row: losses and validation metrics summed over ranks, throughput, timing."""
    dist = run.dist
    total_loss, total_n, wait = dist.sum([stats["loss_sum"], stats["n"], stats["wait_seconds"]])
    seconds = max(dist.sum([stats["seconds"]])[0] / dist.world, 1e-9)
    return {"epoch": epoch, "train_loss": total_loss / max(total_n, 1), **val, "lr": run.optimizer.param_groups[0]["lr"],
            "images_per_s": total_n / seconds, "data_wait_fraction": wait / dist.world / seconds,
            "epoch_seconds": seconds, "is_best": False,
            **dict.fromkeys(methods.log_columns()), **run.method.epoch_log(dist)}


def _record_epoch(run: _Run, state: _State, row: dict[str, Any]) -> bool:
    """Update the best-so-far, append the log row and (rank 0) write checkpoints and the log."""
    best_auroc = next((r["val_auroc"] for r in state.log if r["epoch"] == state.best_epoch), None)
    is_best = _improves(row[f"val_{run.metric}"], row["val_auroc"], state.best, best_auroc)
    row["is_best"] = is_best
    if is_best:
        state.best, state.best_epoch = row[f"val_{run.metric}"], row["epoch"]
    state.log.append(row)
    if run.dist.main:
        meta = {"granularity": run.gran.name, "model": run.cfg.model, "select_metric": run.metric,
                "channels": run.data.ds.channels, "classes": run.step.head.classes if run.step.head else 0}
        kwargs = dict(model=run.model, optimizer=run.optimizer, scheduler=run.scheduler, scaler=run.scaler,
                      epoch=row["epoch"], best=state.best, best_epoch=state.best_epoch, log=state.log, meta=meta,
                      method=run.method.state_dict())
        if is_best:
            checkpoint.save(run.layout.checkpoint("best"), **kwargs, resumable=False)
        checkpoint.save(run.layout.checkpoint("last"), **kwargs)
        # Rows of a log begun by an older spurspec lack the method columns: null there.
        rows = [{**dict.fromkeys(methods.TRAIN_LOG.names), **r} for r in state.log]
        io.write_table(run.layout.train_log, pa.Table.from_pylist(rows), methods.TRAIN_LOG)
    return is_best


def _finish(run: _Run, state: _State) -> None:
    """Rank 0: provenance, then the `done` marker last (its presence means the run is complete)."""
    if not run.dist.main:
        return
    ds = run.data.ds
    inputs = {"dataset": ds.fingerprint()}
    boxes_prov = ds.layout.provenance("derive-boxes")
    if run.gran.needs_boxes and boxes_prov.exists():
        inputs["derive-boxes"] = provenance.file_digest(boxes_prov)
    settings = {**recorded_settings(run.cfg), "select_metric": run.metric,
                "world_size": run.dist.world, "balance_in_effect": run.data.balance,
                "augment_in_effect": run.data.augment, "normalisation_in_effect": models.input_normalisation(
                    run.cfg.model, run.gran.pixel, run.cfg.normalisation, ds.info.get("name"), ds.channels),
                "pixel_classes": run.step.head.classes if run.step.head else None,
                "unlabelled_train_images": len(_unlabelled_items(run)), **run.method.record()}
    completion = Completion(True, len(state.log), run.cfg.epochs)
    provenance.write(run.layout.provenance(STAGE), STAGE, settings, inputs, completion=completion.as_record(),
                     dataset_at=_dataset_at(run.cfg))
    io.write_text(run.layout.done, "")


def _validate(step: loop.Step, val_loader, summary, dist: distributed.Dist, dice_mode: str) -> dict[str, float]:
    """Val loss, AUROC and (pixel) mean Dice of the positive class, across all ranks. positives:
    at P(positive region) > 0.5, over images whose target holds the positive class. study: the
    study's, on the argmax class map over every image except those with an empty target and
    nothing predicted (its nanmean); a false positive on a negative image scores 0."""
    part = loop.predict(step, val_loader, summary)
    parts = dist.gather(part)
    cat = {k: np.concatenate([p[k] for p in parts]) for k in part}
    dice = np.zeros(0)
    if step.pixel:
        dice = cat["study_dice"] if dice_mode == "study" else cat["dice"][cat["has_target"] > 0]
        dice = dice[~np.isnan(dice)]
    value = auroc(cat["score"], cat["label"])
    return {
        "val_loss": float(cat["loss"].mean()) if len(cat["loss"]) else float("nan"),
        "val_auroc": float("nan") if value is None else value,
        "val_dice": float(dice.mean()) if len(dice) else float("nan"),
    }


def _improves(value: float, val_auroc: float, best: float | None, best_auroc: float | None) -> bool:
    """Is this epoch better than the best so far? Ties on the selection metric are broken by val
    AUROC: thresholded Dice often stays exactly 0 for the first epochs of pixel training, and
    without a tie-break the first epoch would be kept and patience would stop a learning run."""
    if math.isnan(value):
        return False
    if best is None or value > best:
        return True
    if value < best or math.isnan(val_auroc):
        return False
    return best_auroc is None or math.isnan(best_auroc) or val_auroc > best_auroc
