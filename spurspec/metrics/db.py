"""The metric queries: SQL files in spurspec/metrics/sql/ loaded by name and run with DuckDB over
the dataset manifest (Parquet) and a predictions table. Values are always bound as parameters;
the only identifiers placed in SQL are spurious-attribute column names, checked first."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from spurspec.artefacts.schemas import attribute_name_problem
from spurspec.errors import InputError
from spurspec.metrics.cells import ROBUST_CELLS

_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def load(name: str) -> str:
    """The text of spurspec/metrics/sql/<name>.sql."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"bad SQL file name {name!r}")
    return resources.files("spurspec.metrics").joinpath("sql").joinpath(f"{name}.sql").read_text(encoding="utf-8")


def quote_attributes(columns: list[str], allowed: list[str]) -> str:
    """Validated, double-quoted, comma-separated attribute columns for an identifier slot.
    A name must be one of the manifest's declared spurious attributes and pass the attribute-name
    rule ingest applies (schemas.attribute_name_problem); anything else is refused before it can
    reach SQL."""
    for col in columns:
        if col not in allowed:
            raise InputError(f"{col!r} is not a spurious attribute of this dataset (have: {', '.join(allowed) or 'none'})")
        problem = attribute_name_problem(col)
        if problem is not None:
            raise InputError(f"spurious attribute {col!r}: {problem}; re-ingest the dataset with a valid name")
    return ", ".join(f'"{c}"' for c in columns)


class MetricDB:
    """One in-memory DuckDB connection holding `manifest`, `preds` and the derived tables."""

    def __init__(self, manifest_path: Path, preds: pa.Table, attributes: list[str], allowed: list[str]) -> None:
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET threads TO 2")
        self.attributes = list(attributes)
        self.run("manifest", path=str(manifest_path))
        # `preds` is an Arrow table with image_id, summary, role, score (normalised by the caller).
        self.con.register("preds_arrow", preds)
        self.con.execute("CREATE OR REPLACE TEMP TABLE preds AS SELECT * FROM preds_arrow")
        self.con.unregister("preds_arrow")
        if self.attributes:
            cols = quote_attributes(self.attributes, allowed)
            self.con.execute(load("attributes").replace("{columns}", cols))
        else:
            self.run("attributes_none")

    def run(self, name: str, **params: Any) -> duckdb.DuckDBPyConnection:
        return self.con.execute(load(name), params or None)

    def rows(self, name: str, **params: Any) -> list[dict[str, Any]]:
        cur = self.run(name, **params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def arrow(self, name: str, **params: Any) -> pa.Table:
        return self.con.sql(load(name), params=params or None).to_arrow_table()

    def prepare(self) -> None:
        """Join, build subsets and the expected cells (call after the id checks pass)."""
        self.run("scored")
        self.run("robust_cells", labels=[y for y, _ in ROBUST_CELLS], values=[a for _, a in ROBUST_CELLS])
        self.run("subsets")
        self.run("expected", attributes=self.attributes)

    def close(self) -> None:
        self.con.close()
