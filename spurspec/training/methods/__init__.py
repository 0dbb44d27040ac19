"""Training methods by name (METHODS): one card per method says what it is, what it needs from a
run, which train_log columns it fills (with their types), which TrainConfig settings are its own
(with their ranges), and where its class lives. Registered: `erm` (the study's baseline); fewer
masks: `seg-ssl`, `seg-spl`; explanation-guided: `rrr`, `cam-loss`; group-robust: `groupdro`,
`jtt`, `dfr`. The classes, written against methods/base.py, live one per file beside this one.

Torch-free: a card names its class as text and `load` imports it when a run builds it, so
listing the names (CLI choices, pipeline checks, the report) loads no torch. The whole
train_log schema (TRAIN_LOG) is built here: the columns every run logs (artefacts.schemas)
followed by each card's, in registry order. Reads train_log.parquet (read_train_log); writes
nothing. docs/add-a-method.md walks through adding one."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from spurspec.artefacts import io, schemas
from spurspec.errors import ConfigError
from spurspec.registry import Registry

if TYPE_CHECKING:
    from spurspec.training.config import TrainConfig
    from spurspec.training.methods.base import Method

# What a method may need from a run, as a refusal names it.
NEEDS = {
    "pixel": "a pixel granularity (bbox, seg or grid:K); binary has no pixel targets",
    "unlabelled": "training positives without a kept mask, and this run keeps every one's mask "
                  "(give a --mask-budget below the number of masked training positives)",
    "binary": "the image-label granularity (binary): it acts on the classifier's image logit",
    "regions": "masks on training positives (the annotated regions; see --region)",
    "train_attribute": "the spurious attribute (see --attribute) known on every training image",
    "heldout_attribute": "the spurious attribute (see --attribute) on validation images of every (label, attribute) group",
    "one_process": "a single process, not torchrun (it trains or refits a model outside the distributed one, "
                   "or differentiates through input gradients, which spurspec does not run under DDP)",
}
# What a method needs, in the words of issue 13's comparison: nothing beyond image labels,
# attribute labels, or masks (counted by the mask budget). Every key of NEEDS falls in one.
NEED_KINDS = {"regions": "masks", "pixel": "masks", "unlabelled": "masks",
              "train_attribute": "attribute labels", "heldout_attribute": "attribute labels"}


@dataclass(frozen=True)
class Column:
    """A train_log column a method fills each epoch (null in other methods' runs)."""

    name: str
    type: pa.DataType
    doc: str


@dataclass(frozen=True)
class Setting:
    """A TrainConfig field that is a method's own, with its range: `ok(value, cfg)`; `want` says
    the range in a refusal ("{key} must be {want}, got {value}")."""

    key: str
    want: str
    ok: Callable[[Any, TrainConfig], bool]


@dataclass(frozen=True)
class Card:
    name: str
    description: str  # one line, for --help and the docs
    where: str  # "module:Class" of its methods.base.Method subclass
    needs: tuple[str, ...] = ()  # keys of NEEDS
    columns: tuple[Column, ...] = ()
    settings: tuple[Setting, ...] = ()

    def load(self) -> type[Method]:
        """The method's class, imported now (it imports torch)."""
        module, _, cls = self.where.partition(":")
        return getattr(importlib.import_module(module), cls)


def _here(module: str, cls: str) -> str:
    return f"{__name__}.{module}:{cls}"


def _non_negative(key: str) -> Setting:
    return Setting(key, ">= 0", lambda v, _: v >= 0)


CARDS = (
    Card("erm", "empirical risk minimisation on the granularity's targets (the study's baseline)",
         _here("erm", "ERM")),
    Card("seg-ssl", "semi-supervised: FixMatch-style pseudo masks from a mean teacher's confidence on training "
         "positives without a mask (the image label only vetoes)", _here("seg_ssl", "SegSSL"), needs=("pixel", "unlabelled"),
         columns=(Column("ssl_loss", pa.float64(), "mean pseudo-mask loss of an image without a mask (before its weight)"),
                  Column("ssl_weight", pa.float64(), "that weight this epoch (ramped up)"),
                  Column("ssl_positive_share", pa.float64(), "mean share of pseudo-positive pixels"),
                  Column("ssl_confident_share", pa.float64(), "mean share of confident (counted) pixels")),
         settings=(Setting("ssl_teacher_decay", "in [0, 1)", lambda v, _: 0 <= v < 1),
                   Setting("ssl_threshold", "in (0.5, 1]", lambda v, _: 0.5 < v <= 1),
                   _non_negative("ssl_weight"),
                   Setting("ssl_rampup", "a whole number of epochs >= 0", lambda v, _: v >= 0))),
    Card("seg-spl", "pixel-level supervised contrastive loss on the decoder's embeddings beside the segmentation loss",
         _here("seg_spl", "SegSPL"), needs=("pixel",),
         columns=(Column("spl_loss", pa.float64(), "mean pixel-contrastive loss per step (before its weight)"),),
         settings=(_non_negative("spl_weight"), Setting("spl_temperature", "> 0", lambda v, _: v > 0),
                   Setting("spl_pixels", "at least 2", lambda v, _: v >= 2))),
    Card("rrr", "right for the right reasons (Ross et al. 2017): input gradients of the log-probabilities penalised "
         "outside the annotated region", _here("rrr", "RRR"), needs=("binary", "regions", "one_process"),
         columns=(Column("rrr_penalty", pa.float64(), "mean input-gradient penalty per image with a region (before its weight)"),),
         settings=(_non_negative("rrr_weight"),)),
    Card("cam-loss", "the share of the class activation map outside the annotated region penalised (GAIN's external "
         "supervision, Li et al. 2018, as a share)", _here("cam_loss", "CAMLoss"), needs=("binary", "regions"),
         columns=(Column("cam_outside_share", pa.float64(), "mean share of the positive CAM outside the region, on images with one"),),
         settings=(_non_negative("cam_weight"),)),
    Card("groupdro", "group DRO (Sagawa et al. 2020): the loss of the worst (label, attribute) group, by online group weights",
         _here("groupdro", "GroupDRO"), needs=("train_attribute",),
         columns=(Column("dro_max_weight", pa.float64(), "the largest group weight at the epoch's end"),
                  Column("dro_max_weight_group", pa.string(), 'its group ("label=1,chest_tube=0")')),
         settings=(_non_negative("dro_step"),)),
    Card("jtt", "just train twice (Liu et al. 2021): an ERM model's training errors upweighted in a second training",
         _here("jtt", "JTT"), needs=("binary", "one_process"),
         columns=(Column("jtt_errors", pa.int64(), "training images the identification model got wrong (upweighted)"),),
         settings=(Setting("jtt_epochs", "a whole number of epochs >= 1", lambda v, _: v >= 1),
                   Setting("jtt_upweight", ">= 1 (errors weigh at least as much as the rest)", lambda v, _: v >= 1))),
    Card("dfr", "deep feature reweighting (Kirichenko et al. 2022): ERM, then the last layer refit on a group-balanced "
         "half of val with attribute labels, selected on the other half", _here("dfr", "DFR"),
         needs=("binary", "heldout_attribute", "one_process"),
         settings=(Setting("dfr_subsamples", "at least 1", lambda v, _: v >= 1),)),
)

METHODS: Registry[Card] = Registry("method")
for _card in CARDS:
    METHODS.add(_card.name, _card)

# train_log.parquet: every run's columns, then each method's own (nullable: null in other methods' runs).
TRAIN_LOG = schemas.train_log([pa.field(c.name, c.type) for card in CARDS for c in card.columns])


def log_columns() -> list[str]:
    """Every method's train_log columns, in registry order (null where a run's method has none)."""
    return [c.name for card in CARDS for c in card.columns]


def read_train_log(path: Path) -> pa.Table:
    """A run's train_log as TRAIN_LOG: a log written before a method's columns existed reads with
    them null."""
    table = schemas.check(io.read_table(path, "train log"), schemas.train_log([]), path)
    for field in TRAIN_LOG:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(len(table), field.type))
    return io.conform(table, TRAIN_LOG)


def needs_kind(name: str, granularity_pixel: bool = False) -> str:
    """What a run of method `name` pays for: "masks" (a pixel granularity, or a method that reads
    regions), "attribute labels", or "nothing" (image labels only)."""
    kinds = {NEED_KINDS[n] for n in METHODS.get(name).needs if n in NEED_KINDS}
    if granularity_pixel:
        kinds.add("masks")
    return "masks" if "masks" in kinds else next(iter(kinds), "nothing")


def require(name: str, have: dict[str, bool]) -> None:
    """Refuse method `name` when the run lacks one of its needs. `have` says which needs the run
    meets, as far as the caller knows (a need it leaves out counts as met); the message names
    what is missing and the methods that would apply."""
    missing = [need for need in METHODS.get(name).needs if not have.get(need, True)]
    if not missing:
        return
    fits = [m for m in METHODS.names() if all(have.get(need, True) for need in METHODS.get(m).needs)]
    raise ConfigError(f"method {name!r} cannot train this run: it needs {'; and '.join(NEEDS[n] for n in missing)}. "
                      f"Methods that apply: {', '.join(fits)}")


def check_settings(cfg: TrainConfig) -> None:
    """Every method's settings within their ranges (a config.toml holds them all, whatever its method)."""
    for card in CARDS:
        for s in card.settings:
            value = getattr(cfg, s.key)
            if not s.ok(value, cfg):
                raise ConfigError(f"{s.key} must be {s.want}, got {value}")


def check_mask_budget(name: str, pixel: bool, mask_budget: int | float | None) -> None:
    """A mask budget applies to pixel granularities and, on binary, to the methods that read regions."""
    if mask_budget is None or pixel or "regions" in METHODS.get(name).needs:
        return
    readers = [name for name in METHODS.names() if "regions" in METHODS.get(name).needs]
    raise ConfigError(f"--mask-budget applies to pixel granularities (bbox, seg, grid:K) and to the methods that "
                      f"read regions ({', '.join(readers)}), not to binary {name}")
