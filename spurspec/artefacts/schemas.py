"""The pyarrow schemas of every table stages hand to each other, each with a name and version
in its metadata. Readers call `check()` so a stale or foreign file fails with a clear error."""

from __future__ import annotations

import json
import re

import pyarrow as pa

from spurspec.errors import ArtefactError

SCHEMA_VERSION = "1"


def _schema(name: str, fields: list[pa.Field], **meta: str) -> pa.Schema:
    metadata = {"spurspec.schema": name, "spurspec.schema_version": SCHEMA_VERSION, **meta}
    return pa.schema(fields, metadata=metadata)


# One row per image, in the order of the preprocessed arrays (`row` is the array index).
MANIFEST_FIELDS = [
    pa.field("row", pa.int32(), nullable=False),
    pa.field("image_id", pa.string(), nullable=False),
    pa.field("patient_id", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),  # 'train' | 'val' | 'test'
    pa.field("label", pa.int8(), nullable=False),  # 1 = the abnormality
    pa.field("has_mask", pa.bool_(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("orig_height", pa.int32(), nullable=False),
    pa.field("orig_width", pa.int32(), nullable=False),
]
SPLITS = ("train", "val", "test")


# A spurious attribute is a manifest column that `evaluate` places in SQL as a quoted identifier,
# so its name follows one rule from ingest (which refuses others) to evaluate (which re-checks):
# letters, digits and _, not starting with a digit, at most 63 characters (DuckDB's and
# Postgres's identifier length), and not a base manifest column in any letter case (DuckDB
# matches identifiers case-insensitively).
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def attribute_name_problem(name: str) -> str | None:
    """What is wrong with `name` as a spurious attribute's name, or None."""
    if not ATTRIBUTE_NAME.match(name):
        return "not a valid attribute name: a plain identifier (letters, digits and _, not starting with a digit, at most 63 characters)"
    if name.lower() in {f.name for f in MANIFEST_FIELDS}:
        return "clashes with a manifest column of that name"
    return None


def manifest_schema(spurious: list[str], extra: list[pa.Field] | None = None) -> pa.Schema:
    """Base manifest fields, one nullable int8 column per spurious attribute, then extras."""
    fields = list(MANIFEST_FIELDS)
    fields += [pa.field(a, pa.int8(), nullable=True) for a in spurious]
    fields += list(extra or [])
    return _schema("manifest", fields, **{"spurspec.spurious": json.dumps(list(spurious))})


def spurious_attributes(table_or_schema: pa.Table | pa.Schema) -> list[str]:
    schema = table_or_schema.schema if isinstance(table_or_schema, pa.Table) else table_or_schema
    raw = (schema.metadata or {}).get(b"spurspec.spurious")
    return json.loads(raw) if raw else []


# Full-resolution masks as SIIM-style RLE (column-major, relative), "-1" for an empty mask.
MASK_RLE = _schema(
    "mask_rle",
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("rle", pa.string(), nullable=False),
    ],
)

# Boxes are half-open [x0, x1) x [y0, y1), in original and in training-size pixels.
BOXES = _schema(
    "boxes",
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("box_index", pa.int32(), nullable=False),
        pa.field("x0", pa.int32(), nullable=False),
        pa.field("y0", pa.int32(), nullable=False),
        pa.field("x1", pa.int32(), nullable=False),
        pa.field("y1", pa.int32(), nullable=False),
        pa.field("train_x0", pa.int32(), nullable=False),
        pa.field("train_y0", pa.int32(), nullable=False),
        pa.field("train_x1", pa.int32(), nullable=False),
        pa.field("train_y1", pa.int32(), nullable=False),
        pa.field("area", pa.int64(), nullable=False),
    ],
)

REJECTS = _schema(
    "rejects",
    [pa.field("input", pa.string(), nullable=False), pa.field("reason", pa.string(), nullable=False)],
)

# The columns every run's train_log.parquet holds, one row per epoch. A training method's own
# columns follow them: training.methods.TRAIN_LOG is the whole schema, built from the methods' cards.
TRAIN_LOG_FIELDS = [
    pa.field("epoch", pa.int32(), nullable=False),
    pa.field("train_loss", pa.float64()),
    pa.field("val_loss", pa.float64()),
    pa.field("val_auroc", pa.float64()),
    pa.field("val_dice", pa.float64()),
    pa.field("lr", pa.float64()),
    pa.field("images_per_s", pa.float64()),
    pa.field("data_wait_fraction", pa.float64()),
    pa.field("epoch_seconds", pa.float64()),
    pa.field("is_best", pa.bool_()),
]


def train_log(method_fields: list[pa.Field]) -> pa.Schema:
    """The train_log schema: TRAIN_LOG_FIELDS, then the methods' own columns (nullable)."""
    return _schema("train_log", [*TRAIN_LOG_FIELDS, *(f.with_nullable(True) for f in method_fields)])


# `--method dfr`: the validation images of each half: "fit" (the last layer is refit on a
# group-balanced sample of them) and "select" (its regularisation is chosen on them).
DFR_HALVES = _schema(
    "dfr_halves",
    [
        pa.field("row", pa.int32(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("half", pa.string(), nullable=False),
    ],
)

# Training images with a mask and whether `--mask-budget` kept its pixel supervision (train).
MASK_BUDGET = _schema(
    "mask_budget",
    [
        pa.field("row", pa.int32(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("label", pa.int8(), nullable=False),
        pa.field("kept", pa.bool_(), nullable=False),
    ],
)

# Long format: pixel granularities give one row per (image, summarising function).
PREDICTIONS = _schema(
    "predictions",
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("split", pa.string()),
        pa.field("summary", pa.string(), nullable=False),  # summarising function; 'image' (summaries.IMAGE_SCORE) for binary
        pa.field("score", pa.float64(), nullable=False),
        pa.field("run_id", pa.string()),
        pa.field("granularity", pa.string()),
        pa.field("method", pa.string()),
        pa.field("model", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("checkpoint", pa.string()),
    ],
)

METRICS = _schema(
    "metrics",
    [
        pa.field("metric", pa.string(), nullable=False),
        pa.field("attribute", pa.string()),  # null for overall metrics
        pa.field("summary", pa.string()),
        pa.field("value", pa.float64()),  # null when undefined; `reason` says why
        pa.field("ci_low", pa.float64()),
        pa.field("ci_high", pa.float64()),
        pa.field("n_pos", pa.int64()),
        pa.field("n_neg", pa.int64()),
        pa.field("reason", pa.string()),
    ],
)

# `spurspec compare` (and the report's findings): one row per (pair of runs, metric, attribute);
# diff = b - a, where a is the reference group's run of the same replicate.
COMPARISON = _schema(
    "comparison",
    [
        pa.field("reference_group", pa.string(), nullable=False),
        pa.field("group", pa.string(), nullable=False),
        pa.field("replicate", pa.string(), nullable=False),  # e.g. "seed 0", "trap set 2 seed 0"
        pa.field("reference_run", pa.string(), nullable=False),
        pa.field("run", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("attribute", pa.string()),
        pa.field("a", pa.float64()),
        pa.field("b", pa.float64()),
        pa.field("diff", pa.float64()),  # null when either value is undefined
        pa.field("ci_low", pa.float64()),  # paired patient-bootstrap percentile interval
        pa.field("ci_high", pa.float64()),
        pa.field("p_value", pa.float64()),  # two-sided, from the same replicates
        pa.field("n_boot", pa.int64()),
        pa.field("delong_p", pa.float64()),  # plain AUROC only
    ],
)


# `spurspec probe`: RUN/probes/<probe>.parquet, one row per (probe, image set, map, metric).
# Insertion and removal: the score shift, flip rates and AUROC before and after, on the same
# images; attribution: the share of each map's evidence per region and the pointing game.
PROBE = _schema(
    "probe",
    [
        pa.field("probe", pa.string(), nullable=False),  # the file's name, e.g. insert-tube-away
        pa.field("kind", pa.string(), nullable=False),  # insert | remove | attribution
        pa.field("feature", pa.string()),  # tube, vignette, ink, overlay:<file>; null for attribution
        pa.field("placement", pa.string()),  # random | fixed | away (insert only)
        pa.field("images", pa.string(), nullable=False),  # the image set, e.g. all, positives, abnormality
        pa.field("map", pa.string()),  # attribution: gradcam | probability | integrated_gradients
        pa.field("metric", pa.string(), nullable=False),
        pa.field("summary", pa.string(), nullable=False),  # the summarising function scored
        pa.field("value", pa.float64()),  # null when undefined; `reason` says why
        pa.field("ci_low", pa.float64()),  # patient-bootstrap percentile interval
        pa.field("ci_high", pa.float64()),
        pa.field("n_images", pa.int64(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("granularity", pa.string()),
        pa.field("method", pa.string()),
        pa.field("model", pa.string()),
        pa.field("seed", pa.int64()),  # the run's training seed
        pa.field("checkpoint", pa.string()),
        pa.field("probe_seed", pa.int64()),  # seeds placements and the bootstrap
    ],
)

# `spurspec theory`: one row per (P(y,s), overlap, r, measure); exact value beside Monte Carlo.
THEORY = _schema(
    "theory",
    [
        pa.field("p_ys", pa.string(), nullable=False),  # "p00,p01,p10,p11"
        pa.field("p_s_given_y1", pa.float64(), nullable=False),
        pa.field("overlap", pa.bool_(), nullable=False),
        pa.field("r", pa.int32(), nullable=False),  # number of regions
        pa.field("region_side", pa.int32(), nullable=False),  # block side in pixels
        pa.field("measure", pa.string(), nullable=False),  # 'var_x' | 'mi_sy_bits'
        pa.field("exact", pa.float64(), nullable=False),
        pa.field("simulated", pa.float64(), nullable=False),
        pa.field("se", pa.float64(), nullable=False),  # bootstrap standard error
        pa.field("ci_low", pa.float64(), nullable=False),  # 95%: simulated -/+ 1.96 se
        pa.field("ci_high", pa.float64(), nullable=False),
        pa.field("z", pa.float64()),  # (simulated - exact) / se; null when se = 0
        pa.field("samples", pa.int64(), nullable=False),
    ],
)


def check_manifest(table: pa.Table, path: object) -> None:
    """The manifest's columns hold what the contract says, checked on open so a hand-edited or
    foreign manifest fails here, naming the column and the first bad row, not mid-training:
    types, no nulls where none are allowed, labels and attributes 0/1, known splits, unique
    image ids, and `row` numbering the arrays 0..N-1 in order."""
    import pyarrow.compute as pc

    def bad(column: str, mask: pa.ChunkedArray, what: str) -> None:
        if pc.any(mask).as_py():
            i = pc.index(mask, True).as_py()
            raise ArtefactError(f"{path}: row {i}: {column} {table.column(column)[i].as_py()!r} {what}; re-run the ingest")

    for f in MANIFEST_FIELDS:
        t = table.schema.field(f.name).type
        kind = {pa.int8(): pa.types.is_integer, pa.int32(): pa.types.is_integer, pa.string(): pa.types.is_string,
                pa.bool_(): pa.types.is_boolean}[f.type]
        if not (kind(t) or (f.type == pa.string() and pa.types.is_large_string(t))):
            raise ArtefactError(f"{path}: column {f.name} is {t}, expected {f.type}; re-run the ingest")
        if table.column(f.name).null_count:
            bad(f.name, pc.is_null(table.column(f.name)), "is missing")
    bad("label", pc.invert(pc.is_in(table.column("label"), pa.array([0, 1], table.schema.field("label").type))), "is not 0 or 1")
    bad("split", pc.invert(pc.is_in(table.column("split"), pa.array(SPLITS))), f"is not one of {', '.join(SPLITS)}")
    rows = pa.array(range(table.num_rows), table.schema.field("row").type)
    bad("row", pc.not_equal(table.column("row"), rows), "does not number the arrays in order (0, 1, 2, ...)")
    for name in spurious_attributes(table):
        problem = attribute_name_problem(name)
        if name not in table.column_names or problem is not None:
            raise ArtefactError(f"{path}: spurious attribute {name!r}: {problem or 'no such column'}; re-run the ingest")
        col = table.column(name)
        if not pa.types.is_integer(col.type):
            raise ArtefactError(f"{path}: spurious attribute {name} is {col.type}, expected 0/1 integers; re-run the ingest")
        bad(name, pc.and_(pc.is_valid(col), pc.invert(pc.is_in(col, pa.array([0, 1], col.type)))), "is not 0, 1 or empty")
    counts = pc.value_counts(table.column("image_id"))
    repeated = counts.filter(pc.greater(pc.struct_field(counts, "counts"), 1))
    if len(repeated):
        raise ArtefactError(f"{path}: image_id {repeated[0]['values'].as_py()!r} appears more than once; re-run the ingest")


def check(table: pa.Table, expected: pa.Schema, path: object = "") -> pa.Table:
    """Fail clearly if `table` is not the artefact `expected` describes (name, version, columns)."""
    meta = table.schema.metadata or {}
    name = expected.metadata[b"spurspec.schema"]
    where = f"{path}: " if path else ""
    if meta.get(b"spurspec.schema") != name:
        raise ArtefactError(f"{where}not a spurspec {name.decode()} table")
    version = meta.get(b"spurspec.schema_version", b"?").decode()
    if version != SCHEMA_VERSION:
        raise ArtefactError(
            f"{where}schema version {version}, this spurspec reads {SCHEMA_VERSION}; re-run the stage"
        )
    missing = [f.name for f in expected if f.name not in table.column_names]
    if missing:
        raise ArtefactError(f"{where}missing column(s) {', '.join(missing)}")
    return table
