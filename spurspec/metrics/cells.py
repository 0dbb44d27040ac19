"""The study's evaluation cells, defined once for every stage that uses them (the SQL metrics,
the bootstrap, the saliency images predict keeps, the report's ROC curves).

For a spurious attribute a, the *robust cells* are {label=1, a=0} ∪ {label=0, a=1}: the images
where the spurious feature points the wrong way (untreated positives, treated negatives). The
*subgroups* of a are a=0 and a=1; the worst-subgroup AUROC is the lowest AUROC among them, over
the subgroups where it is defined. Pure numpy; reads and writes nothing."""

from __future__ import annotations

import numpy as np

# (label, attribute value) of each robust cell, in the order the report names them.
ROBUST_CELLS: tuple[tuple[int, int], ...] = ((1, 0), (0, 1))
# What each robust cell holds, with `{a}` for the attribute's name (e.g. untreated pneumothorax).
CELL_NAMES = {(1, 0): "positives without {a}", (0, 1): "negatives with {a}"}
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
