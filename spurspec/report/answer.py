"""The report's first paragraph: the answer in plain words. Each group's headline AUROC (robust
AUROC, or trap-test AUROC on ISIC trap sets) with its interval, compared with chance (0.5) by
fixed rules, and which models read the spurious feature; then one paragraph saying what the
numbers are and what they are compared with. Names no setting of the report (those are under
"How this report was made"). Reads the report's headline rows; writes nothing."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from spurspec.errors import SpurspecError
from spurspec.metrics.cells import MIN_CELL_IMAGES, count_words, small_cell
from spurspec.report.writers import Block
from spurspec.training.data import granularity as granularities

CHANCE = 0.5
# An interval wholly more than this from chance is "far below" or "well above" it.
FAR = 0.25
# The verdicts, in the order the paragraph states them, with what the models did.
VERDICTS = ("far below", "below", "near", "above", "well above")

# What a granularity trains on, in words (Granularity.source).
_TRAINED_ON = {"label": "image labels", "boxes": "boxes", "masks": "masks"}


@dataclass
class GroupResult:
    label: str  # the group as tables name it (marked where it counts unfinished runs)
    words: str  # what its models were trained on: "image labels", "4×4 grids"
    value: float | None  # mean over its runs
    lo: float | None  # lowest end of its runs' 95% intervals
    hi: float | None  # highest end
    small: tuple[int, int] | None  # (positives, negatives) of a run under the cell-size rule
    reason: str = ""  # why there is no value

    @property
    def verdict(self) -> str:
        """Where the interval lies against chance (0.5): below, near (it holds 0.5) or above;
        'far below' / 'well above' when all of it is more than FAR from chance."""
        lo, hi = self.lo if self.lo is not None else self.value, self.hi if self.hi is not None else self.value
        if hi < CHANCE:
            return "far below" if hi < CHANCE - FAR else "below"
        if lo > CHANCE:
            return "well above" if lo > CHANCE + FAR else "above"
        return "near"

    @property
    def shown(self) -> str:
        if self.lo is None or self.hi is None:
            return f"{self.value:.2f}"
        return f"{self.value:.2f} [{self.lo:.2f}, {self.hi:.2f}]"


def trained_on(group: str) -> str:
    """A group's training signal in words, from its granularity (the group's first word)."""
    if group.startswith("audit:"):  # an outside model (`spurspec audit`): its training is not known
        return "data outside spurspec"
    try:
        g = granularities.parse(group.split(" ")[0])
    except SpurspecError:  # an unknown granularity is named as it is
        return group
    return f"{g.grid}×{g.grid} grids" if g.source == "grid" else _TRAINED_ON[g.source]


def group_results(rows: list[dict], groups: list[str], labels: list[str], key: str,
                  min_cell: int = MIN_CELL_IMAGES) -> list[GroupResult]:
    """Per group: the mean of its runs' `key` value, the span of their intervals, and the counts
    of a run too small to tell (rows: the report's headline rows, with `{key}_n` counts)."""
    out = []
    for group, label in zip(groups, labels, strict=True):
        mine = [r for r in rows if r["group"] == group and r[key] is not None]
        if not mine:
            reasons = {r.get(f"{key}_reason") or "" for r in rows if r["group"] == group} - {""}
            out.append(GroupResult(label, trained_on(group), None, None, None, None,
                                   "; ".join(sorted(reasons)) or "not measured"))
            continue
        lows = [r[f"{key}_lo"] for r in mine if r[f"{key}_lo"] is not None]
        highs = [r[f"{key}_hi"] for r in mine if r[f"{key}_hi"] is not None]
        small = next((r[f"{key}_n"] for r in mine if small_cell(*r[f"{key}_n"], min_cell)), None)
        out.append(GroupResult(label, trained_on(group), statistics.mean(r[key] for r in mine),
                               min(lows) if lows else None, max(highs) if highs else None, small))
    return out


def feature_words(attribute: str) -> str:
    """A spurious attribute as a sentence names it: chest_tube -> 'the chest tube'."""
    return "the " + attribute.replace("_", " ")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _subjects(results: list[GroupResult]) -> str:
    return "Models trained on " + _join([f"{r.words} ({r.label})" for r in results])


def answer(results: list[GroupResult], attribute: str, metric: str, trap: bool) -> str:
    """The first paragraph: which models read the spurious feature and by how much, each group's
    `metric` with its interval against chance; groups under the cell-size rule are 'too few
    images to tell', with the counts. `trap`: the metric is AUROC on ISIC trap test sets."""
    feature = "the artefacts" if trap else feature_words(attribute)
    cells = "the trap test set" if trap else f"the images where {feature} points the wrong way"
    images = "trap-test image" if trap else "robust test image"
    sentences, read = [], False  # read: the sentence before says which models read the feature
    for verdict in VERDICTS:
        mine = [r for r in results if r.value is not None and r.small is None and r.verdict == verdict]
        if not mine:
            continue
        # The metric is named with the first numbers; later sentences give numbers alone.
        values = ("" if sentences else f"{metric} ") + _join([r.shown for r in mine])
        if verdict in ("far below", "below"):
            sentences.append(f"{_subjects(mine)} read {feature}: {values}, {verdict} chance (0.5).")
            read = True
        elif verdict == "near":
            holds = "an interval that holds" if len(mine) == 1 else "intervals that hold"
            sentences.append(f"{_subjects(mine)} scored near chance (0.5) on {cells}: {values}, "
                             f"{holds} 0.5, so they cannot tell positives from negatives there.")
            read = False
        elif verdict == "above":  # AUROC > 0.5: more pairs ranked right than wrong, no more
            sentences.append(f"{_subjects(mine)} ranked most positives above negatives even on {cells}: "
                             f"{values}, above chance.")
            read = False
        else:
            what = "did not" if read else f"did not read {feature}"
            sentences.append(f"{_subjects(mine)} {what}: {values}, well above chance.")
    by_counts: dict[tuple[int, int], list[GroupResult]] = {}
    for r in results:
        if r.value is not None and r.small is not None:
            by_counts.setdefault(r.small, []).append(r)
    for (n_pos, n_neg), mine in by_counts.items():
        sentences.append(f"For the models trained on {_join([f'{r.words} ({r.label})' for r in mine])} there are too few images to tell "
                         f"({count_words(n_pos, n_neg, images)}): {metric} {_join([r.shown for r in mine])}.")
    sentences += [f"{_subjects([r])} have no {metric}: {r.reason}." for r in results if r.value is None]
    return " ".join(sentences)


def key_to_numbers(metric: str, attribute: str, trap: bool, several: str | None,
                   min_cell: int = MIN_CELL_IMAGES) -> str:
    """What the first paragraph's numbers are and what they are compared with. `several`: the
    replicate word ('seeds') when a group holds more than one run, else None."""
    if trap:
        what = (f"{metric[0].upper()}{metric[1:]} is AUROC on a trap test set, whose artefacts go against the label "
                "(the study's robust AUROC for ISIC)")
        wrong = "the artefacts rather than the lesion"
    else:
        what = (f"Robust AUROC is AUROC on the test images where {feature_words(attribute)} ({attribute}) points the "
                "wrong way (positives without it, negatives with it)")
        wrong = f"{feature_words(attribute)} rather than the abnormality"
    brackets = "Brackets: 95% intervals"
    if several:
        brackets += f"; for a group of several {several}, from the lowest to the highest end of their intervals"
    return (f"{what}. It is compared with chance, 0.5: below it a model ranks images by {wrong}; 1 is perfect. "
            f"'Far below' and 'well above' mean the whole interval lies more than {FAR} from 0.5; 'near' means "
            f"it holds 0.5. {brackets}. A result resting on fewer than {min_cell} images of either class is "
            "too few images to tell (see Reading the tables).")


def opening(results: list[GroupResult], attribute: str, trap: bool, several: str | None,
            min_cell: int = MIN_CELL_IMAGES) -> list[Block]:
    """The answer paragraph and its key, as blocks (the answer marked for readers and tests)."""
    metric = "trap-test AUROC" if trap else "robust AUROC"
    return [Block("p", answer(results, attribute, metric, trap), role="answer"),
            Block("p", key_to_numbers(metric, attribute, trap, several, min_cell))]
