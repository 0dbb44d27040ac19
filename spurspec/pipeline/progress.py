"""What `spurspec run` says as its jobs run: "job 3 of 6: train ..." as each starts, and as each
finishes a bar with the time left, which eta.Estimator weighs by each job's cost. Reads the size
of a dataset a training job trains on (its manifest's training rows, its dataset.json image
size) once the dataset is ingested; writes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spurspec.artefacts.layout import DatasetLayout
from spurspec.pipeline.eta import TRAIN, Estimator, Work
from spurspec.pipeline.plan import Job
from spurspec.training.data import granularity
from spurspec.training.progress import duration

BAR = 20  # characters


def train_work(cfg: Any, scale: tuple[int, int] | None) -> Work:
    """A training job's cost: its kind (binary or pixel family, model, method: each trains at its
    own speed) and units of epochs x training images x megapixels an image; no units while its
    dataset's `scale` (training images, image side) is unknown."""
    family = "pixel" if granularity.parse(cfg.granularity).pixel else "binary"
    kind = f"{TRAIN} {family} {cfg.model} {cfg.method}"
    if scale is None:
        return Work(TRAIN, kind, None)
    images, side = scale
    return Work(TRAIN, kind, cfg.epochs * images * (cfg.train_fraction or 1.0) * side * side / 1e6)


def dataset_scale(dataset: Path) -> tuple[int, int] | None:
    """(training images, image side) of an ingested dataset; None while it is not there (or not
    readable: the training job will say why)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    layout = DatasetLayout(Path(dataset))
    try:
        splits = pq.ParquetFile(layout.manifest).read(columns=["split"]).column("split")
        side = int(json.loads(layout.info.read_text(encoding="utf-8"))["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return int(pc.sum(pc.equal(splits, "train")).as_py() or 0), side


class Progress:
    """Announces each job as it starts and, as jobs finish, an overall bar with the time left
    ("estimating…" until a job of each training kind still to run has finished)."""

    def __init__(self, jobs: list[Job], configs: dict[str, Any], say: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.say = len(jobs), say
        self.started = self.done = 0
        self.eta = Estimator(clock)
        self.unsized: dict[Path, list[tuple[str, Any]]] = {}  # dataset -> (job id, config) of its training jobs
        scales: dict[Path, tuple[int, int] | None] = {}  # each dataset read once, however many jobs train on it
        for job in jobs:
            cfg = configs[job.id]
            if job.stage != TRAIN:
                self.eta.expect(job.id, Work(job.stage, job.stage))
                continue
            dataset = Path(cfg.dataset)
            if dataset not in scales:
                scales[dataset] = dataset_scale(dataset)
            if scales[dataset] is None:
                self.unsized.setdefault(dataset, []).append((job.id, cfg))
            self.eta.expect(job.id, train_work(cfg, scales[dataset]))

    def start(self, job: Job) -> None:
        self.started += 1
        self.say(f"job {self.started} of {self.total}: {job.stage} {job.label}")

    def finish(self, job_id: str) -> None:
        self.eta.finished(job_id)
        self.done += 1
        self._size_ingested()
        filled = round(BAR * self.done / max(self.total, 1))
        left = f", {self.eta.left().text()}" if self.done < self.total else ""
        self.say(f"[{'#' * filled}{'.' * (BAR - filled)}] {self.done}/{self.total} jobs done in "
                 f"{duration(self.eta.elapsed())}{left}  ({job_id})")

    def _size_ingested(self) -> None:
        """Size the training jobs of datasets ingested since (their ingest jobs ran first)."""
        for dataset in list(self.unsized):
            scale = dataset_scale(dataset)
            if scale is None:
                continue
            for job_id, cfg in self.unsized.pop(dataset):
                if job_id in self.eta.work:  # not finished yet
                    self.eta.expect(job_id, train_work(cfg, scale))
