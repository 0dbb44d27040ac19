"""The settings of one training run (`spurspec train`): a frozen dataclass of defaults, each with
the reason for its value. Resolved as defaults < --config TOML < CLI flags and written to
RUN/config.toml, which is also what `--resume` and `predict_split` read back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spurspec.artefacts.layout import RunLayout
from spurspec.config import resolve

# Settings that may change when a run is resumed (they do not change what is learned per epoch).
RESUMABLE_CHANGES = ("epochs", "patience", "device", "workers", "epochs_this_run")


@dataclass(frozen=True)
class TrainConfig:
    dataset: Path = Path("dataset")  # a dataset directory written by `spurspec ingest`
    out: Path = Path("run")  # the run directory this command writes
    # binary | bbox | seg | grid:K: how much the supervision says about *where* (the study's axis).
    granularity: str = "binary"
    # A named setting in spurspec.training.models.MODELS; "small" trains fast on CPUs (the demo).
    model: str = "small"
    # A named training method in spurspec.training.methods.METHODS; "erm" is the study's baseline.
    method: str = "erm"
    # The study trained up to 100 epochs; early stopping (patience) ends most runs well before.
    epochs: int = 30
    # The study used 16 at 512 px; 32 keeps CPU throughput up at the demo's 128 px.
    batch_size: int = 32
    lr: float = 5e-4  # Adam at 5e-4, as the study
    weight_decay: float = 0.0  # the study used none
    seed: int = 0  # seeds weights, augmentation, sampling and the mask budget
    # Images whose masks (or boxes) are kept for pixel training: an integer count, a fraction in
    # (0, 1], or unset for all. Positives outside the budget leave pixel training.
    mask_budget: int | float | None = None
    # How a pixel model's probability map becomes an image score during validation (the study: mean).
    summary: str = "mean"
    # Boxes for `bbox`: one filled box around the union mask (the study) or one per component.
    box_mode: str = "union"
    loss: str = "bce"  # bce | bce+dice: per-pixel BCE is the study's (2-class softmax CE)
    # subsample: negatives drawn afresh each epoch to match the positives (the study kept
    # negatives with p = 0.33, about 1:1); pos-weight: weight positives by n_neg/n_pos; none.
    balance: str = "subsample"
    # Checkpoint selection metric; unset = the study's choice (dice for seg, auroc otherwise).
    select_metric: str | None = None
    patience: int = 10  # epochs without improvement of the selection metric before stopping
    device: str = "auto"  # auto = cuda if available else cpu; chosen once and passed around
    amp: bool = True  # mixed precision on CUDA only (bf16 where supported, else fp16 + scaler)
    workers: int | None = None  # data-loader processes; unset = 0 on CPU (compute uses every core), else min(8, CPUs - 1)
    augment: str = "standard"  # standard (flip, affine, intensity, as the study) | none
    pretrained: Path | None = None  # a local state-dict file for the encoder; nothing is downloaded
    # Stop after this many epochs in this invocation and continue later with --resume
    # (for time-limited cluster jobs); unset = train to the end.
    epochs_this_run: int | None = None


def resolve_train_config(toml: Path | None, overrides: dict[str, Any], resume: bool) -> TrainConfig:
    """Defaults < TOML < flags. With `resume` and no TOML, the run's own resolved config.toml is
    the base, so `--resume` needs no other flags."""
    saved = RunLayout(Path(overrides["out"])).config
    base = toml if toml is not None or not (resume and saved.exists()) else saved
    return resolve(TrainConfig, base, overrides)
