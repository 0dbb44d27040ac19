"""Two trainings started together on one small machine, against the same two run one after the
other, in the same session: `spurspec train` (binary, small, 64 px, 1,200 synthetic images, 3
epochs) through the real CLI in subprocesses. The baseline beside it is torch's default OpenMP
wait policy (threads spin while they wait: OMP_WAIT_POLICY=ACTIVE); spurspec sets PASSIVE.
Target (issue 17): concurrent / sequential <= 1.3. Prints medians; asserts nothing.

    .venv/bin/python tests/benchmarks/bench_concurrent.py [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Run  # noqa: E402

SPURSPEC = [sys.executable, "-m", "spurspec.cli.main"]


def _train(ds: Path, out: Path, env: dict[str, str]) -> subprocess.Popen:
    cmd = [*SPURSPEC, "train", str(ds), "--out", str(out), "--granularity", "binary", "--epochs", "3",
           "--patience", "0", "--augment", "none", "--force"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a training exited {p.returncode}")


def measure(ds: Path, work: Path, policy: str) -> tuple[float, float]:
    """(seconds for two runs in turn, seconds for two runs at once) under a wait policy."""
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    t0 = time.perf_counter()
    for k in (0, 1):
        _wait([_train(ds, work / f"seq{k}", env)])
    sequential = time.perf_counter() - t0
    t0 = time.perf_counter()
    _wait([_train(ds, work / f"con{k}", env) for k in (0, 1)])
    return sequential, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    run = Run("concurrent")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ds = work / "ds"
        subprocess.run([*SPURSPEC, "ingest", "synthetic", "--out", str(ds), "--n", "1200", "--size", "64"],
                       check=True, stdout=subprocess.DEVNULL)
        results: dict[str, list[tuple[float, float]]] = {"ACTIVE": [], "PASSIVE": []}
        for _ in range(args.repeats):
            for policy in results:  # interleaved, so a busy moment hits both
                results[policy].append(measure(ds, work, policy))
    print(f"two `spurspec train` runs (binary, small, 64 px, 1,200 images, 3 epochs), {os.cpu_count()} cores, "
          f"median of {args.repeats}")
    print(f"{'OMP_WAIT_POLICY':<34} {'in turn':>9} {'together':>9} {'ratio':>7}")
    rows = []
    for policy, runs in results.items():
        seq = statistics.median(r[0] for r in runs)
        con = statistics.median(r[1] for r in runs)
        name = "ACTIVE (torch's default; baseline)" if policy == "ACTIVE" else "PASSIVE (spurspec's)"
        print(f"{name:<34} {seq:>8.1f}s {con:>8.1f}s {con / seq:>6.2f}x")
        rows.append({"policy": policy, "sequential_s": seq, "concurrent_s": con, "ratio": con / seq,
                     "runs": [list(r) for r in runs]})
    run.write(args.json, {"repeats": args.repeats, "images": 1200, "size": 64, "epochs": 3}, {"rows": rows})


if __name__ == "__main__":
    main()
