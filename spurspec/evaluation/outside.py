"""Predictions made outside spurspec, for `evaluate --predictions FILE`: a Parquet or CSV (plain
or gzip) table with image_id and score, optionally summary and split, and optionally a run's
identity (run_id, granularity, method, model, seed, checkpoint: the other columns of
schemas.PREDICTIONS, copied into the evaluation's predictions.parquet). Every column is either
understood, each checked against its type with the first bad row named, or ignored and named
in a note. Reads the file; writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from spurspec.artefacts import io, schemas
from spurspec.artefacts.schemas import SPLITS
from spurspec.datasets import tables
from spurspec.errors import InputError
from spurspec.training.models.summaries import IMAGE_SCORE

# The columns read, each with what its values must be, in words: the PREDICTIONS schema's.
KNOWN = {f.name: f.type for f in schemas.PREDICTIONS}
WORDS = {pa.string(): "text", pa.float64(): "numeric", pa.int64(): "a whole number"}


class Outside(NamedTuple):
    predictions: pa.Table  # conformed to schemas.PREDICTIONS
    has_split: bool  # whether the file had a split column (else no threshold can be chosen)
    notes: list[str]  # what the CLI prints: columns left out


def read_outside(path: Path) -> Outside:
    """A user's predictions as a PREDICTIONS table, whether it carried a split column, and notes."""
    table = _read(path)
    tables.unique_columns(table.column_names, path)
    missing = [c for c in ("image_id", "score") if c not in table.column_names]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (need image_id, score[, summary][, split])")
    n = table.num_rows
    out = {name: _typed(table.column(name), name, type_, path) if name in table.column_names else pa.nulls(n, type_)
           for name, type_ in KNOWN.items()}
    _check_values(out, path)
    out["summary"] = out["summary"].fill_null(IMAGE_SCORE)  # no summary: one score per image
    ignored = [c for c in table.column_names if c not in KNOWN]
    notes = [f"{path.name}: ignored column(s) {', '.join(ignored)} (evaluate reads {', '.join(KNOWN)})"] if ignored else []
    return Outside(io.conform(pa.table(out), schemas.PREDICTIONS), "split" in table.column_names, notes)


def _read(path: Path) -> pa.Table:
    """The file as a table: Parquet with its own types, CSV with every column as text (empty =
    null), so that each column's values are checked here, the first bad one named by its row."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if suffix in (".csv", ".gz"):
            from pyarrow import csv

            text = tables.read_text(path, "predictions")  # bounded, also when gzip-compressed
            header, _ = tables.parse_csv(path, text.split("\n", 1)[0])
            convert = csv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True)
            return csv.read_csv(pa.BufferReader(text.encode("utf-8")), convert_options=convert)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: unreadable predictions: {' '.join(str(exc).split())}") from None
    raise InputError(f"{path}: predictions must be a .parquet or .csv file")


def _typed(column: pa.ChunkedArray, name: str, type_: pa.DataType, path: Path) -> pa.ChunkedArray:
    """`column` cast to `type_`, or an InputError naming the column and its first bad row (a safe
    cast refuses text that is no number and a fraction where a whole number belongs)."""
    if _casts(column, type_):
        return column.cast(type_)
    row = _first_bad(column, type_)
    shown = repr(column[row].as_py())
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise InputError(f"{path}: column {name} is not {WORDS.get(type_, type_)}: row {row + 1} holds {shown}")


def _casts(column: pa.ChunkedArray, type_: pa.DataType) -> bool:
    try:
        column.cast(type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False
    return True


def _first_bad(column: pa.ChunkedArray, type_: pa.DataType) -> int:
    """The first row that does not cast (a cast is all or nothing): a binary search over
    prefixes, so a bad last row of a million costs some twenty vectorised casts, not a loop."""
    good, bad = 0, len(column)  # column[:good] casts, column[:bad] does not
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if _casts(column.slice(0, mid), type_) else (good, mid)
    return bad - 1


def _check_values(out: dict[str, pa.ChunkedArray | pa.Array], path: Path) -> None:
    """Values the types allow but the metrics cannot use, named by their first row."""
    score = out["score"]
    bad = pc.or_kleene(pc.is_null(score), pc.invert(pc.is_finite(score)))
    if pc.any(bad).as_py():
        raise InputError(f"{path}: row {pc.index(bad, True).as_py() + 1}: score is missing or not finite")
    ids = out["image_id"]
    if pc.any(pc.is_null(ids)).as_py():
        raise InputError(f"{path}: row {pc.index(pc.is_null(ids), True).as_py() + 1}: image_id is empty")
    # A split the metrics do not know would silently drop its rows from every metric.
    split = out["split"]
    unknown = pc.and_kleene(pc.is_valid(split), pc.invert(pc.is_in(split, pa.array(SPLITS))))
    if pc.any(unknown).as_py():
        row = pc.index(unknown, True).as_py()
        raise InputError(f"{path}: row {row + 1}: split {split[row].as_py()!r} is not one of {', '.join(SPLITS)}")
