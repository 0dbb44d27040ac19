"""The job ETA weighs jobs by cost (eta.py) and says "estimating…" until a job of each training
kind still to run has finished; `Progress` (progress.py) sizes training jobs by their dataset
once it is ingested. A fake clock stands in for time: each job "takes" what the test says."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spurspec.pipeline.eta import Estimate, Estimator, Work
from spurspec.pipeline.plan import Job
from spurspec.pipeline.progress import Progress, dataset_scale


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# A study as the demo runs it: binary runs, then mask (seg) runs at 5x the seconds per epoch, then
# evaluations and the report. (job id, work, true seconds); epochs vary, so units matter.
BINARY, SEG = "train binary small erm", "train pixel small erm"
TRAINING = [
    ("b0", Work("train", BINARY, 2.0), 20.0),
    ("b1", Work("train", BINARY, 4.0), 44.0),
    ("b2", Work("train", BINARY, 4.0), 38.0),
    ("s0", Work("train", SEG, 2.0), 100.0),
    ("s1", Work("train", SEG, 4.0), 210.0),
    ("s2", Work("train", SEG, 4.0), 190.0),
]
STUDY = [
    *TRAINING,
    ("e0", Work("evaluate", "evaluate"), 3.0),
    ("e1", Work("evaluate", "evaluate"), 3.0),
    ("r", Work("report", "report"), 5.0),
]


def _run(study):
    """Run `study` one job after another on a fake clock: after each job, (its id, the estimate,
    the true seconds left, the per-job mean estimate the ETA used to give)."""
    clock = Clock()
    eta = Estimator(clock)
    for job_id, work, _ in study:
        eta.expect(job_id, work)
    seen = []
    for k, (job_id, _, seconds) in enumerate(study):
        clock.now += seconds
        eta.finished(job_id)
        truth = sum(s for _, _, s in study[k + 1:])
        mean = eta.elapsed() / (k + 1) * (len(study) - k - 1)
        seen.append((job_id, eta.left(), truth, mean))
    return seen


def test_estimating_until_each_training_kind_has_finished_a_job_then_within_2x():
    seen = {job_id: (estimate, truth, mean) for job_id, estimate, truth, mean in _run(TRAINING)}
    for job_id in ("b0", "b1", "b2"):  # no seg run has finished: a guess would be 5x off
        estimate, _, _ = seen[job_id]
        assert estimate.seconds is None and estimate.text() == "estimating…"
    for job_id in ("s0", "s1"):
        estimate, truth, _ = seen[job_id]
        assert estimate.seconds is not None and truth / 2 <= estimate.seconds <= 2 * truth, (job_id, estimate, truth)
        assert estimate.text().startswith("about ") and not estimate.untimed
    # the mean over jobs, the old ETA, is more than 2x off where the cheap jobs come first
    _, truth, mean = seen["b2"]
    assert mean < truth / 2


def test_units_scale_the_estimate_within_a_kind():
    """One 2-epoch seg run took 100 s: two 4-epoch runs are 400 s, not 200 s."""
    estimate = next(e for j, e, _, _ in _run(TRAINING) if j == "s0")
    assert estimate.seconds == pytest.approx(400.0)


def test_other_stages_not_yet_timed_are_named_beside_the_figure():
    """Evaluations and the report run after training and take seconds: until one has finished
    they are left out of the figure and said to be, rather than guessed or waited for."""
    seen = {job_id: estimate for job_id, estimate, _, _ in _run(STUDY)}
    assert seen["s0"].untimed == {"evaluate": 2, "report": 1}
    assert seen["s0"].text() == "about 6m40s left, plus 2 evaluate jobs, 1 report job not yet timed"
    assert seen["s2"].seconds == 0.0 and seen["s2"].untimed == {"evaluate": 2, "report": 1}
    assert seen["e0"].untimed == {"report": 1} and seen["e0"].seconds == pytest.approx(3.0)
    assert seen["e1"].text() == "about 0s left, plus 1 report job not yet timed"
    assert Estimate(75.0).text() == "about 1m15s left"


def test_a_training_job_of_unknown_size_keeps_estimating():
    clock = Clock()
    eta = Estimator(clock)
    eta.expect("b0", Work("train", BINARY, 1.0))
    eta.expect("b1", Work("train", BINARY, None))  # its dataset is not ingested yet
    clock.now += 10
    eta.finished("b0")
    assert eta.left().seconds is None
    eta.expect("b1", Work("train", BINARY, 3.0))  # sized once the dataset is there
    assert eta.left().seconds == pytest.approx(30.0)


def _dataset(root: Path, train: int, size: int) -> Path:
    root.mkdir(parents=True)
    pq.write_table(pa.table({"split": ["train"] * train + ["val", "test"]}), root / "manifest.parquet")
    (root / "dataset.json").write_text(json.dumps({"size": size, "channels": 1}))
    return root


def _train_job(tmp_path: Path, name: str, granularity: str, epochs: int) -> tuple[Job, SimpleNamespace]:
    cfg = SimpleNamespace(granularity=granularity, model="small", method="erm", epochs=epochs, train_fraction=None,
                          dataset=tmp_path / "ds")
    return Job("train", name, tmp_path / name, {}, label=name), cfg


def test_progress_sizes_training_jobs_once_their_dataset_is_ingested(tmp_path):
    """Through Progress as `spurspec run` drives it: an ingest, binary then seg runs; the lines
    say "estimating…" until a seg run has finished, then a time within 2x of what is left."""
    clock, said = Clock(), []
    ingest = Job("ingest", "ds", tmp_path / "ds-job", {}, label="ds")
    jobs = [_train_job(tmp_path, f"b{i}", "binary", 2) for i in range(2)] + \
           [_train_job(tmp_path, f"s{i}", "seg", 2) for i in range(3)]
    configs = {ingest.id: SimpleNamespace(), **{job.id: cfg for job, cfg in jobs}}
    progress = Progress([ingest, *(job for job, _ in jobs)], configs, said.append, clock)
    assert dataset_scale(tmp_path / "ds") is None
    seconds = {ingest.id: 5.0, "train/b0": 10.0, "train/b1": 10.0, "train/s0": 50.0, "train/s1": 50.0, "train/s2": 50.0}
    for job in [ingest, *(job for job, _ in jobs)]:
        progress.start(job)
        clock.now += seconds[job.id]
        if job.stage == "ingest":
            _dataset(tmp_path / "ds", train=30, size=32)
        progress.finish(job.id)
    ends = [line for line in said if "jobs done in" in line]
    assert all("estimating…" in line for line in ends[:3]), ends
    assert ends[3] == "[#############.......] 4/6 jobs done in 1m15s, about 1m40s left  (train/s0)"
    assert ends[-1] == "[####################] 6/6 jobs done in 2m55s  (train/s2)"
    assert said[0] == "job 1 of 6: ingest ds"
