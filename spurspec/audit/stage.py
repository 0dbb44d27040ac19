"""`spurspec audit MODEL --dataset DS --out DIR`: a model trained anywhere, as an ONNX file with a
card (audit.model, audit.card), scored on a dataset's test and val splits and probed, into a
directory shaped like an evaluated run, so `compare`, `report` and `evaluate --predictions` read
it as they read spurspec's own runs.
Reads MODEL, the card file if given, the dataset. Writes DIR/config.toml (the audit's identity:
the model file and its SHA-256, the card, the dataset's link and fingerprint), predictions.parquet
and metrics.parquet (evaluate's schemas and metric code), provenance/evaluate.json, `done`, and with
probes asked DIR/probes/*.parquet (the probe stage's own code, with the outside model as its
scorer). Every check of the model, card and dataset runs before anything is written, and a
failure part-way removes DIR again, so no half-written audit is left."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from spurspec.artefacts import io, locks, provenance, schemas
from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.layout import RunLayout
from spurspec.artefacts.run import dataset_link
from spurspec.audit.model import OnnxModel
from spurspec.audit.scorer import ExternalScorer
from spurspec.config import check_seed, dumps_toml
from spurspec.errors import ConfigError, ExistsError, InputError
from spurspec.evaluation.evaluate import EvaluateConfig, metrics_of
from spurspec.training.models.summaries import IMAGE_SCORE

GRANULARITY = "audit"  # an audit's granularity is audit:<model file's stem>: reports group by it
METHOD = "outside"  # and as its method: the model was trained outside spurspec


@dataclass(frozen=True)
class AuditConfig:
    model: Path | None = None  # an ONNX file
    dataset: Path | None = None
    out: Path | None = None
    card: Path | None = None  # a card TOML; its values override the model's own metadata
    card_flags: dict[str, Any] = field(default_factory=dict)  # flag values, overriding the card file
    batch_size: int = 64  # images per forward pass
    bootstrap: int = 1000
    seed: int = 0
    threshold: str = "youden"
    insert: tuple[str, ...] = ()  # probes, as `spurspec probe` names them
    remove: bool = False
    attribution: bool = False
    max_images: int = 200  # attribution: images per image set
    window: int | None = None  # occlusion window (px); None: an eighth of the image
    stride: int | None = None
    threads: int | None = None  # compute threads; unset = spurspec.runtime's choice


@dataclass
class AuditResult:
    out: Path
    model: OnnxModel
    metrics: pa.Table
    probes: dict[str, pa.Table]
    notes: list[str]


class AuditModel:
    """The probe stage's view of the audited model (probes.stage.Model)."""

    def __init__(self, model: OnnxModel, cfg: AuditConfig) -> None:
        self.model, self.cfg, self.path = model, cfg, model.path

    def scorer(self, run, probe_cfg) -> ExternalScorer:
        return ExternalScorer(self.model, run.ds, self.cfg.batch_size, self.cfg.window, self.cfg.stride)


def check(cfg: AuditConfig) -> None:
    if cfg.model is None or cfg.dataset is None or cfg.out is None:
        raise ConfigError("give MODEL, --dataset DATASET and --out DIR")
    if cfg.batch_size < 1 or cfg.bootstrap < 0 or cfg.max_images < 1:
        raise ConfigError("batch_size and max_images must be >= 1 and bootstrap >= 0")
    if (cfg.window is not None and cfg.window < 1) or (cfg.stride is not None and cfg.stride < 1):
        raise ConfigError("window and stride must be >= 1")
    check_seed(cfg.seed)


def audit(cfg: AuditConfig, force: bool = False) -> AuditResult:
    check(cfg)
    out = Path(cfg.out)
    pcfg = _probe_config(cfg, out)
    if pcfg is not None:
        from spurspec.probes.stage import check as check_probes

        check_probes(pcfg)  # a bad probe setting stops here, before any scoring
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out is a file, not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise ExistsError(f"{out}: already exists; pass --force to replace it")
    from spurspec import runtime

    runtime.configure(cfg.threads)  # torch's threads (occlusion's bookkeeping), as every stage sets them
    model = OnnxModel.open(Path(cfg.model), cfg.card, cfg.card_flags, cfg.threads)
    ds = Dataset.open(Path(cfg.dataset))
    _check_fits(model, ds)
    split = np.asarray(ds.manifest.column("split").to_pylist())
    rows = {s: np.flatnonzero(split == s) for s in ("test", "val")}
    if len(rows["test"]) == 0:
        raise InputError(f"{ds.layout.manifest}: the test split has no images")
    model.check_first(np.asarray(ds.images()[rows["test"][: cfg.batch_size]]))
    with locks.hold(out, "audit"):
        return _build(cfg, model, ds, rows, out)


def _check_fits(model: OnnxModel, ds: Dataset) -> None:
    card = model.card
    if (ds.channels, ds.size) != (card.channels, card.size):
        raise InputError(f"{ds.root}: images are {ds.channels}x{ds.size}x{ds.size} (channels x size x size) but the "
                         f"model's card says {card.channels}x{card.size}x{card.size}; spurspec does not resize for an "
                         "audit: ingest the data at the model's size (--size) or export the model at the data's")


def _build(cfg: AuditConfig, model: OnnxModel, ds: Dataset, rows: dict[str, np.ndarray], out: Path) -> AuditResult:
    """Write the audit into `out` (emptied first under --force; every check has passed by now); a
    failure part-way removes what was written, so no half-written audit is ever left."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    try:
        metrics, notes = _score(cfg, model, ds, rows, out)
        probes = _probe(cfg, model, out, notes)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return AuditResult(out, model, metrics, probes, notes)


def _score(cfg: AuditConfig, model: OnnxModel, ds: Dataset, rows: dict[str, np.ndarray],
           out: Path) -> tuple[pa.Table, list[str]]:
    layout = RunLayout(out)
    scorer = ExternalScorer(model, ds, cfg.batch_size)
    ids = np.asarray(ds.manifest.column("image_id").to_pylist())
    summary = model.card.summary if model.card.pixel else IMAGE_SCORE
    parts = [_table(ids[r], s, summary, scorer.clean_scores(r), model, out) for s, r in rows.items() if len(r)]
    predictions = pa.concat_tables(parts)
    notes = [] if len(rows["val"]) else ["the dataset has no val split: no threshold, no sensitivity/specificity"]
    io.write_text(layout.config, dumps_toml(_identity(cfg, model, ds, out)))
    io.write_table(layout.predictions, predictions, schemas.PREDICTIONS)
    ecfg = EvaluateConfig(predictions=model.path, dataset=ds.root, out=out, bootstrap=cfg.bootstrap, seed=cfg.seed,
                          threshold=cfg.threshold, n_saliency=0)
    metrics = metrics_of(predictions, ds, ecfg, where=str(model.path))
    io.write_table(layout.metrics, metrics, schemas.METRICS)
    settings = {"bootstrap": cfg.bootstrap, "seed": cfg.seed, "threshold": cfg.threshold, "split": "test",
                "card": model.card.record()}
    provenance.write(layout.provenance("evaluate"), "evaluate", settings,
                     {"model": model.digest, "dataset": ds.fingerprint()},
                     completion={"finished": True, "epochs": 0, "planned": 0, "stopped_early": False})
    io.write_text(layout.done, "")  # a finished model, as a run's `done` marker says: reports count it
    return metrics, notes


def _identity(cfg: AuditConfig, model: OnnxModel, ds: Dataset, out: Path) -> dict[str, Any]:
    """config.toml of an audit: the fields every run has, then what was audited."""
    return {"dataset": dataset_link(out, ds.root), "granularity": group(model), "method": METHOD,
            "model": f"onnx:{model.path.name}", "seed": 0, "epochs": 0,
            "audit": {"model_file": str(model.path.resolve()), "model_sha256": model.digest,
                      "card_file": str(Path(cfg.card).resolve()) if cfg.card else "",
                      "dataset_fingerprint": ds.fingerprint(), "batch_size": cfg.batch_size},
            "card": model.card.record()}


def group(model: OnnxModel) -> str:
    """What reports and compare call the audited model: audit:<file stem>, one group per model."""
    return f"{GRANULARITY}:{model.path.stem}"


def _table(ids: np.ndarray, split: str, summary: str, scores: np.ndarray, model: OnnxModel, out: Path) -> pa.Table:
    n = len(ids)
    table = pa.table({"image_id": ids.tolist(), "split": [split] * n, "summary": [summary] * n,
                      "score": pa.array(scores, pa.float64()), "run_id": [out.resolve().name] * n,
                      "granularity": [group(model)] * n, "method": [METHOD] * n,
                      "model": [f"onnx:{model.path.name}"] * n, "seed": pa.array([0] * n, pa.int64()),
                      "checkpoint": ["model"] * n})
    return io.conform(table, schemas.PREDICTIONS)


def _probe_config(cfg: AuditConfig, out: Path, summary: str | None = None):
    """The probe stage's settings for the probes asked; None when none is."""
    if not (cfg.insert or cfg.remove or cfg.attribution):
        return None
    from spurspec.probes.stage import ProbeConfig

    # An image output's predictions hold the image score only, which the probe stage then reads.
    return ProbeConfig(run=out, insert=cfg.insert, remove=cfg.remove, attribution=cfg.attribution,
                       bootstrap=cfg.bootstrap, seed=cfg.seed, max_images=cfg.max_images,
                       **({"summary": summary} if summary else {}))


def _probe(cfg: AuditConfig, model: OnnxModel, out: Path, notes: list[str]) -> dict[str, pa.Table]:
    """The probes asked, run by the probe stage with the outside model as its scorer."""
    pcfg = _probe_config(cfg, out, model.card.summary)
    if pcfg is None:
        return {}
    from spurspec.probes.stage import probe

    res = probe(pcfg, model=AuditModel(model, cfg))
    notes += [f"probe {n}" for n in res.notes]
    return res.tables
