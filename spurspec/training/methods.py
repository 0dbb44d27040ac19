"""Training methods by name (METHODS): how a training batch becomes a per-image loss, what a
method needs from the run, and which train_log columns it fills. Registered: `erm` (the study's
baseline); fewer masks: `seg-ssl` (semi-supervised, training/ssl.py) and `seg-spl` (pixel-level
supervised contrastive, training/spl.py); explanation-guided: `rrr` and `cam-loss`
(training/explain.py); group-robust: `groupdro`, `jtt` and `dfr` (training/groups.py).
Torch-free: each factory imports its module when a run builds it, so listing the names (CLI
choices, pipeline checks) loads no torch. Reads and writes nothing."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spurspec.errors import ConfigError
from spurspec.registry import Registry

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
class Method:
    description: str
    # Builds the training objective (a training.loop.Objective: the per-image loss
    # (step, logits, batch, weighted) -> (B,) fp32 plus the hooks around a step), called with
    # keyword arguments cfg, model, head, device, dist and data (the trainer's _Data: labels, rows,
    # regions, attribute groups). Validation always uses the ERM loss.
    objective: Callable[..., Any]
    needs: tuple[str, ...] = ()  # keys of NEEDS
    columns: tuple[str, ...] = ()  # the train_log columns it fills (nullable in schemas.TRAIN_LOG)


def _erm(**context: Any) -> Any:
    from spurspec.training.loop import Objective

    return Objective()


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """The factory of objective class `name` of `module`, imported only when a run builds it."""
    def build(**context: Any) -> Any:
        return getattr(importlib.import_module(module), name)(**context)

    return build


_seg_ssl = _lazy("spurspec.training.ssl", "SegSSL")
_seg_spl = _lazy("spurspec.training.spl", "SegSPL")
_rrr = _lazy("spurspec.training.explain", "RRR")
_cam_loss = _lazy("spurspec.training.explain", "CAMLoss")
_groupdro = _lazy("spurspec.training.groups", "GroupDRO")
_jtt = _lazy("spurspec.training.groups", "JTT")
_dfr = _lazy("spurspec.training.groups", "DFR")


METHODS: Registry[Method] = Registry("method")
METHODS.add("erm", Method("empirical risk minimisation on the granularity's targets (the study's baseline)", _erm))
METHODS.add("seg-ssl", Method(
    "semi-supervised: FixMatch-style pseudo masks from a mean teacher on training positives without a mask, "
    "constrained by the image label", _seg_ssl, needs=("pixel", "unlabelled"),
    columns=("ssl_loss", "ssl_weight", "ssl_positive_share", "ssl_confident_share")))
METHODS.add("seg-spl", Method(
    "pixel-level supervised contrastive loss on the decoder's embeddings beside the segmentation loss",
    _seg_spl, needs=("pixel",), columns=("spl_loss",)))
METHODS.add("rrr", Method(
    "right for the right reasons (Ross et al. 2017): input gradients of the log-probabilities penalised "
    "outside the annotated region", _rrr, needs=("binary", "regions", "one_process"), columns=("rrr_penalty",)))
METHODS.add("cam-loss", Method(
    "the share of the class activation map outside the annotated region penalised (GAIN's external "
    "supervision, Li et al. 2018, as a share)", _cam_loss, needs=("binary", "regions"), columns=("cam_outside_share",)))
METHODS.add("groupdro", Method(
    "group DRO (Sagawa et al. 2020): the loss of the worst (label, attribute) group, by online group weights",
    _groupdro, needs=("train_attribute",), columns=("dro_max_weight", "dro_max_weight_group")))
METHODS.add("jtt", Method(
    "just train twice (Liu et al. 2021): an ERM model's training errors upweighted in a second training",
    _jtt, needs=("binary", "one_process"), columns=("jtt_errors",)))
METHODS.add("dfr", Method(
    "deep feature reweighting (Kirichenko et al. 2022): ERM, then the last layer refit on a group-balanced "
    "half of val with attribute labels, selected on the other half",
    _dfr, needs=("binary", "heldout_attribute", "one_process"), columns=()))


def needs_kind(name: str, granularity_pixel: bool = False) -> str:
    """What a run of method `name` pays for: "masks" (a pixel granularity, or a method that reads
    regions), "attribute labels", or "nothing" (image labels only)."""
    kinds = {NEED_KINDS[n] for n in METHODS.get(name).needs if n in NEED_KINDS}
    if granularity_pixel:
        kinds.add("masks")
    return "masks" if "masks" in kinds else next(iter(kinds), "nothing")


def log_columns() -> list[str]:
    """Every method's train_log columns, in registry order (null where a run's method has none)."""
    return [c for name in METHODS.names() for c in METHODS.get(name).columns]


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


def check_settings(cfg: Any) -> None:
    """The ranges of the methods' settings (TrainConfig's ssl_*, spl_*, rrr/cam/dro/jtt/dfr fields)."""
    rules = [
        ("ssl_teacher_decay", 0 <= cfg.ssl_teacher_decay < 1, "in [0, 1)"),
        ("ssl_threshold", 0.5 < cfg.ssl_threshold <= 1, "in (0.5, 1]"),
        ("ssl_weight", cfg.ssl_weight >= 0, ">= 0"),
        ("ssl_rampup", cfg.ssl_rampup >= 0, "a whole number of epochs >= 0"),
        ("ssl_min_share", 0 < cfg.ssl_min_share <= cfg.ssl_max_share, "in (0, ssl_max_share]"),
        ("ssl_max_share", cfg.ssl_max_share < 1, "below 1 (a pseudo mask never covers the whole image)"),
        ("spl_weight", cfg.spl_weight >= 0, ">= 0"),
        ("spl_temperature", cfg.spl_temperature > 0, "> 0"),
        ("spl_pixels", cfg.spl_pixels >= 2, "at least 2"),
        ("rrr_weight", cfg.rrr_weight >= 0, ">= 0"),
        ("cam_weight", cfg.cam_weight >= 0, ">= 0"),
        ("dro_step", cfg.dro_step >= 0, ">= 0"),
        ("jtt_epochs", cfg.jtt_epochs >= 1, "a whole number of epochs >= 1"),
        ("jtt_upweight", cfg.jtt_upweight >= 1, ">= 1 (errors weigh at least as much as the rest)"),
        ("dfr_subsamples", cfg.dfr_subsamples >= 1, "at least 1"),
    ]
    for key, ok, want in rules:
        if not ok:
            raise ConfigError(f"{key} must be {want}, got {getattr(cfg, key)}")
