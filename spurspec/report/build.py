"""`spurspec report`: read evaluated runs through the run record (config.toml, metrics.parquet,
predictions.parquet, saliency.npz, the dataset manifest, and RUN/probes/*.parquet where a run was
probed) and write ReportLayout: report.md, a
self-contained report.html, figures/*.png and results.parquet (every run's metrics with its
identity). Each section of the report has its own builder, called in reading order by `_write`."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from spurspec.artefacts import freshness, io, locks, provenance
from spurspec.artefacts.dataset import Dataset, check_npy
from spurspec.artefacts.layout import DatasetLayout, ReportLayout, RunLayout
from spurspec.artefacts.run import read_saliency_kind
from spurspec.config import to_dict
from spurspec.errors import ConfigError, ExistsError, SpurspecError
from spurspec.metrics.auroc import auroc, roc_points
from spurspec.metrics.cells import (
    ROBUST_CELLS,
    cell_of,
    count_words,
    robust_mask,
    small_cell,
)
from spurspec.probes.stage import probe_files, read_tables
from spurspec.report import answer, curves, examples, figures, findings
from spurspec.report.runs import (
    Run,
    combined,
    find_runs,
    group_key,
    reference_for,
    replicate_word,
    select,
)
from spurspec.report.settings import ReportConfig, check
from spurspec.report.writers import Block, markdown, to_html
from spurspec.text import plural
from spurspec.training.config import TrainConfig
from spurspec.training.data import granularity as granularities
from spurspec.training.models import summaries

WHAT = "a report"  # what freshness messages call a report directory's contents


@dataclass
class ReportResult:
    out: Path
    n_runs: int
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    up_to_date: bool = False
    n_left_out: int = 0  # unfinished runs listed but not counted


@dataclass
class _Context:
    """What every section reads: the runs, their headline rows, groups and attribute."""

    cfg: ReportConfig
    runs: list[Run]
    rows: list[dict]
    groups: list[str]
    attribute: str
    layout: ReportLayout
    notes: list[str]
    made: list[Path] = field(default_factory=list)
    left_out: list[Run] = field(default_factory=list)  # unfinished runs listed in the table of every run only

    def figure(self, name: str) -> Path:
        path = self.layout.figure(name)
        self.made.append(path)
        return path

    def label(self, group: str) -> str:
        """A group as tables and figures name it: marked when it counts unfinished runs
        (--include-unfinished), e.g. 'seg (1 unfinished)'."""
        k = sum(1 for r in self.runs if r.group == group and r.mark)
        return f"{group} ({k} unfinished)" if k else group


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _mean_sd(values: list[float], signed: bool = False) -> str:
    """mean ± sd at 3 decimals (a difference with its sign: `signed`)."""
    if not values:
        return "—"
    form = "+.3f" if signed else ".3f"
    if len(values) == 1:
        return f"{values[0]:{form}}"
    return f"{statistics.mean(values):{form}} ± {statistics.stdev(values):.3f}"


def _headline_summary(run: Run, wanted: str) -> str:
    """The run's score to report: a binary model's image score, else the wanted summarising
    function, which must have been scored (an error lists those that were)."""
    present = sorted(set(run.metrics.column("summary").to_pylist()))
    if wanted in present:
        return wanted
    if present == [summaries.IMAGE_SCORE]:
        return summaries.IMAGE_SCORE
    raise ConfigError(f"{run.root}: summarising function {wanted!r} was not scored; scored: {', '.join(present)}")


def _value(run: Run, metric: str, attribute: str | None, summary: str) -> dict | None:
    for r in run.metric_rows:
        if r["metric"] == metric and r["attribute"] == attribute and r["summary"] == summary:
            return r
    return None


def _attributes(runs: list[Run]) -> list[str]:
    return sorted({r["attribute"] for run in runs for r in run.metric_rows
                   if r["metric"] == "robust_auroc" and r["attribute"]})


def _pick_attribute(runs: list[Run], wanted: str | None) -> str:
    attrs = _attributes(runs)
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
    check(cfg)
    with locks.hold(Path(cfg.out), "report"):  # one writer per report directory (exit 4 otherwise)
        return _build_locked(cfg, force)


def _recorded(cfg: ReportConfig) -> dict:
    """The settings a report records; `keep` and `include_unfinished` only when set, so a report
    made before they existed stays up to date."""
    settings = to_dict(cfg)
    for key in ("keep", "include_unfinished"):
        if not settings[key]:
            settings.pop(key)
    return settings


def _build_locked(cfg: ReportConfig, force: bool) -> ReportResult:
    found, notes = find_runs(list(cfg.runs))
    chosen = select(found, cfg.keep, cfg.include_unfinished)
    runs, notes = chosen.runs, notes + chosen.notes
    listed = runs + chosen.left_out
    final = ReportLayout(Path(cfg.out))
    settings = _recorded(cfg)
    metrics = {str(run.root): RunLayout(run.root).metrics for run in listed}
    inputs = {name: provenance.file_digest(path) for name, path in metrics.items()}
    # A run probed since the report was made makes it stale (keys exist only for probed runs).
    inputs.update({str(p): provenance.file_digest(p) for run in listed for p in probe_files(run.record)})
    if final.root.exists() and any(final.root.iterdir()):
        if not final.markdown.exists():
            raise ExistsError(f"{final.root}: exists and is not a spurspec report; refusing to replace it")
        if not force:
            state = freshness.check(final.provenance, settings, inputs, where=final.root, what=WHAT, paths=metrics)
            if state.fresh:
                return ReportResult(final.root, len(runs), notes=notes, up_to_date=True, n_left_out=len(chosen.left_out))
            raise state.error()
    with io.staging_dir(final.root) as staging:
        made, notes = _write(cfg, runs, chosen.left_out, notes, ReportLayout(staging))
        provenance.write(ReportLayout(staging).provenance, "report", settings, inputs)
    return ReportResult(final.root, len(runs), [final.root / p.relative_to(staging) for p in made], notes,
                        n_left_out=len(chosen.left_out))


def _headline_rows(runs: list[Run], attribute: str, wanted: str) -> list[dict]:
    """Per run: its headline summary's overall, robust and worst-subgroup AUROC with intervals."""
    rows = []
    for run in runs:
        s = _headline_summary(run, wanted)
        o, rb, w = (_value(run, m, a, s) for m, a in
                    (("auroc", None), ("robust_auroc", attribute), ("worst_subgroup_auroc", attribute)))
        rows.append({"group": run.group, "seed": run.seed, "summary": s, "run": run,
                     "overall": o and o["value"], "overall_lo": o and o["ci_low"], "overall_hi": o and o["ci_high"],
                     "robust": rb and rb["value"], "robust_lo": rb and rb["ci_low"], "robust_hi": rb and rb["ci_high"],
                     "robust_reason": rb and rb["reason"], "overall_reason": o and o["reason"],
                     # (positives, negatives) behind each AUROC: the cell-size rule reads them
                     "robust_n": _counts(rb), "overall_n": _counts(o), "worst": w and w["value"]})
    return rows


def _counts(row: dict | None) -> tuple[int, int] | None:
    return None if row is None or row["n_pos"] is None else (int(row["n_pos"]), int(row["n_neg"]))


def _write(cfg: ReportConfig, runs: list[Run], left_out: list[Run], notes: list[str],
           layout: ReportLayout) -> tuple[list[Path], list[str]]:
    attribute = _pick_attribute(runs, cfg.attribute)
    ctx = _Context(cfg, runs, _headline_rows(runs, attribute, cfg.summary),
                   sorted({r.group for r in runs}, key=group_key), attribute, layout, notes, left_out=left_out)
    io.write_table(layout.table, combined(runs, left_out))
    # One set of paired bootstraps against the reference group, read by the findings and the remedies.
    pairs = findings.paired_to_reference(ctx.runs, ctx.attribute, ctx.cfg, _study_metric(ctx))
    # The answer first (in words, then the paired findings, example images, data, how to read
    # the numbers), then the tables and figures; the report's own settings last.
    blocks = [*_opening(ctx), *findings.findings_section(pairs, _metric_counts(ctx), ctx.cfg.min_cell),
              *_examples_section(ctx), *findings.data_section(ctx.runs, ctx.attribute, ctx.cfg.min_cell),
              *findings.reading_section(ctx.cfg.min_cell, ctx.cfg.bootstrap),
              *_headline(ctx), *_reference(ctx), *_seed_table(ctx), *_remedies_section(ctx, pairs), *_every_run(ctx),
              *_specificity_section(ctx), *_budget_section(ctx), *_by_attribute(ctx), *_roc_section(ctx),
              *_summary_section(ctx), *_saliency_section(ctx), *_probe_section(ctx), *_how_made(ctx)]
    if ctx.notes:
        blocks += [Block("h2", "Notes")] + [Block("p", n) for n in ctx.notes]
    io.write_text(layout.markdown, markdown(blocks, layout.root))
    io.write_text(layout.html, to_html(blocks, cfg.title))
    return ctx.made, ctx.notes


def _opening(ctx: _Context) -> list[Block]:
    """The title and the answer in words: each group's headline AUROC against chance."""
    key, _ = _study_metric(ctx)
    results = answer.group_results(ctx.rows, ctx.groups, [ctx.label(g) for g in ctx.groups], key, ctx.cfg.min_cell)
    several = replicate_word(ctx.runs) if any(sum(r["group"] == g for r in ctx.rows) > 1 for g in ctx.groups) else None
    return [Block("h1", ctx.cfg.title),
            *answer.opening(results, ctx.attribute, key == "overall", several, ctx.cfg.min_cell)]


def _metric_counts(ctx: _Context) -> dict[str, tuple[int, int]]:
    """Run directory -> (positives, negatives) of the headline metric, for the cell-size rule."""
    key, _ = _study_metric(ctx)
    return {str(r["run"].root): r[f"{key}_n"] for r in ctx.rows if r[f"{key}_n"] is not None}


def _examples_section(ctx: _Context) -> list[Block]:
    """One test image of each robust cell, from the first run's dataset (examples.py)."""
    found, notes = examples.pick(ctx.runs[0].dataset, ctx.attribute)
    ctx.notes += notes
    if not found:
        return []
    fig = ctx.figure("examples")
    examples.draw(fig, found)
    a = ctx.attribute
    region = f" dashed magenta, around it: the {a} region;" if any(e.feature is not None and e.feature.any() for e in found) else ""
    return [Block("h2", "The images where the feature points the wrong way"),
            Block("figure", f"One test image of each robust cell: a positive without {a} and a negative with {a}. "
                            f"Cyan outline: the abnormality;{region} above each image, its cell and id.",
                  figure=fig, role="examples")]


def _how_made(ctx: _Context) -> list[Block]:
    """The report's own settings and counts, for whoever reproduces it."""
    a = ctx.attribute
    others = [x for x in _attributes(ctx.runs) if x != a]
    pick = f" (--attribute picks another: {', '.join(others)})" if others else ""
    text = (f"{plural(len(ctx.runs), 'evaluated run')} in {plural(len(ctx.groups), 'group')}{_unfinished_words(ctx)}. "
            f"Spurious attribute: {a}{pick}. "
            f"Pixel models scored by the '{ctx.cfg.summary}' summarising function (--summary){_binary_scores(ctx.runs)}. "
            f"Robust AUROC is computed on {{label=1, {a}=0}} ∪ {{label=0, {a}=1}}. Intervals are 95% patient-level "
            f"bootstrap percentile intervals; paired differences use {plural(ctx.cfg.bootstrap, 'replicate')} "
            f"(seed {ctx.cfg.seed}). Cell-size rule: fewer than {plural(ctx.cfg.min_cell, 'test image')} of a class.")
    return [Block("h2", "How this report was made"), Block("p", text), *_audited(ctx)]


def _audited(ctx: _Context) -> list[Block]:
    """What each audited outside model is (`spurspec audit` keeps it in the audit's config.toml):
    its file and SHA-256, its card and the dataset it was scored on."""
    out = []
    for run in ctx.runs:
        audit, card = run.config.get("audit"), run.config.get("card")
        if not isinstance(audit, dict):
            continue
        shown = ", ".join(f"{k} {v}" for k, v in (card or {}).items())
        source = f", card {audit['card_file']}" if audit.get("card_file") else ", card from the model's metadata and flags"
        out.append(Block("p", f"{run.root.name} audits {audit.get('model_file')} (SHA-256 {audit.get('model_sha256')})"
                              f"{source}: {shown}; scored on {os.path.normpath(run.dataset)} "
                              f"({audit.get('dataset_fingerprint', '')[:19]})."))
    return out


def _unfinished_words(ctx: _Context) -> str:
    """What the report says about runs scored before their training finished."""
    words = []
    if ctx.left_out:
        words.append(f"{plural(len(ctx.left_out), 'unfinished run')} left out of means, pairs and figures (listed "
                     "under Every run; --include-unfinished counts them)")
    counted = sum(1 for r in ctx.runs if r.mark)
    if counted:
        words.append(f"{counted} of them unfinished: counted, as --include-unfinished asks, and marked "
                     "'unfinished' wherever they appear")
    return "".join(f" ({w})" for w in words)


# How a binary run's image score reads in the report (TrainConfig.binary_score).
BINARY_SCORE_WORDS = {"probability": "P(label 1)",
                      "logit": "the raw class-1 logit (the study's score; unbounded, not a probability)"}


def _binary_scores(runs: list[Run]) -> str:
    """', binary models by ...' from each binary run's config.toml (a run from before the setting
    was scored by its probability); '' without binary runs."""
    default = TrainConfig.binary_score
    used = sorted({str(r.config.get("binary_score", default)) for r in runs
                   if not granularities.is_pixel(r.granularity) and "audit" not in r.config})
    words = [BINARY_SCORE_WORDS.get(s, s) for s in used]
    return f", binary models by {' or '.join(words)}" if words else ""


def _headline(ctx: _Context) -> list[Block]:
    fig = ctx.figure("headline")
    reference = reference_for(ctx.runs)[1]
    figures.headline(fig, ctx.rows, ctx.groups, reference, ctx.attribute, _study_metric(ctx)[0],
                     labels=[ctx.label(g) for g in ctx.groups])
    stars = "; stars: the study's published robust AUROC, for reference" if reference else ""
    return [Block("h2", "Robust vs overall AUROC by granularity"),
            Block("figure", f"Dots: runs with their 95% CI; bars: mean over runs{stars}.", figure=fig, role="headline")]


def _study_metric(ctx: _Context) -> tuple[str, str]:
    """The study's robust AUROC for these runs: on ISIC trap sets it is plain AUROC on the trap
    test set (its correlations are reversed by construction), elsewhere AUROC on the robust
    cells. Returns (key of the headline rows, its name)."""
    if any(r.trap_set is not None for r in ctx.runs):
        return "overall", "trap-test AUROC"
    return "robust", f"robust AUROC ({ctx.attribute})"


def _reference(ctx: _Context) -> list[Block]:
    ref_name, reference = reference_for(ctx.runs)
    if not reference:
        return []
    comparable, _ = _study_metric(ctx)
    how = ("ours is overall AUROC on the trap test set, which is how the study defined robust AUROC for ISIC"
           if comparable == "overall" else f"ours is robust AUROC on the {ctx.attribute} cells, as the study defined it")
    rows = []
    for g in ctx.groups:
        ours = [r[comparable] for r in ctx.rows if r["group"] == g and r[comparable] is not None]
        rows.append((ctx.label(g), _mean_sd(ours), str(len(ours)), _fmt(reference.get(g))))
    rows += [(g, "not run", "0", _fmt(v)) for g, v in reference.items() if g not in ctx.groups]
    word = replicate_word(ctx.runs)
    return [Block("h2", "Reference: the study's published robust AUROC beside ours"),
            Block("p", f"Reference values are from Saab et al., MLHC 2022 ({ref_name or 'no matching dataset'}); "
                       f"they are the study's numbers, not computed here; {how}."),
            Block("table", headers=("granularity", f"ours (mean ± sd over {word})", word, "study (reference)"),
                  rows=tuple(rows))]


def _seed_table(ctx: _Context) -> list[Block]:
    a = ctx.attribute

    def over_seeds(g: str, key: str) -> str:
        return _mean_sd([r[key] for r in ctx.rows if r["group"] == g and r[key] is not None])

    word = replicate_word(ctx.runs)
    overall = "trap-test AUROC (the study's robust AUROC)" if word != "seeds" else "overall AUROC"
    rows = tuple((ctx.label(g), str(sum(1 for r in ctx.rows if r["group"] == g)), over_seeds(g, "overall"),
                  over_seeds(g, "robust"), over_seeds(g, "worst")) for g in ctx.groups)
    return [Block("h2", f"Mean ± sd over {word}"),
            Block("table", headers=("group", word, overall, f"robust AUROC ({a})", f"worst subgroup ({a})"),
                  rows=rows)]


def _remedies_section(ctx: _Context, pairs: findings.Pairs | None) -> list[Block]:
    """Every arm by what it needs (nothing / attribute labels / N masks): the headline metric with
    its intervals, binary ERM as the reference line, and the paired difference to binary ERM per
    replicate. Only for a comparison of methods (curves.shows_remedies)."""
    if not curves.shows_remedies(ctx.runs):
        return []
    key, name = _study_metric(ctx)
    arms = curves.remedy_arms(ctx.rows)
    for arm in arms:
        arm.label = ctx.label(arm.group)
    # The findings' pairs are against binary ERM exactly when the runs have its group ("binary").
    deltas = pairs.rows if pairs is not None and pairs.reference == "binary" else {}
    ref_values = [r[key] for a in arms if a.group == "binary" for r in a.rows if r[key] is not None]
    reference = statistics.mean(ref_values) if ref_values else None
    fig = ctx.figure("remedies")
    figures.remedies(fig, arms, deltas, reference, key, name)
    word = replicate_word(ctx.runs)
    rows = tuple(_remedy_row(arm, key, deltas) for arm in arms)
    text = ("Each arm (granularity, method, mask budget) grouped by what it needs beyond image labels: nothing, "
            "attribute labels (the spurious attribute on training or validation images), or masks, counted as the "
            "training images whose mask the arm used (its mask_budget.parquet; every masked training positive "
            "without a budget). Needs are the methods' own (each method's card in spurspec/training/methods/). Δ: the paired "
            f"difference to binary ERM on the same test images and replicate, with its 95% interval from "
            f"{ctx.cfg.bootstrap} paired patient-bootstrap replicates.")
    if reference is None:
        text += " These runs hold no binary ERM model: no reference line and no paired differences."
    elif not deltas:
        text += " No paired differences: the report's bootstrap is 0, or no arm shares a replicate with binary ERM."
    metric = "trap-test AUROC" if key == "overall" else "robust AUROC"  # the study's measure on this data
    return [Block("h2", f"Remedies: {metric} against what each arm needs"), Block("p", text),
            Block("table", headers=("needs", "arm", word, f"{name} (mean ± sd)", "each run [95% CI]",
                                    f"worst subgroup ({ctx.attribute})", "Δ vs binary ERM, each run [95% CI]",
                                    "Δ mean ± sd"), rows=rows, role="remedies"),
            Block("figure", f"Top: {name} of every run with its 95% CI (bars: mean over {word}; dotted: binary ERM's "
                            f"mean); bottom: each run's paired difference to binary ERM. Arms grouped by what they need.",
                  figure=fig, role="remedies")]


def _remedy_row(arm: curves.RemedyArm, key: str, deltas: dict[str, list[dict]]) -> tuple[str, ...]:
    """One arm's table row: needs, arm, runs, mean ± sd and each run, worst subgroup, Δ per run and mean ± sd."""
    values = [r[key] for r in arm.rows if r[key] is not None]
    runs = "; ".join(f"{r['run'].replicate_label}: {_fmt(r[key])} [{_fmt(r[f'{key}_lo'])}, {_fmt(r[f'{key}_hi'])}]"
                     for r in arm.rows)
    diffs = deltas.get(arm.group, [])
    if arm.group == "binary":
        per, mean = "reference", "—"
    else:
        per = "; ".join(f"{d['replicate']}: {d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" for d in diffs) or "—"
        mean = _mean_sd([d["diff"] for d in diffs], signed=True)
    worst = _mean_sd([r["worst"] for r in arm.rows if r["worst"] is not None])
    return (arm.need_label, arm.label or arm.group, str(len(arm.rows)), _mean_sd(values), runs, worst, per, mean)


def _every_run(ctx: _Context) -> list[Block]:
    """Every run found, the unfinished ones left out of the rest of the report included, marked."""
    left = [{**r, "left_out": True} for r in _headline_rows(ctx.left_out, ctx.attribute, ctx.cfg.summary)]
    shown = sorted(ctx.rows + left, key=lambda r: (group_key(r["group"]), r["seed"], str(r["run"].root)))
    rows = tuple((r["run"].root.name, r["group"], r["run"].replicate, r["summary"],
                  f"{_fmt(r['overall'])} [{_fmt(r['overall_lo'])}, {_fmt(r['overall_hi'])}]",
                  f"{_fmt(r['robust'])} [{_fmt(r['robust_lo'])}, {_fmt(r['robust_hi'])}]",
                  _run_note(r, ctx.cfg.min_cell)) for r in shown)
    return [Block("h2", "Every run"),
            Block("table", headers=("run", "group", "replicate", "summary", "overall AUROC [95% CI]",
                                    "robust AUROC [95% CI]", "note"), rows=rows)]


def _run_note(row: dict, min_cell: int) -> str:
    """The note column: how far an unfinished run had trained (and whether it is counted), why
    its robust AUROC is missing, if it is, and whether it rests on too few images to tell."""
    mark = row["run"].mark
    if mark and row.get("left_out"):
        mark += "; left out of means"
    n = row["robust_n"]
    small = f"too few images to tell ({count_words(*n)})" if n and small_cell(*n, min_cell) and row["robust"] is not None else ""
    return "; ".join(p for p in (mark, row["robust_reason"] or "", small) if p)


def _counted_unfinished(ctx: _Context) -> str:
    """A caption's words for a figure that names no group or run: which of its runs are unfinished."""
    marked = [f"{r.root.name} ({r.mark})" for r in ctx.runs if r.mark]
    return f"; counted although unfinished (--include-unfinished): {', '.join(marked)}" if marked else ""


def _specificity_section(ctx: _Context) -> list[Block]:
    key, name = _study_metric(ctx)
    curve = curves.specificity_curve(ctx.rows, key)
    if curve is None:
        return []
    fig = ctx.figure("specificity")
    figures.specificity(fig, curve, ctx.attribute, name)
    return [Block("h2", "Robust AUROC against spatial specificity"),
            Block("p", "The study's coarse-mask sweep: r is the number of regions a training target distinguishes "
                       "(1 for an image label, K² for a K×K grid, every pixel for a mask; boxes have no fixed r and are "
                       "left out). " + ("Line: mean over runs; band: mean of the runs' 95% intervals; dots: runs."
                                        if curve.joined else "Each run with its 95% interval; no r between these "
                                        "was trained, so no line joins them.")),
            Block("figure", f"{name} against spatial specificity r{_counted_unfinished(ctx)}", figure=fig)]


def _budget_section(ctx: _Context) -> list[Block]:
    key, name = _study_metric(ctx)
    panels = [(name, *curves.budget_curves(ctx.rows, key))]
    if key != "overall":
        panels.append(("overall AUROC", *curves.budget_curves(ctx.rows, "overall")))
    if not panels[0][1]:
        return []
    fig = ctx.figure("mask_budget")
    figures.budgets(fig, panels)
    return [Block("h2", "AUROC against the number of training masks"),
            Block("p", "Pixel models trained with a budget of masks (the rest of their positives leave pixel training), "
                       "one line per granularity and method; the dotted line is the image-label model. Band: mean of the "
                       "runs' 95% intervals."),
            Block("figure", "AUROC against the number of training images with a mask", figure=fig)]


def _by_attribute(ctx: _Context) -> list[Block]:
    attributes = _attributes(ctx.runs)
    if len(attributes) < 2:
        return []
    rows = [(ctx.label(g), *(_mean_sd(_values(ctx.runs, g, "robust_auroc", a, ctx.cfg.summary)) for a in attributes))
            for g in ctx.groups]
    text = ("One column per annotated spurious feature (mean ± sd over runs, the headline summarising function): "
            "the features that overlap the abnormality most tend to show the largest gaps.")
    overlap = curves.artefact_overlap(ctx.runs[0], attributes) if ctx.runs[0].source == "isic" else {}
    if overlap:
        rows.insert(0, ("lesion overlap (test)", *(_overlap_cell(overlap.get(a)) for a in attributes)))
        text += (" The first row is each artefact's overlap with the lesion: the share of test images with the "
                 "artefact whose lesion box covers more than half the image (n: images with the artefact and a mask).")
    return [Block("h2", "Robust AUROC by spurious attribute"), Block("p", text),
            Block("table", headers=("group", *attributes), rows=tuple(rows))]


def _overlap_cell(value: tuple[float, int] | None) -> str:
    if value is None or value[1] == 0:
        return "—"
    return f"{value[0]:.0%} (n={value[1]})"


def _roc_section(ctx: _Context) -> list[Block]:
    curves, roc_notes = _roc_curves(ctx.rows, ctx.groups, ctx.attribute)
    ctx.notes += roc_notes
    if not curves:
        return []
    fig = ctx.figure("roc_robust")
    figures.roc_curves(fig, curves, ctx.attribute)
    return [Block("h2", "ROC curves in the robust cells"),
            Block("figure", f"ROC curves on the robust cells ({ctx.attribute}), first seed of each group; "
                            "AUROC in brackets", figure=fig)]


def _summary_section(ctx: _Context) -> list[Block]:
    per_summary, names = _by_summary(ctx.runs, ctx.attribute)
    if not names:
        return []
    per_summary = {ctx.label(g): v for g, v in per_summary.items()}
    fig = ctx.figure("by_summary")
    figures.by_summary(fig, per_summary, names, ctx.attribute)
    return [Block("h2", "Robust AUROC by summarising function"),
            Block("p", "The same probability maps scored by each summarising function: a mean over every pixel lets faint "
                       "activations along a spurious feature add up, while max or top-k follows the strongest region."),
            Block("figure", "Robust AUROC by summarising function, from the top pixel (max) to every pixel (mean): "
                            "each run with its 95% interval", figure=fig)]


def _saliency_section(ctx: _Context) -> list[Block]:
    panels = _saliency_panels(ctx.rows, ctx.groups, ctx.cfg.n_saliency, ctx.attribute)
    if not panels:
        ctx.notes.append("no saliency.npz with images in these runs: no saliency panels")
        return []
    fig = ctx.figure("saliency")
    figures.saliency(fig, panels, ctx.attribute)
    feature = ctx.attribute.replace("_", " ")
    return [Block("h2", "Where each model looks"),
            Block("figure", f"Test images where the {feature} points the wrong way, the same images in every row: "
                            f"positives without the {feature} and negatives with it. Over each image, the model's map: "
                            "P(positive region) for models that output a map (one fixed 0-1 scale); for image-label "
                            "models, integrated gradients of the score, the pixels that push it towards positive "
                            "(scaled per image: where the model looks, not how strongly). Outlines where the data "
                            "stores them: the abnormality and the feature's region. One run per group: its first "
                            "replicate, named on the left.", figure=fig)]


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
        manifest_path = DatasetLayout(run.dataset).manifest
        if not run.record.layout.predictions.exists() or not manifest_path.exists():
            notes.append(f"{run.root}: predictions or dataset not found; no ROC curve for {g}")
            continue
        preds = run.record.predictions(["image_id", "split", "summary", "score"])
        preds = preds.filter(pc.and_(pc.equal(preds.column("summary"), r["summary"]), pc.equal(preds.column("split"), "test")))
        manifest = pq.read_table(manifest_path, columns=["image_id", "label", attribute])
        joined = preds.join(manifest, "image_id").to_pydict()
        y = np.asarray(joined["label"], dtype=np.int64)
        a = np.asarray([-1 if v is None else v for v in joined[attribute]], dtype=np.int64)
        keep = robust_mask(y, a)
        s = np.asarray(joined["score"], dtype=np.float64)[keep]
        if keep.sum() == 0 or len(set(y[keep].tolist())) < 2:
            notes.append(f"{run.root}: robust cells lack a class; no ROC curve for {g}")
            continue
        fpr, tpr = roc_points(s, y[keep])
        mark = f", {run.mark}" if run.mark else ""
        curves.append((f"{g} s{run.seed}{mark}", fpr, tpr, auroc(s, y[keep])))
    return curves, notes


def _by_summary(runs: list[Run], attribute: str) -> tuple[dict[str, dict[str, list[tuple]]], list[str]]:
    """Per group and summarising function: every run's robust AUROC with its interval."""
    data: dict[str, dict[str, list[tuple]]] = {}
    names: set[str] = set()
    for run in runs:
        rows = [r for r in run.metric_rows if r["metric"] == "robust_auroc" and r["attribute"] == attribute]
        if len({r["summary"] for r in rows}) < 2:
            continue  # one summary (binary): nothing to compare
        for r in rows:
            if r["value"] is not None:
                data.setdefault(run.group, {}).setdefault(r["summary"], []).append((r["value"], r["ci_low"], r["ci_high"]))
                names.add(r["summary"])
    return data, sorted(names)


def _saliency_panels(rows: list[dict], groups: list[str], n: int, attribute: str) -> list[figures.MapRow]:
    """Per group, its first run's kept maps on the test images every group kept (else its own):
    positives without the feature beside negatives with it (saliency_ids), each with its robust
    cell, abnormality mask and the feature's stored region."""
    maps = []
    for g in groups:
        run = next(x for x in rows if x["group"] == g)["run"]
        sal = run.record.saliency()
        if sal:
            maps.append((f"{g} ({run.replicate_label})", run, sal))
    if not maps:
        return []
    shared = sorted(set.intersection(*(set(m) for _, _, m in maps)))
    out = []
    for label, run, sal in maps:
        facts = _panel_facts(run, shared or sorted(sal), attribute)
        # Images of no robust cell (a dataset without the attribute): the first n kept, as kept.
        ids = saliency_ids({i: f[0] for i, f in facts.items()}, n) or (shared or sorted(sal))[:n]
        panels = [figures.MapPanel(i, sal[i][0], sal[i][1], *facts.get(i, (None, None, None))) for i in ids]
        if panels:  # none with n_saliency = 0
            out.append(figures.MapRow(label, _map_kind(run), panels))
    return out


def saliency_ids(cells: dict[str, tuple[int, int] | None], n: int) -> list[str]:
    """Up to n image ids for the saliency figure, robust cell by robust cell (positives without
    the feature, then negatives with it), half each where both cells have enough, each cell's ids
    in sorted order: the same images for every run that kept them."""
    per_cell = [sorted(i for i, c in cells.items() if c == cell) for cell in ROBUST_CELLS]
    take = [min(len(ids), n // len(per_cell)) for ids in per_cell]
    for k, ids in enumerate(per_cell):  # a cell short of its half leaves the rest to the other
        take[k] = min(len(ids), take[k] + n - sum(take))
    return [i for ids, t in zip(per_cell, take, strict=True) for i in ids[:t]]


def _map_kind(run: Run) -> str:
    """What a run's kept maps are: as saliency.npz records it, else (a file from before the
    record) probabilities for a pixel model and Grad-CAM for an image-label one."""
    kind = read_saliency_kind(run.record.layout.prob_maps)
    return kind or ("probability" if granularities.is_pixel(run.granularity) else "gradcam")


def _panel_facts(run: Run, ids: list[str], attribute: str) -> dict[str, tuple]:
    """image_id -> (robust cell or None, abnormality mask, the feature's stored region or None),
    from the run's dataset; {} when it cannot be read."""
    try:
        ds = Dataset.open(run.dataset)
    except SpurspecError:
        return {}
    try:
        regions = _regions(ds, attribute)
    except SpurspecError:  # a damaged region file: no feature outlines, the rest of the figure stands
        regions = None
    man = ds.manifest
    index = {i: k for k, i in enumerate(man.column("image_id").to_pylist())}
    labels = man.column("label").to_pylist()
    attr = man.column(attribute).to_pylist() if attribute in man.column_names else [None] * len(labels)
    masks = ds.masks()
    return {i: (cell_of(labels[k], attr[k]), np.asarray(masks[k]), None if regions is None else np.asarray(regions[k]))
            for i, k in ((i, index.get(i)) for i in ids) if k is not None}


def _regions(ds: Dataset, attribute: str) -> np.ndarray | None:
    """The stored regions of `attribute`'s feature (spurious_masks.npy, synthetic data), or None."""
    region = ds.info.get("spurious_region")
    if not isinstance(region, dict) or region.get("attribute") != attribute or not ds.layout.spurious_masks.exists():
        return None
    check_npy(ds.layout.spurious_masks, "spurious masks", (ds.manifest.num_rows, ds.size, ds.size))
    return np.load(ds.layout.spurious_masks, mmap_mode="r")


# The flip a probe's change should cause in a model that reads the feature, by probe kind.
_FLIP = {"insert": ("flip_up", "flip rate up (called negative before, positive after)"),
         "remove": ("flip_down", "flip rate down (called positive before, negative after)")}


def _probe_section(ctx: _Context) -> list[Block]:
    """Reliance probes (`spurspec probe`), from the runs' probe tables; nothing when none has any."""
    per_run = [(run, read_tables(run.record)) for run in ctx.runs]
    names = sorted({name for _, tables in per_run for name in tables})
    if not names:
        return []
    blocks = [Block("h2", "Reliance probes"),
              Block("p", "Direct measures of reliance on the spurious feature (`spurspec probe`), on the test split. "
                         "Insertion paints the feature into test images that lack it, removal fills it from the "
                         "background where its region is known; the same images are scored before and after. A model "
                         "that reads the feature moves (a large median shift, many flips at the validation threshold); "
                         "one that reads the abnormality does not. Attribution: the share of each model's evidence "
                         "inside the abnormality, inside the spurious region and elsewhere. Intervals: 95% patient "
                         "bootstrap, paired (the same resamples before and after).")]
    for name in names:
        kinds = {rows[0]["kind"] for _, tables in per_run for n, rows in tables.items() if n == name and rows}
        if kinds & set(_FLIP):
            blocks += _shift_figure(ctx, name, kinds.pop(), per_run)
    if "attribution" in names:
        blocks += _mass_figure(ctx, per_run)
    return blocks + _probe_table(ctx, names, per_run)


def _probe_value(rows: list[dict], metric: str, images: str = "all", map_: str | None = None) -> dict | None:
    return next((r for r in rows if r["metric"] == metric and r["images"] == images and r["map"] == map_), None)


def _point(row: dict | None, key: str) -> dict:
    """A probe row's value and interval as a figure point's `key`, `key_lo` and `key_hi`."""
    row = row or {}
    return {key: row.get("value"), f"{key}_lo": row.get("ci_low"), f"{key}_hi": row.get("ci_high")}


def _shift_figure(ctx: _Context, name: str, kind: str, per_run: list) -> list[Block]:
    flip, flip_label = _FLIP[kind]
    points = [{"group": run.group, **_point(_probe_value(tables.get(name, []), "median_shift"), "shift"),
               **_point(_probe_value(tables.get(name, []), flip), "flip")} for run, tables in per_run]
    fig = ctx.figure(f"probe_{name}")
    figures.probe_shift(fig, points, ctx.groups, flip_label, labels=[ctx.label(g) for g in ctx.groups])
    what = "painted into test images that lack it" if kind == "insert" else "removed from test images that have it"
    return [Block("figure", f"{name}: the feature {what}. Left: each run's median change of the test score "
                            f"(after - before, in the score's units{_binary_scores([r for r, _ in per_run])}); right: its {flip_label}; dots: runs with 95% CI, bars: mean over runs",
                  figure=fig)]


def _mass_figure(ctx: _Context, per_run: list) -> list[Block]:
    """Stacked evidence mass per group and map, mean over the group's runs."""
    bars, sets = [], []
    for images in ("abnormality", "spurious"):
        for g in ctx.groups:
            tables = [t["attribution"] for run, t in per_run if run.group == g and "attribution" in t]
            for map_ in sorted({r["map"] for rows in tables for r in rows if r["images"] == images}):
                shares = {region: [r["value"] for rows in tables for r in rows if r["images"] == images
                                   and r["map"] == map_ and r["metric"] == f"mass_{region}" and r["value"] is not None]
                          for region in figures.MASS_COLORS}
                area = [r["value"] for rows in tables for r in rows if r["images"] == images and r["map"] == map_
                        and r["metric"] == f"area_{images}" and r["value"] is not None]
                bars.append({"group": ctx.label(g), "map": map_, "images": images,
                             "area": statistics.mean(area) if area else None,
                             **{k: (statistics.mean(v) if v else None) for k, v in shares.items()}})
                if images not in sets:
                    sets.append(images)
    if not bars:
        return []
    fig = ctx.figure("probe_attribution")
    figures.evidence_mass(fig, bars, sets)
    return [Block("figure", "Where each model's evidence lies: the share of each map's mass inside the abnormality, "
                            "inside the spurious region and elsewhere (mean over runs), on test positives with an "
                            "abnormality mask and on test images with a known spurious region; dotted: the region's share "
                            "of the image, what an even map would put there. Grad-CAM for image-label models, "
                            "P(positive region) for pixel models, integrated gradients (IG) for both", figure=fig)]


def _probe_table(ctx: _Context, names: list[str], per_run: list) -> list[Block]:
    """One row per run: each probe's headline numbers."""
    shifts = [n for n in names if n != "attribution"]
    headers = ["run", "group", "replicate"]
    for n in shifts:
        headers += [f"{n}: median shift [95% CI]", f"{n}: flip rate", f"{n}: AUROC after - before"]
    if "attribution" in names:
        headers += ["IG mass in abnormality", "IG mass in spurious region", "IG pointing game"]
    rows = []
    for run, tables in per_run:
        row = [run.root.name, run.group, run.replicate_label]
        for n in shifts:
            t = tables.get(n, [])
            flip = _FLIP.get(t[0]["kind"], ("", ""))[0] if t else ""
            row += [_ci_cell(_probe_value(t, "median_shift")), _ci_cell(_probe_value(t, flip)),
                    _ci_cell(_probe_value(t, "auroc_diff"))]
        if "attribution" in names:
            t = tables.get("attribution", [])
            ig = "integrated_gradients"
            row += [_ci_cell(_probe_value(t, "mass_abnormality", "abnormality", ig)),
                    _ci_cell(_probe_value(t, "mass_spurious", "spurious", ig)),
                    _ci_cell(_probe_value(t, "pointing_abnormality", "abnormality", ig))]
        rows.append(tuple(row))
    return [Block("p", "Per run: each insertion or removal probe's median score shift, its flip rate (up for "
                       "insertion, down for removal) and the paired change of AUROC on the probed images; the share of "
                       "integrated-gradients evidence in the abnormality (test positives) and in the spurious region "
                       "(images that have it), and how often the top pixel falls in the abnormality."),
            Block("table", headers=tuple(headers), rows=tuple(rows))]


def _ci_cell(row: dict | None) -> str:
    if row is None or row["value"] is None:
        return "—"
    return f"{_fmt(row['value'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
