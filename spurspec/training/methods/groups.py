"""The (label, attribute) groups the group-robust methods `groupdro` (groupdro.py) and `dfr`
(dfr.py) use. A group is 2 * label + attribute value (0: negatives without the spurious feature,
1: negatives with it, 2: positives without it, 3: positives with it); -1 where the attribute is
unknown. Reads the dataset's manifest; writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from spurspec.artefacts import schemas
from spurspec.errors import ConfigError
from spurspec.training.config import TrainConfig
from spurspec.training.methods.base import MethodData, RunData

GROUPS = 4


@dataclass(frozen=True)
class GroupData(MethodData):
    """A group method's own data: the spurious attribute and every manifest row's group."""

    attribute: str | None = None
    groups: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def attribute_name(requested: str | None, manifest: pa.Table, where: str) -> str | None:
    """The spurious attribute group methods use: `requested`, or the dataset's only one; None
    when the dataset has none."""
    names = schemas.spurious_attributes(manifest)
    if requested is not None:
        if requested not in names:
            raise ConfigError(f"attribute {requested!r} is not a spurious attribute of {where}; "
                              f"it has: {', '.join(names) or 'none'}")
        return requested
    if len(names) > 1:
        raise ConfigError(f"{where} has several spurious attributes ({', '.join(names)}); choose one with --attribute")
    return names[0] if names else None


def group_ids(labels: np.ndarray, manifest: pa.Table, attribute: str | None) -> np.ndarray:
    """Per manifest row, 2 * label + attribute, or -1 where the attribute is unknown (or absent)."""
    labels = np.asarray(labels, dtype=np.int64)
    if attribute is None:
        return np.full(len(labels), -1, np.int64)
    values = manifest.column(attribute).to_pylist()
    known = np.array([v is not None and v >= 0 for v in values])
    value = np.array([v if k else 0 for v, k in zip(values, known, strict=True)], dtype=np.int64)
    return np.where(known, 2 * labels + value, -1)


def attribute_groups(cfg: TrainConfig, data: RunData) -> tuple[str | None, np.ndarray]:
    """The run's spurious attribute (cfg.attribute or the dataset's only one) and each row's group."""
    ds = data.ds
    attribute = attribute_name(cfg.attribute, ds.manifest, str(ds.layout.manifest))
    return attribute, group_ids(data.labels, ds.manifest, attribute)


def group_name(group: int, attribute: str | None) -> str:
    return f"label={group // 2},{attribute}={group % 2}"


def groups_meet(groups: np.ndarray, rows: np.ndarray) -> bool:
    """Whether `rows` hold an image of each of the 4 groups."""
    known = groups[rows][groups[rows] >= 0]
    return bool((np.bincount(known, minlength=GROUPS) > 0).all())
