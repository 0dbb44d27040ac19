"""`spurspec probe RUN`: the reliance probes of one evaluated run, on its test split.
  insert       paint a feature into test images that lack it (features.py) and score them again;
  remove       fill the spurious region from its surroundings where the dataset records it
               (inpaint.py; synthetic data) and score again;
  attribution  the share of each evidence map's mass per region and the pointing game.
Insertion uses only images whose spurious attribute says they lack the feature: an image that
already has it (or whose attribute is unknown) is never painted, and is counted in the table
(`skipped_has_feature`, `skipped_unknown`). Every draw is seeded by (seed, probe, image row), so
a probe is reproducible whatever the order or batch size.
Reads RUN/config.toml, the checkpoint evaluate scored (predictions.parquet says which), the
validation threshold in metrics.parquet, and the dataset (images, masks, dataset.json, and
spurious_masks.npy where stored). Writes RUN/probes/<probe>.parquet (schemas.PROBE) and
RUN/provenance/probe-<probe>.json; a probe whose settings and inputs are unchanged is not redone.
`spurspec audit` runs this same stage on an outside model (`model`, the Model protocol below): its
file stands where a run's checkpoint stands, and its scorer where the run's network does."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from spurspec.artefacts import freshness, io, locks, provenance, schemas
from spurspec.artefacts.dataset import Dataset, check_npy
from spurspec.artefacts.run import RunRecord
from spurspec.config import check_seed
from spurspec.errors import ArtefactError, ConfigError
from spurspec.evaluation.paired import headline_summary
from spurspec.probes import attribution, features, inpaint, stats
from spurspec.training.models import summaries


@dataclass(frozen=True)
class ProbeConfig:
    run: Path | None = None  # an evaluated training run
    dataset: Path | None = None  # the run's dataset at its new place when it moved (checked by content)
    insert: tuple[str, ...] = ()  # features to paint in: tube, vignette, ink, or an RGBA FILE.png
    # Where: away keeps the feature clear of the abnormality, so a model that reads the
    # abnormality is not moved by covering it; random and fixed are the other rules.
    placement: str = "away"
    remove: bool = False  # fill the spurious region where the dataset records it (synthetic)
    attribution: bool = False  # evidence mass per region and the pointing game
    # The attribute saying which test images already have the feature. Unset: tube -> the
    # synthetic dataset's attribute, else chest_tube; vignette -> dark_corner; ink -> ink.
    # "none": paint every test image.
    attribute: str | None = None
    overlay_scale: float = 0.5  # an overlay's longer side as a share of the image side
    # Pixels kept clear around the abnormality (away), and grown around the spurious mask before
    # filling (remove: the synthetic stroke's soft edge reaches about 2 pixels out).
    margin: int = 2
    summary: str = summaries.DEFAULT  # pixel models' summarising function (binary: the image score)
    bootstrap: int = 1000  # patient-bootstrap replicates per interval
    seed: int = 0  # seeds every placement, fill and bootstrap
    confidence: float = 0.95
    ig_steps: int = 32  # integrated-gradients steps (Riemann sums along the path)
    max_images: int = 200  # attribution: at most this many images per image set (a seeded draw)
    device: str | None = None  # inference device; unset = evaluate's choice
    threads: int | None = None  # compute threads; unset = spurspec.runtime's choice


# "attribute = none": the dataset cannot tell, paint every test image.
NO_ATTRIBUTE = "none"
# The attribute whose value 1 means an image already has the feature, by feature (tube: _attribute).
FEATURE_ATTRIBUTES = {"vignette": "dark_corner", "ink": "ink"}
# Insertion and removal paint and score this many images at a time (memory stays bounded).
CHUNK = 256
WHAT = "the probe table {}"  # what freshness messages call one probe's output, by its name


@dataclass
class ProbeResult:
    run: Path
    tables: dict[str, pa.Table] = field(default_factory=dict)  # probe name -> its table
    up_to_date: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    """One probe asked for: its name (the table's file name), kind, and recorded settings."""

    name: str
    kind: str  # insert | remove | attribution
    feature: str | None
    settings: dict[str, Any]


def check(cfg: ProbeConfig) -> list[Request]:
    """Every setting, before anything is read (the CLI and pipelines alike); the probes asked."""
    if cfg.run is None:
        raise ConfigError("name an evaluated RUN directory")
    if cfg.placement not in features.PLACEMENTS:
        raise ConfigError(f"placement {cfg.placement!r}: use one of {', '.join(features.PLACEMENTS)}")
    if cfg.bootstrap < 0 or not 0 < cfg.confidence < 1:
        raise ConfigError("bootstrap must be >= 0 and confidence in (0, 1)")
    check_seed(cfg.seed)
    summaries.get(cfg.summary)
    if cfg.ig_steps < 1 or cfg.max_images < 1 or cfg.margin < 0:
        raise ConfigError("ig_steps and max_images must be >= 1 and margin >= 0")
    if not 0 < cfg.overlay_scale <= 1:
        raise ConfigError(f"overlay_scale={cfg.overlay_scale}: must be in (0, 1]")
    for text in cfg.insert:
        _, path = features.parse(text)
        if path is not None and not path.is_file():
            raise ConfigError(f"{path}: overlay file not found")
    if len(set(cfg.insert)) != len(cfg.insert):
        raise ConfigError(f"insert lists a feature twice: {', '.join(cfg.insert)}")
    asked = requests(cfg)
    if not asked:
        raise ConfigError("name a probe: --insert FEATURE (tube, vignette, ink or FILE.png), --remove or --attribution")
    return asked


def requests(cfg: ProbeConfig) -> list[Request]:
    """The probes `cfg` asks for, each with the settings that change its numbers (so asking for
    another probe, or changing another probe's settings, leaves its table up to date)."""
    common = {"bootstrap": cfg.bootstrap, "seed": cfg.seed, "confidence": cfg.confidence, "summary": cfg.summary}
    out = []
    for text in cfg.insert:
        extra = {"insert": text, "placement": cfg.placement, "attribute": cfg.attribute, "margin": cfg.margin}
        if features.parse(text)[1] is not None:
            extra["overlay_scale"] = cfg.overlay_scale
        out.append(Request(features.probe_name(text, cfg.placement), "insert", text, {**common, **extra}))
    if cfg.remove:
        out.append(Request("remove", "remove", None, {**common, "margin": cfg.margin}))
    if cfg.attribution:
        out.append(Request("attribution", "attribution", None,
                           {**common, "ig_steps": cfg.ig_steps, "max_images": cfg.max_images}))
    return out


@dataclass
class RunInputs:
    """What every probe of one run reads, opened once."""

    record: RunRecord
    ds: Dataset
    checkpoint: str
    summary: str
    threshold: float | None
    threshold_reason: str
    inputs: dict[str, str]  # provenance fingerprints shared by every probe
    test: np.ndarray  # test rows of the dataset
    checkpoint_file: Path | None = None  # the file scored: a run's checkpoint, or an audit's model file

    @property
    def region(self) -> dict[str, Any] | None:
        """dataset.json's record of the stored spurious masks (synthetic data), or None."""
        region = self.ds.info.get("spurious_region")
        return region if isinstance(region, dict) else None

    def column(self, name: str, rows: np.ndarray, missing: int = -1) -> np.ndarray:
        col = self.ds.manifest.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_boolean(col.type):
            col = col.cast(pa.int64()).fill_null(missing)
        return np.asarray(col.to_numpy(zero_copy_only=False))[rows]

    def spurious_masks(self) -> np.ndarray:
        """The stored spurious masks (N, S, S), checked whole; an error says why there are none."""
        region = self.region
        if region is None:
            if self.ds.info.get("name") == "synthetic":
                raise ArtefactError(f"{self.ds.root}: made before spurious masks were stored; re-run the same "
                                    "`spurspec ingest synthetic` command to add them (nothing a run trained on changes)")
            raise ConfigError(f"{self.ds.root}: the dataset does not record where its spurious feature is (only "
                              "`spurspec ingest synthetic` stores it), so it cannot be removed")
        path = self.ds.layout.spurious_masks
        check_npy(path, "spurious masks", (self.ds.manifest.num_rows, self.ds.size, self.ds.size))
        return np.load(path, mmap_mode="r")


def open_run(record: RunRecord, cfg: ProbeConfig, model: Model | None = None) -> RunInputs:
    """The run's dataset, checkpoint, summarising function and validation threshold (evaluate's);
    with `model` (an outside model's audit), its file stands where a run's checkpoint stands."""
    if model is None:
        record.refuse_audit("probe")
    metrics = record.metrics  # exit 3 naming `spurspec evaluate` if the run was not evaluated
    ds = record.open_dataset(moved_to=cfg.dataset)
    if cfg.dataset is not None:
        record.relink(ds.root)
    summary = headline_summary(record, cfg.summary)
    scored = set(record.predictions(["checkpoint"]).column("checkpoint").drop_null().to_pylist())
    if len(scored) > 1:
        raise ArtefactError(f"{record.layout.predictions}: scored with several checkpoints; re-run `spurspec evaluate --force`")
    checkpoint = scored.pop() if scored else "best"
    checkpoint_file = model.path if model is not None else record.checkpoint(checkpoint)
    row = next((r for r in metrics.to_pylist() if r["metric"] == "threshold" and r["summary"] == summary), None)
    threshold = None if row is None else row["value"]
    reason = (row or {}).get("reason") or "evaluate chose no validation threshold"
    inputs = {"checkpoint": provenance.file_digest(checkpoint_file), "dataset": ds.fingerprint(),
              "metrics": provenance.file_digest(record.layout.metrics)}
    split = np.asarray(ds.manifest.column("split").to_pylist())
    test = np.flatnonzero(split == "test")
    if len(test) == 0:
        raise ArtefactError(f"{ds.layout.manifest}: the test split has no images")
    return RunInputs(record, ds, checkpoint, summary, threshold, f"no flip rates: {reason}", inputs, test,
                     checkpoint_file)


class Model(Protocol):
    """A model from outside spurspec's runs (spurspec.audit): the file that is its identity, and
    the scorer a probe calls (score_images, clean_scores, map_kinds, maps; see scoring.Scorer)."""

    path: Path

    def scorer(self, run: RunInputs, cfg: ProbeConfig) -> Any: ...


def probe(cfg: ProbeConfig, force: bool = False, model: Model | None = None) -> ProbeResult:
    """The probes `cfg` asks for on an evaluated run, or, with `model`, on an audit's directory."""
    asked = check(cfg)
    record = RunRecord.open(Path(cfg.run))
    # The run directory's lock, the one train and evaluate take: never probe a run being rewritten.
    with locks.hold(record.root, "probe"):
        return _probe_locked(cfg, record, asked, force, model)


def _probe_locked(cfg: ProbeConfig, record: RunRecord, asked: list[Request], force: bool,
                  model: Model | None) -> ProbeResult:
    run = open_run(record, cfg, model)
    layout = record.layout
    result = ProbeResult(record.root)
    scorer = None
    for req in asked:
        inputs = {**run.inputs, **_own_inputs(req, run)}
        path, prov = layout.probe(req.name), layout.provenance(f"probe-{req.name}")
        if _fresh(req, run, inputs, force):
            result.up_to_date.append(req.name)
            result.tables[req.name] = schemas.check(io.read_table(path, "probe table"), schemas.PROBE, path)
            continue
        if scorer is None:
            scorer = model.scorer(run, cfg) if model is not None else _scorer(run, cfg)
        prov.unlink(missing_ok=True)  # killed half-way, the table is redone, never trusted
        rows, notes = KINDS[req.kind](cfg, req, run, scorer)
        table = _table(rows, req, run, cfg)
        io.write_table(path, table, schemas.PROBE)
        provenance.write(prov, "probe", req.settings, inputs)
        result.tables[req.name] = table
        result.notes += [f"{req.name}: {n}" for n in notes]
    return result


def _scorer(run: RunInputs, cfg: ProbeConfig):
    from spurspec import runtime
    from spurspec.probes.scoring import Scorer  # torch loads only when something is computed

    runtime.configure(cfg.threads)
    return Scorer.load(run.record.root, run.checkpoint, run.summary, cfg.device)


def _own_files(req: Request, run: RunInputs) -> dict[str, Path]:
    """The files only this probe reads, by input name: an overlay, the spurious masks."""
    out = {}
    path = features.parse(req.feature)[1] if req.feature else None
    if path is not None:
        out["overlay"] = path
    masks = run.ds.layout.spurious_masks
    if req.kind in ("remove", "attribution") and run.region is not None and masks.exists():
        out["spurious_masks"] = masks
    return out


def _own_inputs(req: Request, run: RunInputs) -> dict[str, str]:
    """Fingerprints of the files only this probe reads."""
    return {name: provenance.file_digest(path) for name, path in _own_files(req, run).items()}


def _fresh(req: Request, run: RunInputs, inputs: dict[str, str], force: bool) -> bool:
    """True if the probe's table on disk is for exactly these settings and inputs; another
    finished one needs `force` (exit 4 saying what differs); a half-finished one is simply redone."""
    layout = run.record.layout
    if force or not layout.probe(req.name).exists():
        return False
    state = freshness.check(layout.provenance(f"probe-{req.name}"), req.settings, inputs, where=run.record.root,
                            what=WHAT.format(req.name), paths=_input_paths(req, run))
    if state.stale:
        raise state.error()
    return state.fresh


def _input_paths(req: Request, run: RunInputs) -> dict[str, Path]:
    """The file behind each input fingerprint, for a message naming what changed."""
    layout = run.record.layout
    return {"checkpoint": run.checkpoint_file or layout.checkpoint(run.checkpoint), "dataset": run.ds.layout.manifest,
            "metrics": layout.metrics, "spurious_masks": run.ds.layout.spurious_masks, **_own_files(req, run)}


def _stream(cfg: ProbeConfig, req: Request, *parts: int) -> np.random.Generator:
    """The generator of one draw: keyed by the seed, the probe and the image row (or a part)."""
    return np.random.default_rng([cfg.seed, zlib.crc32(req.name.encode()), *parts])


def _seed_sequence(cfg: ProbeConfig, req: Request, *names: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([cfg.seed, zlib.crc32(req.name.encode()), *(zlib.crc32(n.encode()) for n in names)])


def _attribute(feature: str, wanted: str | None, run: RunInputs) -> str | None:
    """The manifest attribute saying which images already have `feature`; None: paint them all."""
    if wanted == NO_ATTRIBUTE:
        return None
    have = run.ds.spurious
    default = FEATURE_ATTRIBUTES.get(feature)
    if feature == "tube":
        default = run.region["attribute"] if run.region else "chest_tube"
    name = wanted or default
    if name is None or name not in have:
        what = f"no attribute {name!r}" if name else "no attribute named for an overlay"
        raise ConfigError(f"{run.ds.root}: {what} says which test images already have the {feature}; name one with "
                          f"--attribute (have: {', '.join(have) or 'none'}), or --attribute none to paint every test image")
    return name


def _context(feature: str, path: Path | None, run: RunInputs, cfg: ProbeConfig) -> features.Context:
    region = run.region
    synthetic = region if region and region.get("renderer") == "synthetic-tube" else None
    if feature == "tube" and synthetic is None and run.ds.info.get("name") == "synthetic":
        raise ArtefactError(f"{run.ds.root}: made before the synthetic stroke's settings were recorded; re-run the "
                            "same `spurspec ingest synthetic` command to add them (nothing a run trained on changes)")
    overlay = features.read_overlay(path, run.ds.size, cfg.overlay_scale) if path is not None else None
    return features.Context(run.ds.size, run.ds.channels, synthetic, overlay)


def _insertion(cfg: ProbeConfig, req: Request, run: RunInputs, scorer) -> tuple[list[dict], list[str]]:
    """Paint the feature into the test images that lack it; score them before and after."""
    name, path = features.parse(req.feature)
    attribute = _attribute(name, cfg.attribute, run)
    ctx = _context(name, path, run, cfg)
    has = run.column(attribute, run.test) if attribute else np.zeros(len(run.test), np.int64)
    label, has_mask = run.column("label", run.test), run.column("has_mask", run.test)
    # `away` needs the abnormality's mask: a positive without one cannot be kept clear of it.
    no_mask = (label == 1) & (has_mask == 0) if cfg.placement == "away" else np.zeros(len(run.test), bool)
    candidates = run.test[(has == 0) & ~no_mask]
    images, masks = run.ds.images(), run.ds.masks()

    def paint(row: int) -> np.ndarray | None:
        done = features.insert(np.asarray(images[row]), np.asarray(masks[row]).astype(bool), features.FEATURES.get(name),
                               ctx, cfg.placement, _stream(cfg, req, 1, row), lambda: _stream(cfg, req, 0), cfg.margin)
        return None if done is None else done[0]

    rows, notes = _paired(cfg, req, run, scorer, candidates, paint)
    counts = {"skipped_has_feature": int((has == 1).sum()), "skipped_unknown": int((has == -1).sum()),
              "skipped_no_mask": int(((has == 0) & no_mask).sum())}
    rows += _count_rows(counts)
    if counts["skipped_has_feature"]:
        notes.append(f"{counts['skipped_has_feature']} test image(s) already have the feature ({attribute} = 1): not painted")
    return rows, notes


def _removal(cfg: ProbeConfig, req: Request, run: RunInputs, scorer) -> tuple[list[dict], list[str]]:
    """Fill the spurious region of the test images that have it; score them before and after."""
    smasks = run.spurious_masks()
    images = run.ds.images()
    candidates = np.asarray([r for r in run.test if np.asarray(smasks[r]).any()], dtype=np.int64)

    def fill(row: int) -> np.ndarray:
        return inpaint.remove(np.asarray(images[row]), np.asarray(smasks[row]), _stream(cfg, req, 1, row), cfg.margin)[0]

    return _paired(cfg, req, run, scorer, candidates, fill)


def _paired(cfg: ProbeConfig, req: Request, run: RunInputs, scorer, candidates: np.ndarray,
            change: Callable[[int], np.ndarray | None]) -> tuple[list[dict], list[str]]:
    """Change each candidate image (None: no room, left out and counted), score the changed
    images in chunks and the originals, and the paired statistics of the two."""
    kept, after = [], []
    for start in range(0, len(candidates), CHUNK):
        changed = []
        for row in candidates[start:start + CHUNK].tolist():
            image = change(row)
            if image is not None:
                changed.append(image)
                kept.append(row)
        if changed:
            after.append(scorer.score_images(np.stack(changed)))
    kept_rows = np.asarray(kept, dtype=np.int64)
    before = scorer.clean_scores(kept_rows)
    paired = stats.Paired.from_ids(before, np.concatenate(after) if after else np.zeros(0),
                                   run.column("label", kept_rows), run.column("patient_id", kept_rows))
    rows = stats.shift_rows(paired, run.threshold, cfg.bootstrap, _seed_sequence(cfg, req, "shift"), cfg.confidence,
                            run.threshold_reason)
    no_room = len(candidates) - len(kept)
    rows += _count_rows({"skipped_no_room": no_room})
    notes = [f"{no_room} image(s) had no room for the feature away from the abnormality: left out"] if no_room else []
    if len(kept) == 0:
        notes.append("no test image to probe")
    return rows, notes


def _count_rows(counts: dict[str, int]) -> list[dict]:
    return [{"images": "all", "metric": k, "value": float(v), "n_images": v} for k, v in counts.items()]


def _attribution(cfg: ProbeConfig, req: Request, run: RunInputs, scorer) -> tuple[list[dict], list[str]]:
    """Evidence mass and pointing on the test positives with an abnormality mask, and on the test
    images with a spurious region where it is known, each map the model has."""
    masks = run.ds.masks()
    smasks = run.spurious_masks() if run.region is not None else None
    label = run.column("label", run.test)
    sets = {"abnormality": run.test[(label == 1) & np.asarray([np.asarray(masks[r]).any() for r in run.test], bool)]}
    if smasks is not None:
        sets["spurious"] = run.test[np.asarray([np.asarray(smasks[r]).any() for r in run.test], bool)]
    rng = _stream(cfg, req, 2)
    sets = {k: np.sort(rng.choice(v, cfg.max_images, replace=False)) if len(v) > cfg.max_images else v
            for k, v in sets.items()}
    union = np.unique(np.concatenate(list(sets.values())))
    images = np.stack([np.asarray(run.ds.images()[r]) for r in union]) if len(union) else None
    rows: list[dict] = []
    for kind in scorer.map_kinds:
        maps = scorer.maps(kind, images, cfg.ig_steps) if images is not None else None
        for set_name, members in sets.items():
            at = np.searchsorted(union, members)
            regions = [np.stack([m[r] for r in members]) if len(members) else np.zeros((0, run.ds.size, run.ds.size), bool)
                       for m in (masks, smasks) if m is not None]
            empty = np.zeros((0, run.ds.size, run.ds.size))
            per = attribution.per_image(maps[at] if maps is not None else empty, regions[0],
                                        regions[1] if len(regions) > 1 else None)
            rows += _attribution_rows(cfg, req, run, kind, set_name, members, per)
    notes = [] if smasks is not None else ["the spurious region is not recorded for this dataset: no spurious shares"]
    return rows, notes


def _attribution_rows(cfg: ProbeConfig, req: Request, run: RunInputs, kind: str, set_name: str,
                      members: np.ndarray, per: dict[str, np.ndarray]) -> list[dict]:
    """One row per measure: masses on every set, area and pointing only on their own region's set."""
    label, patient = run.column("label", members), run.column("patient_id", members)
    rows = []
    for measure, values in per.items():
        if measure.split("_")[0] in ("area", "pointing") and not measure.endswith(set_name):
            continue
        row = stats.mean_row(values, label, patient, cfg.bootstrap, _seed_sequence(cfg, req, kind, set_name, measure),
                             cfg.confidence)
        rows.append({"images": set_name, "map": kind, "metric": measure, **row})
    return rows


KINDS: dict[str, Callable[..., tuple[list[dict], list[str]]]] = {
    "insert": _insertion, "remove": _removal, "attribution": _attribution}


def _table(rows: list[dict], req: Request, run: RunInputs, cfg: ProbeConfig) -> pa.Table:
    """The PROBE table of one probe: its rows with the probe's and the run's identity."""
    n = len(rows)
    name, path = features.parse(req.feature) if req.feature else (None, None)
    feature = f"overlay:{path.name}" if path is not None else name
    rec = run.record
    columns = {
        "probe": [req.name] * n, "kind": [req.kind] * n, "feature": [feature] * n,
        "placement": [cfg.placement if req.kind == "insert" else None] * n,
        "images": [r["images"] for r in rows], "map": [r.get("map") for r in rows],
        "metric": [r["metric"] for r in rows], "summary": [run.summary] * n,
        **{k: [r.get(k) for r in rows] for k in ("value", "ci_low", "ci_high", "n_images", "reason")},
        "run_id": [rec.root.resolve().name] * n, "granularity": [rec.granularity] * n, "method": [rec.method] * n,
        "model": [rec.model] * n, "seed": [rec.seed] * n, "checkpoint": [run.checkpoint] * n, "probe_seed": [cfg.seed] * n,
    }
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schemas.PROBE}, schema=schemas.PROBE)


def probe_files(record: RunRecord) -> list[Path]:
    """The run's probe tables (RUN/probes/*.parquet), by name; [] when it was never probed."""
    folder = record.layout.probes
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith(".")) if folder.is_dir() else []


def read_tables(record: RunRecord) -> dict[str, list[dict[str, Any]]]:
    """probe name -> its table's rows, for the report; a damaged or foreign table is exit 3."""
    return {p.stem: schemas.check(io.read_table(p, "probe table"), schemas.PROBE, p).to_pylist()
            for p in probe_files(record)}
