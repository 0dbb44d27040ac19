"""Rank-based AUROC and average precision in numpy, for many bootstrap replicates at once.
A subset is ranked once: for each positive, how many negatives (and positives) score below it.
A replicate is a row of weights (draw counts); its AUROC is the weighted Mann-Whitney statistic,
ties counted half, computed from cumulative sums of the negatives' weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ranked:
    """One subset, ranked. `*_cols` are the columns of the weight matrix holding each image's
    weight (image indices, or patient indices when weights are per-patient draw counts)."""

    pos_cols: np.ndarray  # positives, ascending score
    neg_cols: np.ndarray  # negatives, ascending score
    neg_lt: np.ndarray  # per positive: number of negatives scoring strictly lower
    neg_le: np.ndarray  # per positive: number of negatives scoring lower or equal
    pos_lt: np.ndarray  # per positive: number of positives scoring strictly lower

    @classmethod
    def build(cls, score: np.ndarray, label: np.ndarray, index: np.ndarray | None = None,
              columns: np.ndarray | None = None) -> Ranked:
        index = np.arange(len(score)) if index is None else np.asarray(index, dtype=np.int64)
        columns = np.arange(len(score)) if columns is None else np.asarray(columns)
        s, y = np.asarray(score, dtype=np.float64)[index], np.asarray(label)[index] == 1
        pos, neg = index[y], index[~y]
        pos_order, neg_order = np.argsort(s[y], kind="stable"), np.argsort(s[~y], kind="stable")
        pos_s, neg_s = s[y][pos_order], s[~y][neg_order]
        return cls(
            pos_cols=columns[pos[pos_order]],
            neg_cols=columns[neg[neg_order]],
            neg_lt=np.searchsorted(neg_s, pos_s, side="left"),
            neg_le=np.searchsorted(neg_s, pos_s, side="right"),
            pos_lt=np.searchsorted(pos_s, pos_s, side="left"),
        )

    @property
    def n_pos(self) -> int:
        return len(self.pos_cols)

    @property
    def n_neg(self) -> int:
        return len(self.neg_cols)

    @property
    def has_ties(self) -> bool:
        return bool(np.any(self.neg_lt != self.neg_le))


def _columns(weights: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """weights[:, cols] as float64. np.take gathers 5-20x faster than fancy indexing at a million
    columns, and compact integer weights (bootstrap draw counts) keep the gathered-from rows
    small enough for the CPU caches; converted after the gather, the values are the same."""
    return np.take(weights, cols, axis=1).astype(np.float64, copy=False)


def _cumulative(w: np.ndarray) -> np.ndarray:
    """(b, n+1) running sums with a leading zero column: cum[:, k] = sum of the first k."""
    cum = np.zeros((w.shape[0], w.shape[1] + 1))
    np.cumsum(w, axis=1, out=cum[:, 1:])
    return cum


def weighted_auroc(ranked: Ranked, weights: np.ndarray) -> np.ndarray:
    """AUROC per row of `weights` (b, columns); NaN where a row has no positive or no negative weight."""
    wp = _columns(weights, ranked.pos_cols)
    cum_neg = _cumulative(_columns(weights, ranked.neg_cols))
    below = np.take(cum_neg, ranked.neg_lt, axis=1)
    if ranked.has_ties:
        below = 0.5 * (below + np.take(cum_neg, ranked.neg_le, axis=1))
    num = np.einsum("bi,bi->b", wp, below)
    den = wp.sum(axis=1) * cum_neg[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def weighted_average_precision(ranked: Ranked, weights: np.ndarray) -> np.ndarray:
    """Average precision per row (sklearn's step-wise definition: each positive contributes the
    precision of everything scoring at or above it); NaN without positive or negative weight."""
    wp = _columns(weights, ranked.pos_cols)
    cum_pos = _cumulative(wp)
    cum_neg = _cumulative(_columns(weights, ranked.neg_cols))
    tp = cum_pos[:, -1:] - np.take(cum_pos, ranked.pos_lt, axis=1)
    fp = cum_neg[:, -1:] - np.take(cum_neg, ranked.neg_lt, axis=1)
    called = tp + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(called > 0, tp / np.where(called > 0, called, 1.0), 0.0)
        total_pos = cum_pos[:, -1]
        # Row by row (pairwise sums along each row): a row's value does not depend on how many rows
        # are evaluated together, so the bootstrap's chunking cannot change it.
        ap = (wp * precision).sum(axis=1) / np.where(total_pos > 0, total_pos, 1.0)
    return np.where((total_pos > 0) & (cum_neg[:, -1] > 0), ap, np.nan)


def auroc(score: np.ndarray, label: np.ndarray) -> float | None:
    """Plain AUROC of one sample (None when one class is missing)."""
    value = weighted_auroc(Ranked.build(score, label), np.ones((1, len(score))))[0]
    return None if np.isnan(value) else float(value)


def average_precision(score: np.ndarray, label: np.ndarray) -> float | None:
    value = weighted_average_precision(Ranked.build(score, label), np.ones((1, len(score))))[0]
    return None if np.isnan(value) else float(value)


def roc_points(score: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, (0,0) to (1,1)."""
    score = np.asarray(score, dtype=np.float64)
    pos = np.asarray(label) == 1
    levels, inverse = np.unique(-score, return_inverse=True)  # high scores first
    tp = np.concatenate([[0.0], np.cumsum(np.bincount(inverse, weights=pos, minlength=len(levels)))])
    fp = np.concatenate([[0.0], np.cumsum(np.bincount(inverse, weights=~pos, minlength=len(levels)))])
    return fp / max(fp[-1], 1.0), tp / max(tp[-1], 1.0)
