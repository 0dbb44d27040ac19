"""`spurspec train DATASET --granularity ... --out RUN`: resolves settings (defaults < --config TOML
< flags; with --resume the run's own config.toml is the base), calls spurspec.training.train and
prints the outcome. Torch is imported only when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from spurspec import presets
from spurspec.cli.choices import choices
from spurspec.cli.common import out, print_rows
from spurspec.datasets.boxes import MODES
from spurspec.errors import ConfigError
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
from spurspec.training.data import granularity
from spurspec.training.methods import METHODS
from spurspec.training.models import MODELS, summaries
from spurspec.training.models.heads import HEADS

if TYPE_CHECKING:
    from spurspec.training import TrainResult

SETTINGS = "spurspec.training.config:TrainConfig"  # its defaults fill {default:FIELD} in help
Model = choices("Model", MODELS.names())
Method = choices("Method", METHODS.names())
BoxMode = choices("BoxMode", MODES)
Loss = choices("Loss", LOSSES)
Balance = choices("Balance", BALANCES)
Metric = choices("Metric", SELECT_METRICS)
Augment = choices("Augment", AUGMENTS)
Schedule = choices("Schedule", SCHEDULES)
Dice = choices("Dice", DICES)
Head = choices("Head", HEADS)
Region = choices("Region", REGIONS)
Preset = choices("Preset", presets.names())


def parse_budget(text: str | None) -> int | float | None:
    """'300' -> 300 images; '0.25' -> a quarter of the masks."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--mask-budget {text!r}: give a count (300) or a fraction (0.25)") from None


def _value(v):
    return v.value if hasattr(v, "value") else v


def command(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory written by `spurspec ingest`.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory to write (config, log, checkpoints).")],
    granularity_: Annotated[str | None, typer.Option("--granularity", help=f"Supervision: {', '.join(granularity.names())} (default {{default:granularity}}).")] = None,
    model: Annotated[Model | None, typer.Option(help="Named model setting, see the models table in docs/training.md (default {default:model}).")] = None,
    method: Annotated[Method | None, typer.Option(help="Training method (default {default:method}, the study's baseline).")] = None,  # type: ignore[valid-type]
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs (default {default:epochs}).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step, per process (default {default:batch_size}).")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate (default {default:lr}, the study's).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seeds weights, augmentation, sampling, mask budget (default {default:seed}).")] = None,
    mask_budget: Annotated[str | None, typer.Option(help="Training positives keeping pixel/box supervision: a count (300) or fraction (0.25) (default: all).")] = None,
    train_fraction: Annotated[float | None, typer.Option(help="The study's sample_ratio: each training image kept with this probability after the negative subsampling, masks and all (default: all).")] = None,
    summary: Annotated[str | None, typer.Option(help=f"Image score of a pixel model: {', '.join(summaries.names())} (default {{default:summary}}).")] = None,
    box_mode: Annotated[BoxMode | None, typer.Option(help="bbox targets: union (the study's one box) or components (default {default:box_mode}).")] = None,
    loss: Annotated[Loss | None, typer.Option(help="Per-pixel loss (default {default:loss}).")] = None,
    balance: Annotated[Balance | None, typer.Option(help="Class balance: subsample (negatives drawn afresh each epoch), subsample-once (each negative kept once with p 0.33), study (subsample-once on chest films, none on ISIC), pos-weight, none (default {default:balance}).")] = None,
    select_metric: Annotated[Metric | None, typer.Option(help="Checkpoint selection (default: dice for seg and grid:K, auroc otherwise).")] = None,
    dice: Annotated[Dice | None, typer.Option(help="Validation Dice: positives (at P > 0.5, mean over images with a target) or study (the study's: argmax map, every image but empty-empty ones; false positives count) (default {default:dice}).")] = None,  # type: ignore[valid-type]
    head: Annotated[Head | None, typer.Option(help="Pixel classes: auto (three where negatives have masks, else two), two-class, three-class (default {default:head}).")] = None,  # type: ignore[valid-type]
    patience: Annotated[int | None, typer.Option(help="Early stopping: epochs without improvement, 0 = never stop early (default {default:patience}).")] = None,
    schedule: Annotated[Schedule | None, typer.Option(help="Learning rate: cosine decay or constant (the study's) (default {default:schedule}).")] = None,  # type: ignore[valid-type]
    preset: Annotated[Preset | None, typer.Option(help="A named protocol under the config file and flags: study = the study's code (see the protocol table in docs/training.md).")] = None,  # type: ignore[valid-type]
    device: Annotated[str | None, typer.Option(help="auto (cuda if available, else cpu), cpu, cuda, cuda:N (default {default:device}).")] = None,
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA (bf16 where supported, else fp16).")] = None,
    augment: Annotated[Augment | None, typer.Option(help="Training augmentation: standard (flip, affine, intensity on the batch), study (the study's list), standard-cpu (standard per image), none (default {default:augment}).")] = None,  # type: ignore[valid-type]
    threads: Annotated[int | None, typer.Option(help="Compute threads (default: OMP_NUM_THREADS if set, else the cores this process may use).")] = None,
    workers: Annotated[int | None, typer.Option(help="Data-loader processes (default: 0 on CPU, where compute uses every core; min(8, CPUs-1) with an accelerator).")] = None,
    pretrained: Annotated[str | None, typer.Option(help="Encoder weights: imagenet (fetched once into torch's hub cache), a local state-dict file, or none.")] = None,
    epochs_this_run: Annotated[int | None, typer.Option(help="Stop after this many epochs now; continue later with --resume.")] = None,
    attribute: Annotated[str | None, typer.Option(help="Spurious attribute groupdro and dfr group by (default: the dataset's only one).")] = None,
    region: Annotated[Region | None, typer.Option(help="rrr and cam-loss: a positive's annotated region is its mask (seg) or its box (bbox) (default {default:region}).")] = None,  # type: ignore[valid-type]
    compile_: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model (binary models; the first steps pay the compile time).")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file of settings (flags override it).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing run in --out.")] = False,
) -> None:
    """Train one model at one granularity of spatial specificity."""
    from spurspec.training import train
    from spurspec.training.config import resolve_train_config

    overrides = {
        "dataset": dataset, "out": out_dir, "granularity": granularity_, "model": _value(model), "method": _value(method),
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
        "mask_budget": parse_budget(mask_budget), "train_fraction": train_fraction, "summary": summary, "box_mode": _value(box_mode),
        "loss": _value(loss), "balance": _value(balance), "select_metric": _value(select_metric), "augment": _value(augment),
        "patience": patience, "device": device, "amp": amp, "workers": workers, "threads": threads, "pretrained": pretrained,
        "epochs_this_run": epochs_this_run, "dice": _value(dice), "head": _value(head), "schedule": _value(schedule),
        "preset": _value(preset), "attribute": attribute, "region": _value(region), "compile": compile_,
    }
    cfg = resolve_train_config(config, overrides, resume)
    _print_outcome(cfg, train(cfg, resume=resume, force=force, progress=True))


def _print_outcome(cfg: TrainConfig, result: TrainResult) -> None:
    """The run's outcome on the main rank: already finished, or finished / paused with its best epoch."""
    if result.rank != 0:
        return
    if result.up_to_date:
        out.print(f"{result.out}: already finished; nothing to do. Use --force to train again.")
        return
    best = "-" if result.best_metric is None else f"{result.best_metric:.4f}"
    state = "finished" if result.finished else "paused (continue with --resume)"
    print_rows(f"{result.out}: {state}", [{
        "granularity": cfg.granularity, "model": cfg.model, "epochs this run": result.epochs_run,
        "best epoch": result.best_epoch + 1, f"best val {result.select_metric}": best,
    }])

