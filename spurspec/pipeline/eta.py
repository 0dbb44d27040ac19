"""How long a study's remaining jobs will take, weighted by what each costs. Reads and writes
nothing; the clock is an argument, so a test can drive it.

Each job has a kind and a size in units (`Work`, made in progress.py). A training job's kind is
its granularity's family (binary or pixel), model and method, its units epochs x training images
x image pixels (a seg run costs several times a binary run of the same size, so they are timed
apart); any other job's kind is its stage, one unit each (a per-stage average). A kind's rate is
the seconds its finished jobs took per unit, and the time left is the sum over the jobs still to
run of their units at their kind's rate.

A kind nobody has timed yet: a training kind makes the estimate "estimating…" (training is most
of a study's time, and its kinds differ several-fold: a guess from another kind is the error this
module replaces); a job of any other stage is left out of the figure and named beside it ("plus 3
evaluate jobs not yet timed"). A job's time is the time since the previous job finished (or since
the start): with jobs run one at a time that is its duration, and with N at once (workers, an
array) it is what the job adds to the study's wall time."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from spurspec.text import plural
from spurspec.training.progress import duration

TRAIN = "train"


@dataclass(frozen=True)
class Work:
    """What a job costs: its kind (jobs timed together), and its size in that kind's units; None
    while the size is not known yet (a training job whose dataset is not ingested)."""

    stage: str
    kind: str
    units: float | None = 1.0


@dataclass(frozen=True)
class Estimate:
    seconds: float | None  # None: estimating (a training kind still to run has never finished)
    untimed: dict[str, int] = field(default_factory=dict)  # stage -> its jobs left out (kind never timed)

    def text(self) -> str:
        """"about 4m 10s left", with untimed jobs named after it, or "estimating…"."""
        if self.seconds is None:
            return "estimating…"
        said = f"about {duration(self.seconds)} left"
        if self.untimed:
            said += ", plus " + ", ".join(plural(n, f"{stage} job") for stage, n in self.untimed.items()) + " not yet timed"
        return said


class Estimator:
    """Learns each kind's seconds per unit from finished jobs and estimates the rest. Jobs are
    given by id with `expect` (again, to update a job's work) and leave with `finished`; the
    totals left are kept per kind, so each call costs the number of kinds, not of jobs."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.start = self.last = clock()
        self.work: dict[str, Work] = {}  # jobs not finished
        self.left_units: Counter[str] = Counter()  # kind -> units of its jobs not finished
        self.left_jobs: Counter[str] = Counter()  # kind -> its jobs not finished
        self.unsized: Counter[str] = Counter()  # kind -> its jobs not finished whose units are unknown
        self.stage_of: dict[str, str] = {}
        self.seconds: defaultdict[str, float] = defaultdict(float)  # kind -> seconds of its finished jobs
        self.units: defaultdict[str, float] = defaultdict(float)  # kind -> units of its finished jobs

    def expect(self, job_id: str, work: Work) -> None:
        self._drop(job_id)
        self.work[job_id] = work
        self.stage_of[work.kind] = work.stage
        self.left_jobs[work.kind] += 1
        if work.units is None:
            self.unsized[work.kind] += 1
        else:
            self.left_units[work.kind] += work.units

    def finished(self, job_id: str) -> None:
        now = self.clock()
        work = self._drop(job_id)
        if work is not None:
            self.seconds[work.kind] += now - self.last
            self.units[work.kind] += work.units or 0.0
        self.last = now

    def elapsed(self) -> float:
        return self.clock() - self.start

    def left(self) -> Estimate:
        seconds, untimed = 0.0, Counter[str]()
        for kind, jobs in self.left_jobs.items():
            if not jobs:
                continue
            stage, rate = self.stage_of[kind], self._rate(kind)
            if rate is None or self.unsized[kind]:
                if stage == TRAIN:
                    return Estimate(None)
                untimed[stage] += jobs
                continue
            seconds += rate * self.left_units[kind]
        return Estimate(seconds, dict(untimed))

    def _rate(self, kind: str) -> float | None:
        """Seconds per unit over the kind's finished jobs (a ratio of sums: a long job weighs more)."""
        return self.seconds[kind] / self.units[kind] if self.units[kind] > 0 else None

    def _drop(self, job_id: str) -> Work | None:
        work = self.work.pop(job_id, None)
        if work is not None:
            self.left_jobs[work.kind] -= 1
            if work.units is None:
                self.unsized[work.kind] -= 1
            else:
                self.left_units[work.kind] -= work.units
        return work
