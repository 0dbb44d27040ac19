"""The report's findings and the sections that explain them: one sentence per comparison with
the interval of its paired difference (plain, not bold, and "too few images to tell" with the
counts where the cell-size rule says so); what was trained on (source, images per split, the
attribute's link with the label in train and test, images in each robust cell); and what every
number and column means ("Reading the tables"). The pairs behind the sentences
(`paired_to_reference`) also feed the remedies section. Reads the runs' datasets and predictions;
writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from spurspec.artefacts.dataset import Dataset
from spurspec.errors import SpurspecError
from spurspec.metrics.cells import (
    MIN_CELL_IMAGES,
    ROBUST_CELLS,
    cell_count,
    count_words,
    small_cell,
)
from spurspec.report.compare import CompareConfig, pair_rows
from spurspec.report.writers import Block
from spurspec.text import plural

COLUMNS = (
    "Columns: overall AUROC is AUROC on every test image; robust AUROC is AUROC on the robust cells "
    "only; worst subgroup is the lowest AUROC among the attribute's two subgroups (images with it, images "
    "without it), over the subgroups that hold both classes; [a, b] is a 95% patient-level bootstrap "
    "percentile interval (1,000 replicates unless stated); mean ± sd is over replicates (seeds, or ISIC "
    "trap sets); a paired difference uses the same bootstrap resamples for both models."
)

# Why the cell-size rule's number is what it is, for readers (the maths: metrics/cells.py).
RULE_REASON = (
    "at chance, AUROC's standard error with 10 positives and 10 negatives is 0.13, so a 95% interval spans "
    "about ±0.26, just enough to tell a model that reads the spurious feature from one at chance; with fewer, "
    "and above all with 1 to 3 images of a class, an interval can shrink to a point and look certain when it is not"
)


def _rate(attr: np.ndarray, label: np.ndarray, y: int) -> str:
    known = (label == y) & (attr >= 0)
    return "—" if not known.any() else f"{(attr[known] == 1).mean():.0%}"


def data_section(runs, attribute: str, min_cell: int) -> list[Block]:
    """Source, split sizes, P(attribute | label) in train and test, robust cells of the test split
    (with a warning under the cell-size rule)."""
    try:
        ds = Dataset.open(runs[0].dataset)
    except SpurspecError:
        return [Block("h2", "Data"), Block("p", f"The dataset of {runs[0].root} could not be opened; no data summary.")]
    man = ds.manifest
    split = np.asarray(man.column("split").to_pylist())
    label = np.asarray(man.column("label").to_pylist())
    attr = np.asarray(man.column(attribute).fill_null(-1).to_pylist()) if attribute in man.column_names else -np.ones(len(label))
    sizes = ", ".join(f"{s} {int((split == s).sum()):,} ({int(((split == s) & (label == 1)).sum()):,} positive)"
                      for s in ("train", "val", "test"))
    datasets = len({r.dataset.resolve() for r in runs})  # one dataset, however each run names it
    text = (f"Trained on {ds.info.get('name', 'a')} data ({ds.size}×{ds.size} px"
            + (f"; the first of {datasets} datasets" if datasets > 1 else "") + f"): {sizes}. "
            f"P({attribute} | positive) / P({attribute} | negative) is {_rate(attr[split == 'train'], label[split == 'train'], 1)}"
            f" / {_rate(attr[split == 'train'], label[split == 'train'], 0)} in train and "
            f"{_rate(attr[split == 'test'], label[split == 'test'], 1)} / {_rate(attr[split == 'test'], label[split == 'test'], 0)} in test.")
    test = split == "test"
    n_pos, n_neg = (int((test & (label == c[0]) & (attr == c[1])).sum()) for c in ROBUST_CELLS)
    text += (" Robust cells of the test split: "
             + ", ".join(cell_count(c, n, attribute) for c, n in zip(ROBUST_CELLS, (n_pos, n_neg), strict=True)) + ".")
    blocks = [Block("h2", "Data"), Block("p", text)]
    if small_cell(n_pos, n_neg, min_cell):
        blocks.append(Block("p", role="warning", text=(
            f"Too few images to tell ({count_words(n_pos, n_neg)}): fewer than {min_cell} of a class (the "
            "cell-size rule, see Reading the tables). Robust AUROC on so few images moves by tenths with one "
            "image, and its interval can look narrower than it is.")))
    return blocks


def reading_section(min_cell: int, bootstrap: int) -> list[Block]:
    """What every number and column means, and the cell-size rule with its reason."""
    pairs = f" (the findings' paired differences: {plural(bootstrap, 'replicate')})" if bootstrap else ""
    rule = (f"The cell-size rule: a robust AUROC (or a difference of two) that rests on fewer than "
            f"{plural(min_cell, 'test image')} of either class, positives or negatives, is too few images to tell: "
            f"its finding is not bold and says so, with the counts. Why {MIN_CELL_IMAGES} by default: {RULE_REASON}.")
    return [Block("h2", "Reading the tables"), Block("p", COLUMNS.rstrip(".") + pairs + "."), Block("p", rule)]


def _reference_group(runs) -> str:
    groups = {r.group for r in runs}
    return "binary" if "binary" in groups else runs[0].group


def _diff(r: dict) -> str:
    return f"{r['diff']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"


def _sentence(group: str, reference: str, what: str, rows: list[dict]) -> str:
    """One finding: the paired difference per replicate, and the verb the intervals support."""
    above = all(r["ci_low"] > 0 for r in rows)
    below = all(r["ci_high"] < 0 for r in rows)
    verb = "beats" if above else "trails" if below else "is not distinguishable from"
    per = "; ".join(f"{r['replicate']}: {_diff(r)}" for r in rows)
    mean = float(np.mean([r["diff"] for r in rows]))
    lead = _diff(rows[0]) if len(rows) == 1 else f"{mean:+.2f} on average over {plural(len(rows), 'replicate')}"
    return f"{group} {verb} {reference} on {what} by {lead} ({per if len(rows) > 1 else rows[0]['replicate']})."


def _too_few(group: str, reference: str, what: str, rows: list[dict], counts: tuple[int, int],
             images: str) -> str:
    """A finding under the cell-size rule: no verb, the counts, the difference for the record."""
    if len(rows) == 1:
        diffs = f"the paired difference ({rows[0]['replicate']}) was {_diff(rows[0])}"
    else:
        diffs = "the paired differences were " + "; ".join(f"{r['replicate']}: {_diff(r)}" for r in rows)
    return f"{group} against {reference} on {what}: too few images to tell ({count_words(*counts, images)}); {diffs}."


@dataclass
class Pairs:
    """Every group's runs paired with the reference group's run of the same replicate, on the
    report's headline metric: computed once, read by the findings and the remedies section."""

    reference: str  # the group the others are paired with (image labels when present)
    what: str  # what the pairs are compared on, for sentences: "the robust cells (chest_tube)"
    metric: str = "robust AUROC"  # the metric compared: robust AUROC, or trap-test AUROC on ISIC trap sets
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
    pairs = Pairs(reference, what, "trap-test AUROC" if study_metric[0] == "overall" else "robust AUROC",
                  list(dict.fromkeys(r.group for r in runs if r.group != reference)))
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


def findings_section(pairs: Pairs | None, counts: dict[str, tuple[int, int]], min_cell: int) -> list[Block]:
    """One sentence per group against the reference group (image labels when present); a group
    whose pairs rest on a run under the cell-size rule gets a plain 'too few images to tell'.
    `counts`: run directory -> (positives, negatives) of the metric the pairs compare."""
    if pairs is None:
        return []
    images = "trap-test image" if pairs.metric.startswith("trap") else "robust test image"
    blocks = []
    for group in pairs.groups:
        if group in pairs.failed:
            blocks.append(Block("p", f"{group} was not compared with {pairs.reference}: {pairs.failed[group]}"))
        rows = pairs.rows.get(group)
        if not rows:
            continue
        small = [counts[r[k]] for r in rows for k in ("reference_run", "run")
                 if r[k] in counts and small_cell(*counts[r[k]], min_cell)]
        if small:
            blocks.append(Block("p", _too_few(group, pairs.reference, pairs.what, rows, min(small), images),
                                role="too-few"))
        else:
            blocks.append(Block("p", _sentence(group, pairs.reference, pairs.what, rows), role="finding"))
    intro = (f"Each model against {pairs.reference} on the same test images: the difference of their "
             f"{pairs.metric} (paired: both scored on the same resamples of patients), with its 95% interval.")
    return [Block("h2", "Findings"), Block("p", intro), *blocks]
