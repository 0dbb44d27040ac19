"""What every ingest shares: decoding items in parallel (a process pool streaming small arrays
back to the writer, so memory stays flat), bad-input handling (`--skip-bad` or stop naming the
file), and the split x label x attribute summary the CLI prints."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from spurspec.artefacts.dataset import DatasetWriter
from spurspec.errors import InputError


@dataclass(frozen=True)
class Decoded:
    """A worker's result for one item: the image (C, S, S) uint8, mask (S, S) {0,1} or None,
    and any per-item facts for the manifest (e.g. DICOM tags)."""

    image: np.ndarray
    mask: np.ndarray | None
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class IngestResult:
    out: Path
    n_images: int
    n_rejected: int
    up_to_date: bool
    summary: list[dict[str, Any]]  # rows: split, label, <attribute>, n
    notes: list[str] = field(default_factory=list)


def _call(fn: Callable[[Any], Decoded], index: int, payload: Any) -> tuple[int, Decoded | None, str | None]:
    try:
        return index, fn(payload), None
    except InputError as exc:
        return index, None, str(exc)


def decode_all(
    items: list[tuple[str, Any]],
    decode: Callable[[Any], Decoded],
    writer: DatasetWriter,
    workers: int,
    skip_bad: bool,
    progress: Callable[..., None] | None = None,
) -> tuple[list[int], list[dict[str, str]], dict[int, dict[str, Any]]]:
    """Decode `items` = [(input name, payload)] with `decode` (a top-level function, so it can
    run in worker processes) and put each result into the writer at its index.

    Returns (kept indices, rejects [{input, reason}], facts by index). Without `skip_bad`, the
    first bad item raises InputError naming it, and the caller's writer writes nothing.
    """
    kept: list[int] = []
    rejects: list[dict[str, str]] = []
    facts: dict[int, dict[str, Any]] = {}
    if progress is not None:
        progress(0, total=len(items))
    for index, result, error in _run(items, decode, workers):
        if error is not None:
            name = items[index][0]
            if not skip_bad:
                raise InputError(f"{name}: {error} (use --skip-bad to leave it out)")
            rejects.append({"input": name, "reason": error})
        else:
            writer.put(index, result.image, result.mask)
            facts[index] = result.facts
            kept.append(index)
        if progress is not None:
            progress(1)
    return kept, rejects, facts


def _run(items: list[tuple[str, Any]], decode: Callable[[Any], Decoded], workers: int) -> Iterator[tuple[int, Decoded | None, str | None]]:
    if workers <= 1:
        for i, (_, payload) in enumerate(items):
            yield _call(decode, i, payload)
        return
    # 'spawn' would re-import torch in every worker; fork is safe here (no threads started yet
    # in the decode path) and starts instantly.
    ctx = mp.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        # Bounded window of futures: results stream back in order without queuing the dataset.
        window = workers * 8
        pending: list[Any] = []
        for i in range(len(items)):
            pending.append(pool.submit(_call, decode, i, items[i][1]))
            if len(pending) >= window:
                yield pending.pop(0).result()
        for fut in pending:
            yield fut.result()


def summarise(manifest: pa.Table, spurious: list[str]) -> list[dict[str, Any]]:
    """Counts by split x label x each spurious attribute (null shown as None)."""
    cols = ["split", "label", *spurious]
    data = manifest.select(cols).to_pylist()
    counts: dict[tuple, int] = {}
    for row in data:
        key = tuple(row[c] for c in cols)
        counts[key] = counts.get(key, 0) + 1
    order = {"train": 0, "val": 1, "test": 2}
    keys = sorted(counts, key=lambda k: (order.get(k[0], 9), *(repr(x) for x in k[1:])))
    return [dict(zip(cols, k, strict=True), n=counts[k]) for k in keys]


def rejects_table(rejects: list[dict[str, str]]) -> pa.Table:
    return pa.Table.from_pylist(rejects, schema=pa.schema([("input", pa.string()), ("reason", pa.string())]))
