"""`spurspec ingest synthetic --out DIR`: a dataset directory drawn from the study's data model
(calls spurspec.datasets.synthetic.ingest): a subtle abnormality, an easy spurious stroke
correlated with it in train and val and reversed in test."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spurspec.cli.common import (
    ConfigFile,
    ReplaceDataset,
    Seed,
    TrainingSize,
    Workers,
    print_ingest,
    progress_bar,
)

SETTINGS = "spurspec.datasets.synthetic:Config"  # its defaults fill {default:FIELD} in help


def command(
    out: Annotated[Path | None, typer.Option(help="Dataset directory to write (default {default:out}).")] = None,
    n: Annotated[int | None, typer.Option(help="Number of images (default {default:n}).")] = None,
    size: TrainingSize = None,
    correlation: Annotated[float | None, typer.Option(help="P(spurious = label) in train and val, test gets 1 - this (default {default:correlation}).")] = None,
    test_correlation: Annotated[float | None, typer.Option(help="P(spurious = label) in test (default: 1 - correlation).")] = None,
    spurious_name: Annotated[str | None, typer.Option(help="Name of the spurious-attribute column (default {default:spurious_name}).")] = None,
    workers: Workers("Generator processes; the output does not depend on it") = None,
    seed: Seed("Seed: the same seed gives the same bytes") = None,
    config: ConfigFile = None,
    force: ReplaceDataset = False,
) -> None:
    """Generate the synthetic dataset (the demo's and CI's default data)."""
    from spurspec.config import resolve
    from spurspec.datasets.synthetic import Config, ingest

    overrides = {
        "out": out,
        "n": n,
        "size": size,
        "correlation": correlation,
        "test_correlation": test_correlation,
        "spurious_name": spurious_name,
        "workers": workers,
        "seed": seed,
    }
    cfg = resolve(Config, config, overrides)
    with progress_bar("generating", cfg.n) as advance:
        result = ingest(cfg, force=force, progress=advance)
    print_ingest(result)
