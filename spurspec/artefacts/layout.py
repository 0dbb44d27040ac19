"""Where every artefact lives: the dataset directory (ingest, derive-boxes), the run directory
(train, evaluate), the report directory and a pipeline's study directory. Only this module
spells file names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DONE_MARKER = "done"


@dataclass(frozen=True)
class DatasetLayout:
    """A dataset directory: manifest + preprocessed arrays at one training size + labels."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.parquet"

    @property
    def images(self) -> Path:  # uint8 (N, C, S, S), .npy so it memory-maps
        return self.root / "images.npy"

    @property
    def masks(self) -> Path:  # uint8 (N, S, S) in {0, 1}; all-zero where has_mask is false
        return self.root / "masks.npy"

    @property
    def mask_rle(self) -> Path:  # full-resolution masks as RLE, for boxes in original pixels
        return self.root / "mask_rle.parquet"

    @property
    def boxes(self) -> Path:
        return self.root / "boxes.parquet"

    @property
    def box_masks(self) -> Path:  # uint8 (N, S, S): filled boxes at training size
        return self.root / "box_masks.npy"

    @property
    def spurious_masks(self) -> Path:  # uint8 (N, S, S) {0, 1}: the spurious region, where ingest knows it (synthetic)
        return self.root / "spurious_masks.npy"

    def grid(self, k: int) -> Path:  # uint8 (N, k, k): coarse masks of a k x k grid
        return self.root / "grids" / f"grid{k}.npy"

    @property
    def rejects(self) -> Path:
        return self.root / "rejects.parquet"

    @property
    def info(self) -> Path:  # dataset-level facts: name, size, channels, spurious attributes
        return self.root / "dataset.json"

    def provenance(self, stage: str) -> Path:
        return self.root / "provenance" / f"{stage}.json"


@dataclass(frozen=True)
class EvalLayout:
    """What `evaluate` writes: into a run directory, or for predictions made elsewhere into
    `evaluate --predictions ... --out DIR`."""

    root: Path

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.parquet"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.parquet"

    def provenance(self, stage: str) -> Path:
        return self.root / "provenance" / f"{stage}.json"


@dataclass(frozen=True)
class RunLayout(EvalLayout):
    """A training run directory; evaluate writes its predictions and metrics here too."""

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def train_log(self) -> Path:
        return self.root / "train_log.parquet"

    def checkpoint(self, which: str) -> Path:  # 'last' | 'best'
        return self.root / "checkpoints" / f"{which}.pt"

    @property
    def mask_budget(self) -> Path:  # the image_ids that kept pixel supervision
        return self.root / "mask_budget.parquet"

    @property
    def dfr(self) -> Path:  # `--method dfr`: the validation rows of each half (fit / select)
        return self.root / "dfr.parquet"

    @property
    def prob_maps(self) -> Path:  # a few probability maps / saliency maps for the report
        return self.root / "saliency.npz"

    @property
    def probes(self) -> Path:  # `spurspec probe`: one table per probe
        return self.root / "probes"

    def probe(self, name: str) -> Path:  # e.g. probes/insert-tube-away.parquet
        return self.probes / f"{name}.parquet"

    @property
    def done(self) -> Path:
        return self.root / DONE_MARKER


@dataclass(frozen=True)
class ReportLayout:
    root: Path

    @property
    def markdown(self) -> Path:
        return self.root / "report.md"

    @property
    def html(self) -> Path:
        return self.root / "report.html"

    def figure(self, name: str) -> Path:
        return self.root / "figures" / f"{name}.png"

    @property
    def table(self) -> Path:  # the combined metrics of every run in the report
        return self.root / "results.parquet"

    @property
    def provenance(self) -> Path:
        return self.root / "provenance" / "report.json"


@dataclass(frozen=True)
class TheoryLayout:
    """`spurspec theory --out DIR`: the measures table and their plot."""

    root: Path

    @property
    def table(self) -> Path:
        return self.root / "theory.parquet"

    @property
    def figure(self) -> Path:
        return self.root / "theory.png"

    def provenance(self, stage: str) -> Path:
        return self.root / "provenance" / f"{stage}.json"


@dataclass(frozen=True)
class StudyLayout:
    """A pipeline's output: one directory per job, keyed by the hash of its resolved settings."""

    root: Path

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def job(self, stage: str, key: str) -> Path:
        return self.stage_dir(stage) / key

    def launch_config(self, key: str) -> Path:  # settings handed to `torchrun ... train --config`
        return self.stage_dir("train") / f".{key}.train.toml"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def report_job(self, key: str) -> Path:  # the report job's marker, kept out of the report directory
        return self.root / "report-job" / key

    @property
    def jobs_table(self) -> Path:
        return self.root / "jobs.parquet"

    @property
    def logs(self) -> Path:
        return self.root / "logs"
