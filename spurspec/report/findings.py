"""The report's opening: what was trained on (source, images per split, the attribute's link with
the label in train and test, images in each robust cell, with a warning where a cell is too
small), then one sentence per comparison with the interval of its paired difference, and what
every column means; the pairs behind those sentences (`paired_to_reference`) also feed the
remedies section. Reads the runs' datasets and predictions; writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from spurspec.artefacts.dataset import Dataset
from spurspec.errors import SpurspecError
from spurspec.metrics.cells import CELL_NAMES, ROBUST_CELLS
from spurspec.report.compare import CompareConfig, pair_rows
from spurspec.report.writers import Block

COLUMNS = (
    "Columns: overall AUROC is AUROC on every test image; robust AUROC is AUROC on the robust cells "
    "only; worst subgroup is the lowest AUROC among the attribute's two subgroups (images with it, images "
    "without it), over the subgroups that hold both classes; [a, b] is a 95% patient-level bootstrap "
    "percentile interval (1,000 replicates unless stated); mean ± sd is over replicates (seeds, or ISIC "
    "trap sets); a paired difference uses the same bootstrap resamples for both models."
)


def _rate(attr: np.ndarray, label: np.ndarray, y: int) -> str:
    known = (label == y) & (attr >= 0)
    return "—" if not known.any() else f"{(attr[known] == 1).mean():.0%}"


def data_section(runs, attribute: str, min_cell: int) -> list[Block]:
    """Source, split sizes, P(attribute | label) in train and test, robust cells of the test split."""
    try:
        ds = Dataset.open(runs[0].dataset)
    except SpurspecError:
        return [Block("p", f"The dataset of {runs[0].root} could not be opened; no data summary.")]
    man = ds.manifest
    split = np.asarray(man.column("split").to_pylist())
    label = np.asarray(man.column("label").to_pylist())
    attr = np.asarray(man.column(attribute).fill_null(-1).to_pylist()) if attribute in man.column_names else -np.ones(len(label))
    sizes = ", ".join(f"{s} {int((split == s).sum())} ({int(((split == s) & (label == 1)).sum())} positive)"
                      for s in ("train", "val", "test"))
    datasets = len({r.dataset.resolve() for r in runs})  # one dataset, however each run names it
    text = (f"Trained on {ds.info.get('name', 'a')} data ({ds.size}×{ds.size} px"
            + (f"; the first of {datasets} datasets" if datasets > 1 else "") + f"): {sizes}. "
            f"P({attribute} | positive) / P({attribute} | negative) is {_rate(attr[split == 'train'], label[split == 'train'], 1)}"
            f" / {_rate(attr[split == 'train'], label[split == 'train'], 0)} in train and "
            f"{_rate(attr[split == 'test'], label[split == 'test'], 1)} / {_rate(attr[split == 'test'], label[split == 'test'], 0)} in test.")
    test = split == "test"
    cells = [(CELL_NAMES[c].format(a=attribute), int((test & (label == c[0]) & (attr == c[1])).sum()))
             for c in ROBUST_CELLS]
    text += " Robust cells of the test split: " + ", ".join(f"{n} {name}" for name, n in cells) + "."
    blocks = [Block("h2", "Data"), Block("p", text)]
    small = [f"{name} ({n})" for name, n in cells if n < min_cell]
    if small:
        blocks.append(Block("p", role="warning", text=f"Warning: robust cell(s) {', '.join(small)} hold fewer than {min_cell} test images "
                                 "(the rule this report applies): robust AUROC there can move by tenths with a few images; "
                                 "read its interval, not its value."))
    return blocks


def _reference_group(runs) -> str:
    groups = {r.group for r in runs}
    return "binary" if "binary" in groups else runs[0].group


def _sentence(group: str, reference: str, what: str, rows: list[dict]) -> str:
    """One finding: the paired difference per replicate, and the verb the intervals support."""
    fmt = lambda r: f"{r['diff']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"  # noqa: E731
    above = all(r["ci_low"] > 0 for r in rows)
    below = all(r["ci_high"] < 0 for r in rows)
    verb = "beats" if above else "trails" if below else "is not distinguishable from"
    per = "; ".join(f"{r['replicate']}: {fmt(r)}" for r in rows)
    mean = float(np.mean([r["diff"] for r in rows]))
    lead = fmt(rows[0]) if len(rows) == 1 else f"{mean:+.2f} on average over {len(rows)} replicates"
    return f"{group} {verb} {reference} on {what} by {lead} ({per if len(rows) > 1 else rows[0]['replicate']})."


@dataclass
class Pairs:
    """Every group's runs paired with the reference group's run of the same replicate, on the
    report's headline metric: computed once, read by the findings and the remedies section."""

    reference: str  # the group the others are paired with (image labels when present)
    what: str  # the metric in words, for sentences
    groups: list[str] = field(default_factory=list)  # the other groups, in the runs' order
    rows: dict[str, list[dict]] = field(default_factory=dict)  # group -> compare rows, one per paired replicate
    failed: dict[str, str] = field(default_factory=dict)  # group -> why its pairing stopped


def paired_to_reference(runs, attribute: str, cfg, study_metric: tuple[str, str],
                        pair: Callable = pair_rows) -> Pairs | None:
    """Each other group against the reference group, replicate by replicate, on the robust cells
    (or the trap test set); None without bootstrap replicates or a second group."""
    if cfg.bootstrap == 0 or len({r.group for r in runs}) < 2:
        return None
    reference = _reference_group(runs)
    ref_runs = {r.replicate: r for r in runs if r.group == reference}
    compare_cfg = CompareConfig(summary=cfg.summary, bootstrap=cfg.bootstrap, seed=cfg.seed)
    metric, attr_key = ("auroc", None) if study_metric[0] == "overall" else ("robust_auroc", attribute)
    what = study_metric[1] if study_metric[0] == "overall" else f"the robust cells ({attribute})"
    pairs = Pairs(reference, what, list(dict.fromkeys(r.group for r in runs if r.group != reference)))
    for group in pairs.groups:
        rows = []
        for run in (r for r in runs if r.group == group and r.replicate in ref_runs):
            ref = ref_runs[run.replicate]
            try:
                found = pair(ref, run, compare_cfg)
            except SpurspecError as exc:
                pairs.failed[group] = str(exc)
                break
            shown = _replicate_label(ref, run)
            rows += [{**r, "replicate": shown} for r in found
                     if (r["metric"], r["attribute"]) == (metric, attr_key) and r["ci_low"] is not None]
        if rows:
            pairs.rows[group] = rows
    return pairs


def _replicate_label(ref, run) -> str:
    """A pair's replicate as sentences and tables name it, marked where either run is unfinished
    (counted only with --include-unfinished)."""
    if run.mark:
        return run.replicate_label
    return f"{run.replicate}, {ref.group} {ref.mark}" if ref.mark else run.replicate


def findings_section(pairs: Pairs | None, cfg) -> list[Block]:
    """One sentence per group against the reference group (image labels when present)."""
    if pairs is None:
        return [Block("p", COLUMNS)]
    sentences = []
    for group in pairs.groups:
        if group in pairs.failed:
            sentences.append(f"{group} was not compared with {pairs.reference}: {pairs.failed[group]}")
        if group in pairs.rows:
            sentences.append(_sentence(group, pairs.reference, pairs.what, pairs.rows[group]))
    intro = (f"Each model against {pairs.reference} on the same test images: the paired difference with its 95% "
             f"interval from {cfg.bootstrap} paired patient-bootstrap replicates.")
    return [Block("h2", "Findings"), Block("p", intro), *(Block("p", s, role="finding") for s in sentences),
            Block("p", COLUMNS)]
