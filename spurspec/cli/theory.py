"""`spurspec theory`: the study's two measures against spatial specificity r, exact and
simulated (calls spurspec.theory.run_theory); writes theory.parquet and theory.png under --out
and prints the table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spurspec.cli.common import out as console
from spurspec.cli.common import print_rows

SETTINGS = "spurspec.theory:TheoryConfig"  # its defaults fill {default:FIELD} in help


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    from spurspec.errors import ConfigError

    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ConfigError(f"--{what} {text!r}: expected comma-separated integers") from None


def command(
    out: Annotated[Path | None, typer.Option(help="Directory for theory.parquet and theory.png (default {default:out}).")] = None,
    n: Annotated[int | None, typer.Option(help="Pixels of the image, a square number m*m (default {default:n}).")] = None,
    r: Annotated[str | None, typer.Option(help="Comma-separated numbers of regions, each g*g with g dividing the side (default: all).")] = None,
    p_ys: Annotated[list[str] | None, typer.Option(help="P(y,s) as p00,p01,p10,p11; repeat for several (default {default:p_ys}).")] = None,
    overlap: Annotated[bool, typer.Option(help="Also compute the model whose spurious region may overlap the abnormal one.")] = False,
    y_shape: Annotated[str | None, typer.Option(help="Abnormal region HEIGHT,WIDTH in pixels (default {default:y_shape}).")] = None,
    s_shape: Annotated[str | None, typer.Option(help="Spurious region HEIGHT,WIDTH in pixels (default {default:s_shape}).")] = None,
    samples: Annotated[int | None, typer.Option(help="Monte Carlo images (default {default:samples}).")] = None,
    seed: Annotated[int | None, typer.Option(help="Monte Carlo seed (default {default:seed}).")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file of settings (flags override it).")] = None,
    force: Annotated[bool, typer.Option(help="Replace existing results made with other settings.")] = False,
) -> None:
    """Compute Var(X | Ỹ=1) and I(S; Y | Ỹ=1) against r, exactly and by simulation."""
    from spurspec.artefacts import freshness
    from spurspec.config import resolve
    from spurspec.theory import WHAT, TheoryConfig, run_theory, wide_rows

    overrides = {
        "out": out,
        "n": n,
        "r": _ints(r, "r"),
        "p_ys": tuple(p_ys) if p_ys else None,
        "overlap": overlap or None,
        "y_shape": _ints(y_shape, "y-shape"),
        "s_shape": _ints(s_shape, "s-shape"),
        "samples": samples,
        "seed": seed,
    }
    cfg = resolve(TheoryConfig, config, overrides)
    result = run_theory(cfg, force=force)
    print_rows("Var(X|Ỹ=1) and I(S;Y|Ỹ=1) in bits against r: exact, simulated ± 95% interval", wide_rows(result.table))
    if result.up_to_date:
        console.print(freshness.up_to_date(result.out, WHAT))
    else:
        console.print(f"{result.out}: theory.parquet and theory.png written")
