"""Seeded, leak-free splits: whole groups (patients, lesions) go to one split, and the split
fractions hold per stratum (label x spurious attribute) as closely as whole groups allow."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from spurspec.errors import ConfigError


def split_groups(
    groups: Sequence[str],
    fractions: dict[str, float],
    seed: int,
    strata: Sequence[object] | None = None,
) -> list[str]:
    """Assign each item a split name so no group spans two splits.

    Groups are shuffled (seeded) within the stratum of their first item, then dealt out so each
    split's share of items tracks `fractions`. Returns one split name per item.
    """
    total = sum(fractions.values())
    if total <= 0 or any(f < 0 for f in fractions.values()):
        raise ConfigError(f"split fractions must be non-negative and not all zero: {fractions}")
    names = list(fractions)
    target = np.array([fractions[n] / total for n in names])
    items_of: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        items_of[str(g)].append(i)
    stratum_of_group = {g: (strata[idx[0]] if strata is not None else 0) for g, idx in items_of.items()}
    by_stratum: dict[object, list[str]] = defaultdict(list)
    for g in sorted(items_of):
        by_stratum[stratum_of_group[g]].append(g)
    rng = np.random.default_rng(seed)
    out = [""] * len(groups)
    for stratum in sorted(by_stratum, key=repr):
        gs = by_stratum[stratum]
        order = rng.permutation(len(gs))
        counts = np.zeros(len(names))
        for j in order:
            g = gs[j]
            n = len(items_of[g])
            # Give the group to the split furthest below its target share after adding it.
            deficit = target * (counts.sum() + n) - counts
            k = int(np.argmax(deficit))
            counts[k] += n
            for i in items_of[g]:
                out[i] = names[k]
    return out


def stratified_subset(strata: Sequence[object], limit: int, seed: int) -> list[int]:
    """Indices of a seeded subset of `limit` items that keeps every stratum present (each gets
    its proportional share, at least one), e.g. all four label x spurious-attribute cells."""
    n = len(strata)
    if limit >= n:
        return list(range(n))
    by: dict[object, list[int]] = defaultdict(list)
    for i, s in enumerate(strata):
        by[s].append(i)
    rng = np.random.default_rng(seed)
    keys = sorted(by, key=repr)
    quota = {k: max(1, int(round(limit * len(by[k]) / n))) for k in keys}
    # Trim the largest quotas until the total fits (never below one per stratum).
    while sum(quota.values()) > max(limit, len(keys)):
        k = max(keys, key=lambda key: quota[key])
        if quota[k] <= 1:
            break
        quota[k] -= 1
    chosen: list[int] = []
    for k in keys:
        idx = by[k]
        pick = rng.choice(len(idx), size=min(quota[k], len(idx)), replace=False)
        chosen.extend(idx[p] for p in pick)
    return sorted(chosen)
