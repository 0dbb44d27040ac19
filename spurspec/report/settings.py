"""The report's settings and their check, apart from the report's drawing code (matplotlib,
scipy), so `spurspec run --dry-run` checks a report job and `spurspec report --help` lists its
defaults without importing them. Reads and writes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spurspec.errors import ConfigError
from spurspec.metrics.cells import MIN_CELL_IMAGES
from spurspec.training.models import summaries


@dataclass(frozen=True)
class ReportConfig:
    runs: tuple[Path, ...] = ()  # run directories, or directories holding runs
    out: Path = Path("report")  # the report directory
    title: str = "spurspec report"
    # Pixel models' headline summarising function; the study's was the mean (binary runs have one).
    summary: str = summaries.DEFAULT
    attribute: str | None = None  # headline spurious attribute; unset = chest_tube if present, else the first
    n_saliency: int = 4  # images per model in the saliency panels
    # Paired patient-bootstrap replicates behind the findings' intervals (0 = no findings section).
    bootstrap: int = 1000
    seed: int = 0
    # The cell-size rule (metrics.cells.MIN_CELL_IMAGES, why it is 10 there): a robust AUROC on fewer
    # test images than this of either class is "too few images to tell", never a bold finding.
    min_cell: int = MIN_CELL_IMAGES
    # Of runs sharing a group and replicate, the one to count (the others are left out); without
    # it such runs are refused: two trainings of one setting are not two replicates.
    keep: tuple[Path, ...] = ()
    include_unfinished: bool = False  # count runs scored before their training finished (marked)


def check(cfg: ReportConfig) -> None:
    """Every setting, before anything is read or written (the CLI and pipelines alike)."""
    if not cfg.runs:
        raise ConfigError("name at least one run directory (or a directory holding runs)")
    summaries.get(cfg.summary)
    if cfg.n_saliency < 0 or cfg.bootstrap < 0 or cfg.min_cell < 0:
        raise ConfigError("n_saliency, bootstrap and min_cell must be >= 0")
