"""`spurspec report`: read evaluated runs (config.toml, metrics.parquet, predictions.parquet,
saliency.npz, the dataset manifest) and write ReportLayout: report.md, a self-contained
report.html, figures/*.png and results.parquet (every run's metrics with its identity)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from spurspec.artefacts import io, provenance
from spurspec.artefacts.layout import DatasetLayout, ReportLayout, RunLayout
from spurspec.config import to_dict
from spurspec.errors import ConfigError, ExistsError
from spurspec.metrics.auroc import auroc, roc_points
from spurspec.metrics.evaluate import read_saliency
from spurspec.report import figures
from spurspec.report.runs import Run, combined, find_runs, granularity_key, reference_for
from spurspec.report.writers import Block, markdown, to_html


@dataclass(frozen=True)
class ReportConfig:
    runs: tuple[Path, ...] = ()  # run directories, or directories holding runs
    out: Path = Path("report")  # the report directory
    title: str = "spurspec report"
    # Pixel models' headline summarising function; the study's was the mean (binary runs have one).
    summary: str = "mean"
    attribute: str | None = None  # headline spurious attribute; unset = chest_tube if present, else the first
    n_saliency: int = 4  # images per model in the saliency panels


@dataclass
class ReportResult:
    out: Path
    n_runs: int
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    up_to_date: bool = False


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _headline_summary(run: Run, wanted: str) -> str:
    summaries = sorted(set(run.metrics.column("summary").to_pylist()))
    return wanted if wanted in summaries else summaries[0]


def _value(run: Run, metric: str, attribute: str | None, summary: str) -> dict | None:
    for r in run.metric_rows:
        if r["metric"] == metric and r["attribute"] == attribute and r["summary"] == summary:
            return r
    return None


def _pick_attribute(runs: list[Run], wanted: str | None) -> str:
    attrs = sorted({r["attribute"] for run in runs for r in run.metric_rows
                    if r["metric"] == "robust_auroc" and r["attribute"]})
    if wanted is not None:
        if wanted not in attrs:
            raise ConfigError(f"attribute {wanted!r} has no robust AUROC in these runs (have: {', '.join(attrs) or 'none'})")
        return wanted
    if not attrs:
        raise ConfigError("these runs' datasets have no spurious attributes, so there is no robust AUROC to report")
    return "chest_tube" if "chest_tube" in attrs else attrs[0]


def build_report(cfg: ReportConfig, force: bool = False) -> ReportResult:
    """Write the report into a staging directory and swap it in whole; an existing report of the
    same runs (same metrics files) and settings is up to date, another one needs `force`."""
    if not cfg.runs:
        raise ConfigError("name at least one run directory (or a directory holding runs)")
    runs, notes = find_runs(list(cfg.runs))
    final = ReportLayout(Path(cfg.out))
    settings = to_dict(cfg)
    inputs = {str(run.root): provenance.file_digest(RunLayout(run.root).metrics) for run in runs}
    if final.root.exists() and any(final.root.iterdir()):
        if not final.markdown.exists():
            raise ExistsError(f"{final.root}: exists and is not a spurspec report; refusing to replace it")
        if not force and provenance.is_up_to_date(final.provenance, settings, inputs):
            return ReportResult(final.root, len(runs), notes=notes, up_to_date=True)
        if not force:
            raise ExistsError(f"{final.root}: holds a report of other runs or settings; pass --force to replace it")
    with io.staging_dir(final.root) as staging:
        made, notes = _write(cfg, runs, notes, ReportLayout(staging))
        provenance.write(ReportLayout(staging).provenance, "report", settings, inputs)
    return ReportResult(final.root, len(runs), [final.root / p.relative_to(staging) for p in made], notes)


def _write(cfg: ReportConfig, runs: list[Run], notes: list[str], layout: ReportLayout) -> tuple[list[Path], list[str]]:
    attribute = _pick_attribute(runs, cfg.attribute)
    groups = sorted({r.group for r in runs}, key=granularity_key)
    ref_name, reference = reference_for(runs)
    io.write_table(layout.table, combined(runs))

    rows = []
    for run in runs:
        s = _headline_summary(run, cfg.summary)
        o, rb, w = (_value(run, m, a, s) for m, a in (("auroc", None), ("robust_auroc", attribute), ("worst_subgroup_auroc", attribute)))
        rows.append({"group": run.group, "seed": run.seed, "summary": s, "run": run,
                     "overall": o and o["value"], "overall_lo": o and o["ci_low"], "overall_hi": o and o["ci_high"],
                     "robust": rb and rb["value"], "robust_lo": rb and rb["ci_low"], "robust_hi": rb and rb["ci_high"],
                     "robust_reason": rb and rb["reason"], "worst": w and w["value"]})

    blocks = [Block("h1", cfg.title),
              Block("p", f"{len(runs)} evaluated run(s) in {len(groups)} group(s); headline attribute: {attribute}; "
                         f"pixel models scored by the '{cfg.summary}' summarising function. Robust AUROC is computed on "
                         f"{{label=1, {attribute}=0}} ∪ {{label=0, {attribute}=1}}, the cells where the spurious feature "
                         "points the wrong way: below 0.5 means the model reads the spurious feature. Intervals are 95% "
                         "patient-level bootstrap intervals.")]
    made = []

    fig = layout.figure("headline")
    figures.headline(fig, rows, groups, reference, attribute)
    made.append(fig)
    blocks += [Block("h2", "Robust vs overall AUROC by granularity"),
               Block("figure", "Robust vs overall AUROC by granularity (dots: runs with 95% CI; bars: mean over seeds; stars: the study's published robust AUROC, for reference)", figure=fig)]

    # The study's ISIC "robust AUROC" is plain AUROC on the trap test set (its correlations are
    # reversed by construction); for chest films it is AUROC on the two robust cells.
    comparable = "overall" if ref_name and ref_name.startswith("ISIC") else "robust"
    how = ("ours is overall AUROC on the trap test set, which is how the study defined robust AUROC for ISIC"
           if comparable == "overall" else f"ours is robust AUROC on the {attribute} cells, as the study defined it")
    blocks += [Block("h2", "Reference: the study's published robust AUROC beside ours"),
               Block("p", f"Reference values are from Saab et al., MLHC 2022 ({ref_name or 'no matching dataset'}); "
                          f"they are the study's numbers, not computed here; {how}.")]
    ref_rows = []
    for g in groups:
        ours = [r[comparable] for r in rows if r["group"] == g and r[comparable] is not None]
        ref_rows.append((g, _mean_sd(ours), str(len(ours)), _fmt(reference.get(g))))
    for g, v in reference.items():
        if g not in groups:
            ref_rows.append((g, "not run", "0", _fmt(v)))
    blocks.append(Block("table", headers=("granularity", "robust AUROC, ours (mean ± sd)", "seeds", "study (reference)"),
                        rows=tuple(ref_rows)))

    blocks += [Block("h2", "Mean ± sd over seeds"),
               Block("table", headers=("group", "seeds", "overall AUROC", f"robust AUROC ({attribute})", f"worst subgroup ({attribute})"),
                     rows=tuple((g, str(sum(1 for r in rows if r["group"] == g)),
                                 _mean_sd([r["overall"] for r in rows if r["group"] == g and r["overall"] is not None]),
                                 _mean_sd([r["robust"] for r in rows if r["group"] == g and r["robust"] is not None]),
                                 _mean_sd([r["worst"] for r in rows if r["group"] == g and r["worst"] is not None]))
                                for g in groups))]
    blocks += [Block("h2", "Every run"),
               Block("table", headers=("run", "group", "seed", "summary", "overall AUROC [95% CI]", "robust AUROC [95% CI]", "note"),
                     rows=tuple((r["run"].root.name, r["group"], str(r["seed"]), r["summary"],
                                 f"{_fmt(r['overall'])} [{_fmt(r['overall_lo'])}, {_fmt(r['overall_hi'])}]",
                                 f"{_fmt(r['robust'])} [{_fmt(r['robust_lo'])}, {_fmt(r['robust_hi'])}]",
                                 r["robust_reason"] or "") for r in rows))]

    attributes = sorted({r["attribute"] for run in runs for r in run.metric_rows
                         if r["metric"] == "robust_auroc" and r["attribute"]})
    if len(attributes) > 1:
        blocks += [Block("h2", "Robust AUROC by spurious attribute"),
                   Block("p", "One column per annotated spurious feature (mean ± sd over seeds, the headline summarising "
                              "function): the features that overlap the abnormality most tend to show the largest gaps."),
                   Block("table", headers=("group", *attributes),
                         rows=tuple((g, *(_mean_sd(_values(runs, g, "robust_auroc", a, cfg.summary)) for a in attributes))
                                    for g in groups))]

    curves, roc_notes = _roc_curves(rows, groups, attribute)
    notes += roc_notes
    if curves:
        fig = layout.figure("roc_robust")
        figures.roc_curves(fig, curves, attribute)
        made.append(fig)
        blocks += [Block("h2", "ROC curves in the robust cells"),
                   Block("figure", f"ROC curves on the robust cells ({attribute}), first seed of each group; AUROC in brackets", figure=fig)]

    per_summary, summaries = _by_summary(runs, attribute)
    if summaries:
        fig = layout.figure("by_summary")
        figures.by_summary(fig, per_summary, summaries, attribute)
        made.append(fig)
        blocks += [Block("h2", "Robust AUROC by summarising function"),
                   Block("p", "The same probability maps scored by each summarising function: a mean over every pixel lets faint "
                              "activations along a spurious feature add up, while max or top-k follows the strongest region."),
                   Block("figure", "Robust AUROC by summarising function (mean ± sd over seeds)", figure=fig)]

    panels = _saliency_panels(rows, groups, cfg.n_saliency)
    if panels:
        fig = layout.figure("saliency")
        figures.saliency(fig, panels)
        made.append(fig)
        blocks += [Block("h2", "Where each model looks"),
                   Block("figure", "Robust-cell test images with each model's map: the positive-class probability map of pixel models, Grad-CAM for binary models", figure=fig)]
    else:
        notes.append("no saliency.npz with images in these runs: no saliency panels")

    if notes:
        blocks += [Block("h2", "Notes")] + [Block("p", n) for n in notes]
    io.write_text(layout.markdown, markdown(blocks, layout.root))
    io.write_text(layout.html, to_html(blocks, cfg.title))
    return made, notes


def _values(runs: list[Run], group: str, metric: str, attribute: str, summary: str) -> list[float]:
    out = []
    for run in runs:
        if run.group == group:
            row = _value(run, metric, attribute, _headline_summary(run, summary))
            if row is not None and row["value"] is not None:
                out.append(row["value"])
    return out


def _roc_curves(rows: list[dict], groups: list[str], attribute: str) -> tuple[list, list[str]]:
    """ROC of the robust cells of the test split, from each group's first run's predictions."""
    import pyarrow.parquet as pq

    curves, notes = [], []
    for g in groups:
        r = next(x for x in rows if x["group"] == g)
        run: Run = r["run"]
        preds_path, ds = RunLayout(run.root).predictions, run.dataset
        if not preds_path.exists() or ds is None or not DatasetLayout(ds).manifest.exists():
            notes.append(f"{run.root}: predictions or dataset not found; no ROC curve for {g}")
            continue
        preds = pq.read_table(preds_path, columns=["image_id", "split", "summary", "score"])
        preds = preds.filter(pc.and_(pc.equal(preds.column("summary"), r["summary"]), pc.equal(preds.column("split"), "test")))
        manifest = pq.read_table(DatasetLayout(ds).manifest, columns=["image_id", "label", attribute])
        joined = preds.join(manifest, "image_id").to_pydict()
        y = np.asarray(joined["label"], dtype=np.int64)
        a = np.asarray([-1 if v is None else v for v in joined[attribute]], dtype=np.int64)
        keep = ((y == 1) & (a == 0)) | ((y == 0) & (a == 1))
        s = np.asarray(joined["score"], dtype=np.float64)[keep]
        if keep.sum() == 0 or len(set(y[keep].tolist())) < 2:
            notes.append(f"{run.root}: robust cells lack a class; no ROC curve for {g}")
            continue
        fpr, tpr = roc_points(s, y[keep])
        curves.append((f"{g} s{run.seed}", fpr, tpr, auroc(s, y[keep])))
    return curves, notes


def _by_summary(runs: list[Run], attribute: str) -> tuple[dict[str, dict[str, list[float]]], list[str]]:
    data: dict[str, dict[str, list[float]]] = {}
    order: list[str] = []
    for run in runs:
        rows = [r for r in run.metric_rows if r["metric"] == "robust_auroc" and r["attribute"] == attribute]
        if len({r["summary"] for r in rows}) < 2:
            continue  # one summary (binary): nothing to compare
        for r in rows:
            if r["value"] is not None:
                data.setdefault(run.group, {}).setdefault(r["summary"], []).append(r["value"])
                if r["summary"] not in order:
                    order.append(r["summary"])
    return data, order


def _saliency_panels(rows: list[dict], groups: list[str], n: int) -> list:
    maps = {}
    for g in groups:
        run = next(x for x in rows if x["group"] == g)["run"]
        path = RunLayout(run.root).prob_maps
        if path.exists():
            sal = read_saliency(path)
            if sal:
                maps[f"{g} s{run.seed}"] = sal
    if not maps:
        return []
    shared = sorted(set.intersection(*(set(m) for m in maps.values())))
    panels = []
    for label, sal in maps.items():
        ids = (shared or sorted(sal))[:n]
        panels.append((label, [(i, sal[i][0], sal[i][1]) for i in ids if i in sal]))
    return panels
