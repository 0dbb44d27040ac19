"""`spurspec evaluate`: score a training run's test (and validation) split with predict_split, or
take predictions made elsewhere, and compute every metric with bootstrap intervals.
Run:     reads RUN/config.toml, checkpoints, the dataset; writes RUN/predictions.parquet,
         RUN/saliency.npz, RUN/metrics.parquet, RUN/provenance/evaluate.json.
Outside: reads a Parquet/CSV of image_id, score[, summary][, split]; writes EvalLayout files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from spurspec.artefacts import freshness, io, locks, provenance, schemas
from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.layout import EvalLayout
from spurspec.artefacts.run import RunRecord, write_saliency
from spurspec.config import check_seed, to_dict
from spurspec.datasets import tables
from spurspec.errors import ConfigError, InputError
from spurspec.metrics.compute import MetricSettings, compute_metrics
from spurspec.metrics.thresholds import parse_rule
from spurspec.training.config import CHECKPOINTS, TrainConfig
from spurspec.training.models.summaries import IMAGE_SCORE

WHAT = "metrics"  # what freshness messages call this stage's output


@dataclass(frozen=True)
class EvaluateConfig:
    run: Path | None = None  # a training run directory: predict its split, write into it
    predictions: Path | None = None  # or predictions made elsewhere (Parquet or CSV)
    dataset: Path | None = None  # the dataset outside predictions refer to (their image_ids)
    out: Path | None = None  # where outside predictions' metrics go
    split: str = "test"  # the split the metrics describe; thresholds always come from val
    checkpoint: str = "best"  # best (by the run's selection metric) | last
    bootstrap: int = 1000  # replicates per interval; 1,000 gives stable 95% percentile bounds
    seed: int = 0  # seeds the bootstrap: the same command gives the same intervals
    confidence: float = 0.95  # interval coverage
    threshold: str = "youden"  # youden | sensitivity:X, chosen on the validation split only
    device: str | None = None  # inference device for a run; unset = predict_split's choice
    n_saliency: int = 8  # robust-cell test images whose maps are kept for the report
    threads: int | None = None  # compute threads for a run's inference; unset = spurspec.runtime's choice


@dataclass
class EvaluateResult:
    out: Path
    metrics: pa.Table
    up_to_date: bool = False
    notes: list[str] = field(default_factory=list)


def evaluate(cfg: EvaluateConfig, force: bool = False) -> EvaluateResult:
    check(cfg)
    if cfg.run is not None:
        return _evaluate_run(cfg, force)
    return _evaluate_outside(cfg, force)


def check(cfg: EvaluateConfig) -> None:
    """Every setting, before anything is read or written (the CLI and pipelines alike)."""
    parse_rule(cfg.threshold)
    if cfg.split not in schemas.SPLITS:
        raise ConfigError(f"split {cfg.split!r}: use one of {', '.join(schemas.SPLITS)}")
    if cfg.checkpoint not in CHECKPOINTS:
        raise ConfigError(f"checkpoint {cfg.checkpoint!r}: use one of {', '.join(CHECKPOINTS)}")
    if cfg.bootstrap < 0 or not 0 < cfg.confidence < 1:
        raise ConfigError("bootstrap must be >= 0 and confidence in (0, 1)")
    check_seed(cfg.seed)
    if cfg.n_saliency < 0:
        raise ConfigError(f"n_saliency must be >= 0, got {cfg.n_saliency}")
    if cfg.run is not None and (cfg.predictions or cfg.dataset or cfg.out):
        raise ConfigError("give either RUN, or --predictions with --dataset and --out, not both")
    if cfg.run is None and not (cfg.predictions and cfg.dataset and cfg.out):
        raise ConfigError("give a RUN directory, or --predictions FILE --dataset DATASET --out DIR")


def _settings(cfg: EvaluateConfig) -> MetricSettings:
    return MetricSettings(n_boot=cfg.bootstrap, seed=cfg.seed, confidence=cfg.confidence, threshold=cfg.threshold)


def _recorded(cfg: EvaluateConfig) -> dict[str, Any]:
    settings = to_dict(cfg)
    settings.pop("device")  # where inference ran does not change what it computes
    settings.pop("threads")  # nor how many threads it used
    return settings


def _fresh(metrics: Path, prov: Path, settings: dict, inputs: dict, force: bool, paths: dict[str, Path]) -> bool:
    """True if the metrics on disk are for exactly these settings and inputs. Other finished
    metrics need --force; a half-finished evaluate (no provenance) is simply redone."""
    if force or not metrics.exists():
        return False
    state = freshness.check(prov, settings, inputs, where=metrics.parent, what=WHAT, paths=paths)
    if state.stale:
        raise state.error()
    return state.fresh


def _evaluate_run(cfg: EvaluateConfig, force: bool) -> EvaluateResult:
    record = RunRecord.open(Path(cfg.run))
    # The run directory's lock, the one `train` takes: never score a run while it trains.
    with locks.hold(record.root, "evaluate"):
        return _score_run(cfg, record, force)


def _score_run(cfg: EvaluateConfig, record: RunRecord, force: bool) -> EvaluateResult:
    layout = record.layout
    dataset = Dataset.open(record.dataset)
    ckpt = record.checkpoint(cfg.checkpoint)
    inputs = {"checkpoint": provenance.file_digest(ckpt), "dataset": dataset.fingerprint()}
    settings = _recorded(cfg)
    paths = {"checkpoint": ckpt, "dataset": dataset.layout.manifest}
    if _fresh(layout.metrics, layout.provenance("evaluate"), settings, inputs, force, paths):
        return EvaluateResult(layout.root, io.read_table(layout.metrics, "metrics"), up_to_date=True)

    from spurspec import runtime
    from spurspec.training.predict import predict_split  # torch loads only when a run is scored

    runtime.configure(cfg.threads)

    main = predict_split(layout.root, cfg.split, cfg.checkpoint, cfg.device, cfg.n_saliency)
    tables = [main.predictions]
    notes = _score_notes(record)
    if cfg.split != "val":
        tables.append(predict_split(layout.root, "val", cfg.checkpoint, cfg.device, 0).predictions)
    else:
        notes.append("thresholds chosen on val and scored on val: sensitivity/specificity are optimistic")
    predictions = pa.concat_tables([schemas.check(t, schemas.PREDICTIONS) for t in tables], promote_options="default")
    _forget(layout)
    io.write_table(layout.predictions, predictions, schemas.PREDICTIONS)
    write_saliency(layout.prob_maps, main.saliency)
    preds = _roles(predictions, cfg.split, has_split=True)
    metrics = compute_metrics(dataset.layout.manifest, preds, dataset.spurious, _settings(cfg), where=str(layout.predictions))
    io.write_table(layout.metrics, metrics, schemas.METRICS)
    provenance.write(layout.provenance("evaluate"), "evaluate", settings, inputs)
    return EvaluateResult(layout.root, metrics, notes=notes)


def _score_notes(record: RunRecord) -> list[str]:
    """What the scores are, where they are not probabilities: a binary run with binary_score =
    logit (config.toml; the study's evaluation) is scored by its raw class-1 logit."""
    if record.granularity != "binary" or record.config.get("binary_score", TrainConfig.binary_score) != "logit":
        return []
    return ["binary_score = logit: scored by the raw class-1 logit, as the study's evaluation ranked; scores and "
            "the validation threshold are logits, not probabilities"]


def _forget(layout: EvalLayout) -> None:
    """Drop the old provenance just before new predictions and metrics replace the old ones
    (every check has passed by then): killed half-way, an evaluate leaves metrics without
    provenance, which the next run redoes, never new metrics under the old settings' record."""
    layout.provenance("evaluate").unlink(missing_ok=True)


def _roles(predictions: pa.Table, split: str, has_split: bool) -> pa.Table:
    """image_id, summary, role ('eval' for `split`, 'val' for threshold rows), score."""
    if has_split:
        s = predictions.column("split")
        role = pc.if_else(pc.equal(s, split), "eval", pc.if_else(pc.equal(s, "val"), "val", None))
    else:
        role = pa.array(["eval"] * predictions.num_rows, pa.string())
    table = pa.table({
        "image_id": predictions.column("image_id").cast(pa.string()),
        "summary": predictions.column("summary").cast(pa.string()),
        "role": role,
        "score": predictions.column("score").cast(pa.float64()),
    })
    table = table.filter(pc.is_valid(table.column("role")))
    if pc.sum(pc.equal(table.column("role"), "eval")).as_py() in (None, 0):
        raise InputError(f"no predictions for the {split} split")
    return table


def _evaluate_outside(cfg: EvaluateConfig, force: bool) -> EvaluateResult:
    dataset = Dataset.open(Path(cfg.dataset))
    path = Path(cfg.predictions)
    if not path.is_file():
        raise InputError(f"{path}: predictions file not found")
    with locks.hold(Path(cfg.out), "evaluate"):
        return _score_outside(cfg, dataset, path, force)


def _score_outside(cfg: EvaluateConfig, dataset: Dataset, path: Path, force: bool) -> EvaluateResult:
    layout = EvalLayout(Path(cfg.out))
    inputs = {"predictions": provenance.file_digest(path), "dataset": dataset.fingerprint()}
    settings = _recorded(cfg)
    paths = {"predictions": path, "dataset": dataset.layout.manifest}
    if _fresh(layout.metrics, layout.provenance("evaluate"), settings, inputs, force, paths):
        return EvaluateResult(layout.root, io.read_table(layout.metrics, "metrics"), up_to_date=True)
    predictions, has_split = read_outside(path)
    notes = []
    no_val = None
    if has_split:
        preds = _roles(predictions, cfg.split, has_split=True)
    else:
        preds = _roles(predictions, cfg.split, has_split=False)
        no_val = "the predictions have no split column, so there are no validation rows to choose a threshold on"
        notes.append(f"all {predictions.num_rows} rows scored; sensitivity/specificity are NULL: {no_val}")
    metrics = compute_metrics(dataset.layout.manifest, preds, dataset.spurious, _settings(cfg),
                              where=str(path), no_val_reason=no_val)
    _forget(layout)
    io.write_table(layout.predictions, predictions, schemas.PREDICTIONS)
    io.write_table(layout.metrics, metrics, schemas.METRICS)
    provenance.write(layout.provenance("evaluate"), "evaluate", settings, inputs)
    return EvaluateResult(layout.root, metrics, notes=notes)


def read_outside(path: Path) -> tuple[pa.Table, bool]:
    """A user's predictions as a PREDICTIONS table, and whether it carried a split column."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif suffix in (".csv", ".gz"):
            from pyarrow import csv

            types = {"image_id": pa.string(), "summary": pa.string(), "split": pa.string()}
            text = tables.read_text(path, "predictions")  # bounded, also when gzip-compressed
            table = csv.read_csv(pa.BufferReader(text.encode("utf-8")), convert_options=csv.ConvertOptions(column_types=types))
        else:
            raise InputError(f"{path}: predictions must be a .parquet or .csv file")
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: unreadable predictions: {' '.join(str(exc).split())}") from None
    tables.unique_columns(table.column_names, path)
    missing = [c for c in ("image_id", "score") if c not in table.column_names]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (need image_id, score[, summary][, split])")
    try:
        score = table.column("score").cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InputError(f"{path}: column score is not numeric") from None
    bad = pc.or_kleene(pc.is_null(score), pc.invert(pc.is_finite(score)))
    if pc.any(bad).as_py():
        row = pc.index(bad, True).as_py()
        raise InputError(f"{path}: row {row + 1}: score is missing or not finite")
    ids = table.column("image_id").cast(pa.string())
    if pc.any(pc.is_null(ids)).as_py():
        raise InputError(f"{path}: row {pc.index(pc.is_null(ids), True).as_py() + 1}: image_id is empty")
    n = table.num_rows
    has_split = "split" in table.column_names
    out = {
        "image_id": ids,
        "split": table.column("split").cast(pa.string()) if has_split else pa.nulls(n, pa.string()),
        "summary": (table.column("summary").cast(pa.string()).fill_null(IMAGE_SCORE)
                    if "summary" in table.column_names else pa.array([IMAGE_SCORE] * n, pa.string())),
        "score": score,
    }
    for f in schemas.PREDICTIONS:
        if f.name not in out:
            out[f.name] = table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(n, f.type)
    return io.conform(pa.table(out), schemas.PREDICTIONS), has_split
