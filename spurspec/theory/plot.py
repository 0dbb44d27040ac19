"""The theory figure: both measures against r (log scale), exact values as lines, Monte Carlo
estimates as points with 95% error bars, one colour per P(y,s) and a dashed line with overlap.
Reads a THEORY table, writes one PNG atomically."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from spurspec.artefacts import io

_TITLES = {"var_x": "Var(X_ij | Ỹ_ij = 1)", "mi_sy_bits": "I(S_ij; Y_ij | Ỹ_ij = 1)  [bits]"}


def plot(table: pa.Table, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table.to_pylist()
    joints = sorted({r["p_ys"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, measure in zip(axes, _TITLES, strict=True):
        for k, joint in enumerate(joints):
            for overlap in (False, True):
                sel = sorted(
                    (r for r in rows if r["measure"] == measure and r["p_ys"] == joint and r["overlap"] == overlap),
                    key=lambda r: r["r"],
                )
                if not sel:
                    continue
                xs = [r["r"] for r in sel]
                colour = f"C{k}"
                label = f"P(y,s)={joint}" + (", overlap" if overlap else "")
                ax.plot(xs, [r["exact"] for r in sel], ls="--" if overlap else "-", color=colour, label=f"{label} exact")
                ax.errorbar(
                    xs,
                    [r["simulated"] for r in sel],
                    yerr=[1.96 * r["se"] for r in sel],
                    fmt="s" if overlap else "o",
                    color=colour,
                    ms=4,
                    capsize=3,
                    label=f"{label} simulated",
                )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("spatial specificity r (regions; 1 = image label, n = pixel mask)")
        ax.set_title(_TITLES[measure])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    with io.atomic_path(path, suffix=".png") as tmp:
        # No timestamp or software tag: the same table gives the same bytes.
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
