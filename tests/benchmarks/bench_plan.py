"""How long `spurspec run PIPELINE --dry-run` takes to plan and check a large study: a synthetic
study of 5 granularities x N seeds (10,003 jobs by default: ingest, boxes, 5,000 training runs,
5,000 evaluations, the report), beside the same study at 103 jobs, so time per job shows whether
planning grows linearly. Two measures, medians of --repeats:
  planning  in this process, imports already paid: what --dry-run does before it prints (load the
            file, expand the jobs, check every job's config, read each job's status);
  command   the whole command in a fresh process, as a user runs it: Python's start, the
            imports (torch among them), planning and printing the job table.
Runs nothing and writes only a temporary pipeline file (its study directory is never created).
Usage:
    .venv/bin/python tests/benchmarks/bench_plan.py [--jobs 10000] [--small 100] [--repeats 5] [--json PATH]"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Run  # noqa: E402

GRANULARITIES = ("binary", "bbox", "seg", "grid:4", "grid:8")
# Besides 2 jobs per granularity and seed (train, evaluate): ingest, boxes, report.
FIXED_JOBS = 3


def _pipeline(folder: Path, jobs: int) -> Path:
    seeds = max(1, round((jobs - FIXED_JOBS) / (2 * len(GRANULARITIES))))
    path = folder / f"plan-{jobs}.toml"
    path.write_text(f"""[study]
name = "bench-plan"
out = "{folder / 'never-written'}"

[datasets.syn]
source = "synthetic"
n = 200
size = 64

[train]
granularities = [{", ".join(f'"{g}"' for g in GRANULARITIES)}]
seeds = {list(range(seeds))}
epochs = 1

[evaluate]
bootstrap = 100
""")
    return path


def _planning(path: Path) -> tuple[int, float]:
    from spurspec.pipeline import RunOptions, run_pipeline

    t0 = time.perf_counter()
    result = run_pipeline(RunOptions(pipeline=path, dry_run=True))
    return len(result.jobs), time.perf_counter() - t0


def _command(path: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "spurspec.cli.main", "run", str(path), "--dry-run"],
                   stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10_000, help="the large study's size (about)")
    ap.add_argument("--small", type=int, default=100, help="the baseline study's size (about)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    run = Run("plan")
    with tempfile.TemporaryDirectory() as tmp:
        files = {size: _pipeline(Path(tmp), size) for size in (args.small, args.jobs)}
        _, first = _planning(files[args.small])  # pays the imports once (torch among them)
        counts: dict[int, int] = {}
        planning: dict[int, list[float]] = {size: [] for size in files}
        command: dict[int, list[float]] = {size: [] for size in files}
        for _ in range(args.repeats):
            for size, path in files.items():  # interleaved, so drift hits both alike
                counts[size], seconds = _planning(path)
                planning[size].append(seconds)
                command[size].append(_command(path))
        if (Path(tmp) / "never-written").exists():
            raise SystemExit("a dry run wrote the study directory")
    print(f"spurspec run --dry-run, 5 granularities x seeds; median of {args.repeats}; first planning call "
          f"(imports) {first:.2f} s")
    rows = []
    for size in files:
        plan_s, cmd_s = statistics.median(planning[size]), statistics.median(command[size])
        rows.append({"jobs": counts[size], "planning_s": plan_s, "ms_per_job": 1000 * plan_s / counts[size],
                     "command_s": cmd_s, "planning_runs": planning[size], "command_runs": command[size]})
        print(f"{counts[size]:>6} jobs: planning {plan_s:6.2f} s ({1000 * plan_s / counts[size]:.3f} ms a job)   "
              f"whole command {cmd_s:6.2f} s")
    small, large = rows
    print(f"time per job, {large['jobs']} vs {small['jobs']} jobs: {large['ms_per_job'] / small['ms_per_job']:.2f}x "
          "(1.0 = linear)")
    print(f"docs: planning {large['jobs']:,} jobs takes {large['planning_s']:.1f} s; the whole --dry-run command "
          f"{large['command_s']:.1f} s, of which {small['command_s']:.1f} s is what a {small['jobs']}-job study costs")
    run.write(args.json, {"jobs": args.jobs, "small": args.small, "repeats": args.repeats,
                          "granularities": list(GRANULARITIES)}, {"rows": rows, "first_planning_s": first})


if __name__ == "__main__":
    main()
