"""`spurspec evaluate`: score a training run's test (and validation) split with predict_split, or
take predictions made elsewhere, and compute every metric with bootstrap intervals.
Run:     reads RUN/config.toml, checkpoints, the dataset; writes RUN/predictions.parquet,
         RUN/saliency.npz, RUN/metrics.parquet, RUN/provenance/evaluate.json.
Outside: reads a Parquet/CSV of image_id, score[, summary][, split] (evaluation.outside);
         writes EvalLayout files."""

from __future__ import annotations

import os
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
from spurspec.errors import ConfigError, InputError
from spurspec.evaluation.outside import read_outside
from spurspec.metrics.compute import MetricSettings, compute_metrics
from spurspec.metrics.thresholds import parse_rule
from spurspec.training.config import CHECKPOINTS, TrainConfig

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
    if cfg.run is not None and (cfg.predictions or cfg.out):
        raise ConfigError("give either RUN (and --dataset if its dataset moved), or --predictions with --dataset and "
                          "--out, not both")
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
    # Where the run, its dataset or the outside files live is not what is scored (their content is).
    state = freshness.check(prov, settings, inputs, where=metrics.parent, what=WHAT, paths=paths,
                            locations=("run", "dataset", "predictions", "out"))
    if state.stale:
        raise state.error()
    return state.fresh


def _evaluate_run(cfg: EvaluateConfig, force: bool) -> EvaluateResult:
    record = RunRecord.open(Path(cfg.run))
    # The run directory's lock, the one `train` takes: never score a run while it trains.
    with locks.hold(record.root, "evaluate"):
        return _score_run(cfg, record, force)


def _score_run(cfg: EvaluateConfig, record: RunRecord, force: bool) -> EvaluateResult:
    record.refuse_audit("evaluate")
    layout = record.layout
    dataset = record.open_dataset(moved_to=cfg.dataset)
    if cfg.dataset is not None:
        record.relink(dataset.root)
    ckpt = record.checkpoint(cfg.checkpoint)
    inputs = {"checkpoint": provenance.file_digest(ckpt), "dataset": dataset.fingerprint()}
    settings = _recorded(cfg)
    paths = {"checkpoint": ckpt, "dataset": dataset.layout.manifest}
    if _fresh(layout.metrics, layout.provenance("evaluate"), settings, inputs, force, paths):
        _update_completion(layout.provenance("evaluate"), record)
        return EvaluateResult(layout.root, io.read_table(layout.metrics, "metrics"), up_to_date=True,
                              notes=_completion_notes(record, cfg))

    from spurspec import runtime
    from spurspec.training.predict import predict_split  # torch loads only when a run is scored

    runtime.configure(cfg.threads)

    main = predict_split(layout.root, cfg.split, cfg.checkpoint, cfg.device, cfg.n_saliency)
    tables = [main.predictions]
    notes = _completion_notes(record, cfg) + _score_notes(record)
    if cfg.split != "val":
        tables.append(predict_split(layout.root, "val", cfg.checkpoint, cfg.device, 0).predictions)
    else:
        notes.append("thresholds chosen on val and scored on val: sensitivity/specificity are optimistic")
    predictions = pa.concat_tables([schemas.check(t, schemas.PREDICTIONS) for t in tables], promote_options="default")
    _forget(layout)
    io.write_table(layout.predictions, predictions, schemas.PREDICTIONS)
    write_saliency(layout.prob_maps, main.saliency, main.saliency_kind)
    metrics = metrics_of(predictions, dataset, cfg, where=str(layout.predictions))
    io.write_table(layout.metrics, metrics, schemas.METRICS)
    # What was scored: a fact beside the settings (report marks and counts runs by it).
    provenance.write(layout.provenance("evaluate"), "evaluate", settings, inputs,
                     completion=record.completion.as_record())
    return EvaluateResult(layout.root, metrics, notes=notes)


def metrics_of(predictions: pa.Table, dataset: Dataset, cfg: EvaluateConfig, where: str) -> pa.Table:
    """Every metric of a PREDICTIONS table holding `cfg.split` and val rows (a run's, or an outside
    model's audit), thresholds chosen on val."""
    preds = _roles(predictions, cfg.split, has_split=True)
    return compute_metrics(dataset.layout.manifest, preds, dataset.spurious, _settings(cfg), where=where)


def _completion_notes(record: RunRecord, cfg: EvaluateConfig) -> list[str]:
    """An unfinished run is scored as it stands (its best checkpoint so far): say so, and how to
    finish it; after more training its checkpoint changes, so evaluate needs --force again."""
    done = record.completion
    if done.finished:
        return []
    return [f"{record.root}: {done.describe()}; scored its {cfg.checkpoint} checkpoint so far (continue with "
            f"`spurspec train {os.path.normpath(record.dataset)} --out {record.root} --resume`, then `spurspec evaluate "
            f"{record.root} --force`)"]


def _update_completion(path: Path, record: RunRecord) -> None:
    """An up-to-date evaluation's completion fact, brought up to date: the same best checkpoint
    (its digest is an input) can be the best of a run that has trained on, or finished, since."""
    data = io.read_json(path)
    now = record.completion.as_record()
    if data.get("completion") != now:
        io.write_json(path, {**data, "completion": now})


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
    predictions, has_split, notes = read_outside(path)
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
