"""The study's evaluation cells, defined once for every stage that uses them (the SQL metrics,
the bootstrap, the saliency images predict keeps, the report's ROC curves).

For a spurious attribute a, the *robust cells* are {label=1, a=0} ∪ {label=0, a=1}: the images
where the spurious feature points the wrong way (untreated positives, treated negatives). The
*subgroups* of a are a=0 and a=1; the worst-subgroup AUROC is the lowest AUROC among them, over
the subgroups where it is defined.

The *cell-size rule* is here too, so the report and the terminal's tables mark the same cells: a
robust AUROC whose positives or negatives number fewer than MIN_CELL_IMAGES is too small to tell
(`small_cell`). Pure numpy; reads and writes nothing."""

from __future__ import annotations

import numpy as np

from spurspec.text import plural

# (label, attribute value) of each robust cell, in the order the report names them.
ROBUST_CELLS: tuple[tuple[int, int], ...] = ((1, 0), (0, 1))
# Each robust cell's class noun and what sets it apart, `{a}` for the attribute's name.
CELL_WORDS = {(1, 0): ("positive", "without {a}"), (0, 1): ("negative", "with {a}")}
# What each robust cell holds (e.g. untreated pneumothorax: "positives without chest_tube").
CELL_NAMES = {cell: f"{noun}s {rest}" for cell, (noun, rest) in CELL_WORDS.items()}

# The attribute values that form the subgroups of an attribute (unknown values, -1 or NULL, none).
SUBGROUPS: tuple[int, ...] = (0, 1)


def robust_mask(label: np.ndarray, attribute: np.ndarray) -> np.ndarray:
    """Boolean mask of the robust cells; an unknown attribute (-1, NaN) is in no cell."""
    label, attribute = np.asarray(label), np.asarray(attribute)
    out = np.zeros(label.shape, dtype=bool)
    for y, a in ROBUST_CELLS:
        out |= (label == y) & (attribute == a)
    return out


def cell_of(label: int, attribute: int | None) -> tuple[int, int] | None:
    """The robust cell (label, value) an image falls in, or None."""
    key = (int(label), -1 if attribute is None else int(attribute))
    return key if key in ROBUST_CELLS else None


def worst_subgroup(values: np.ndarray) -> np.ndarray:
    """Per column, the lowest of the subgroup AUROCs stacked on axis 0, leaving out the NaN
    (undefined) ones; NaN only where every subgroup is undefined."""
    stack = np.atleast_2d(np.asarray(values, dtype=np.float64))
    filled = np.where(np.isnan(stack), np.inf, stack).min(axis=0)
    return np.where(np.isinf(filled), np.nan, filled)


# The cell-size rule: fewer test images than this in either class of an AUROC and it is "too few
# images to tell". Why 10: at chance, AUROC's standard error with 10 positives and 10 negatives is
# 0.13 (Hanley & McNeil 1982), so a 95% interval spans about +-0.26, just enough to tell a model
# that reads the spurious feature (robust AUROC near 0.1-0.2) from one at chance; with 5 of each
# it spans +-0.38, and with 1-3 the patient bootstrap has so few distinct resamples that its
# interval can shrink to a point (a paired difference of -1.00 [-1.00, -1.00]) and look certain.
MIN_CELL_IMAGES = 10


def small_cell(n_pos: int | None, n_neg: int | None, min_images: int = MIN_CELL_IMAGES) -> bool:
    """True when an AUROC rests on fewer than `min_images` positives or negatives (unknown
    counts, None, are not judged: False)."""
    if n_pos is None or n_neg is None:
        return False
    return min(n_pos, n_neg) < min_images


def count_words(n_pos: int, n_neg: int, what: str = "robust test image") -> str:
    """The images behind an AUROC in words: '3 robust test images: 1 positive, 2 negatives'."""
    return f"{plural(n_pos + n_neg, what)}: {plural(n_pos, 'positive')}, {plural(n_neg, 'negative')}"


def cell_count(cell: tuple[int, int], n: int, attribute: str) -> str:
    """A robust cell with its count: '1 positive without chest_tube', '2 negatives with chest_tube'."""
    noun, rest = CELL_WORDS[cell]
    return f"{plural(n, noun)} {rest.format(a=attribute)}"
