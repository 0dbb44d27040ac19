"""Every training setting checked against its registry or range, before anything is read or
written: `spurspec train` (trainer.train calls `check` first) and a pipeline's plan, which checks
each distinct train setting up front. Torch-free, so planning thousands of jobs imports no torch.
Reads nothing; writes nothing."""

from __future__ import annotations

from spurspec.config import check_seed
from spurspec.datasets.boxes import MODES as BOX_MODES
from spurspec.errors import ConfigError
from spurspec.training import methods, models
from spurspec.training.config import (
    AUGMENTS,
    BALANCES,
    DICES,
    LOSSES,
    REGIONS,
    SCHEDULES,
    SELECT_METRICS,
    TrainConfig,
)
from spurspec.training.data import budget, granularity
from spurspec.training.models import summaries
from spurspec.training.models.choices import NORMALISATIONS
from spurspec.training.models.heads import BINARY_HEADS, BINARY_SCORES, HEADS


def check(cfg: TrainConfig) -> tuple[granularity.Granularity, str]:
    """Validate every choice against its registry; returns (granularity, selection metric)."""
    gran = granularity.parse(cfg.granularity)
    models.check(cfg.model, cfg.pretrained)
    methods.require(cfg.method, {"pixel": gran.pixel, "binary": not gran.pixel})
    methods.check_settings(cfg)
    methods.check_mask_budget(cfg.method, gran.pixel, cfg.mask_budget)
    _check_train_fraction(cfg)
    summaries.get(cfg.summary)
    choices = {"loss": (cfg.loss, LOSSES), "balance": (cfg.balance, BALANCES),
               "box_mode": (cfg.box_mode, BOX_MODES), "augment": (cfg.augment, AUGMENTS),
               "head": (cfg.head, HEADS), "schedule": (cfg.schedule, SCHEDULES), "dice": (cfg.dice, DICES),
               "region": (cfg.region, REGIONS), "binary_head": (cfg.binary_head, BINARY_HEADS),
               "binary_score": (cfg.binary_score, BINARY_SCORES), "normalisation": (cfg.normalisation, NORMALISATIONS)}
    for key, (value, valid) in choices.items():
        if value not in valid:
            raise ConfigError(f"{key} {value!r} is not one of: {', '.join(valid)}")
    metric = cfg.select_metric or gran.default_select
    if metric not in SELECT_METRICS:
        raise ConfigError(f"select_metric {metric!r} is not one of: {', '.join(SELECT_METRICS)}")
    if cfg.compile and gran.pixel:
        # Measured with torch 2.13 (CPU inductor): the U-Net decoders' backward fails an internal
        # stride check (replication_pad2d_backward) on the first epoch; binary models compile.
        raise ConfigError("--compile applies to binary models only: torch.compile fails on spurspec's U-Net "
                          "decoders with this torch; train pixel granularities without it")
    if metric == "dice" and not gran.pixel:
        raise ConfigError("select_metric dice needs a pixel granularity (bbox, seg, grid:K); binary has no Dice")
    for key in ("epochs", "batch_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be at least 1, got {getattr(cfg, key)}")
    if cfg.patience < 0:
        raise ConfigError(f"patience must be 0 (never stop early) or more, got {cfg.patience}")
    if cfg.lr <= 0 or cfg.weight_decay < 0:
        raise ConfigError("lr must be > 0 and weight_decay >= 0")
    check_seed(cfg.seed)
    if cfg.threads is not None and cfg.threads < 1:
        raise ConfigError(f"threads must be at least 1, got {cfg.threads}")
    if cfg.workers is not None and cfg.workers < 0:
        raise ConfigError(f"workers must be >= 0, got {cfg.workers}")
    return gran, metric


def _check_train_fraction(cfg: TrainConfig) -> None:
    """--train-fraction (the study's fewer images) and --mask-budget (spurspec's fewer masks) are
    two answers to one question: one at a time. The region methods draw their regions through the
    mask budget, over every training positive, so the fraction would not bound what they read."""
    if cfg.train_fraction is None:
        return
    budget.check_fraction(cfg.train_fraction)
    if cfg.mask_budget is not None:
        raise ConfigError("--train-fraction and --mask-budget are two ways to train on fewer masks (the study's fewer "
                          "images; spurspec's fewer masks among all images): give one")
    if "regions" in methods.METHODS.get(cfg.method).needs:
        raise ConfigError(f"--train-fraction does not apply to {cfg.method}, which reads regions: give it --mask-budget")
