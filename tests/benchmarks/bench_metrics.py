"""Benchmark the metric engine: every metric with patient-bootstrap intervals for 100,000
predictions (90,000 test rows scored + 10,000 val rows choosing the threshold) of 60,000 patients
and 4 spurious attributes, 1,000 replicates, against a pandas + sklearn loop doing the same work
per replicate (stratified patient resample, then roc_auc_score for overall, 4 x robust, 4 x a=0,
4 x a=1, average_precision_score, sensitivity/specificity). The loop is timed on --baseline-reps
replicates and extrapolated linearly to 1,000 (it takes minutes); --full-baseline runs all 1,000.

    .venv/bin/python tests/benchmarks/bench_metrics.py [--repeats 3] [--baseline-reps 20] [--full-baseline]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the dataset helper
from metrics_data import write_dataset  # noqa: E402

from spurspec.artefacts.layout import DatasetLayout  # noqa: E402
from spurspec.metrics.compute import MetricSettings, compute_metrics  # noqa: E402

N, N_VAL, N_PATIENTS, ATTRS, N_BOOT = 100_000, 10_000, 60_000, ("a1", "a2", "a3", "a4"), 1000


def make_data(root: Path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, N)
    attrs = {a: [None if v < 0 else int(v) for v in np.where(rng.random(N) < 0.1, -1, (rng.random(N) < 0.3 + 0.4 * y))]
             for a in ATTRS}
    splits = ["val"] * N_VAL + ["test"] * (N - N_VAL)
    patients = [f"p{i:06d}" for i in rng.integers(0, N_PATIENTS, N)]
    m = write_dataset(root, y.tolist(), attrs, splits, patients=patients, size=4)
    score = np.round(rng.normal(size=N) + y + 0.5 * np.asarray([v or 0 for v in attrs["a1"]]), 3)  # ties
    preds = pa.table({"image_id": m.column("image_id"), "summary": ["mean"] * N,
                      "role": ["val"] * N_VAL + ["eval"] * (N - N_VAL), "score": score})
    return m, preds


def baseline(m: pa.Table, preds: pa.Table, reps: int, threshold: float) -> float:
    """Seconds per replicate of a pandas resample + sklearn metric loop."""
    df = m.to_pandas().merge(preds.to_pandas(), on="image_id")
    df = df[df.role == "eval"]
    stratum = df.groupby("patient_id")["label"].max()
    pos_p, neg_p = stratum[stratum == 1].index.to_numpy(), stratum[stratum == 0].index.to_numpy()
    by_patient = df.set_index("patient_id")
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    for _ in range(reps):
        drawn = np.concatenate([rng.choice(pos_p, len(pos_p)), rng.choice(neg_p, len(neg_p))])
        b = by_patient.loc[drawn].reset_index()
        out = [roc_auc_score(b.label, b.score), average_precision_score(b.label, b.score)]
        for a in ATTRS:
            robust = b[((b.label == 1) & (b[a] == 0)) | ((b.label == 0) & (b[a] == 1))]
            out.append(roc_auc_score(robust.label, robust.score))
            for v in (0, 1):
                sub = b[b[a] == v]
                out.append(roc_auc_score(sub.label, sub.score))
        called = b.score >= threshold
        out += [(called & (b.label == 1)).sum() / (b.label == 1).sum(), (~called & (b.label == 0)).sum() / (b.label == 0).sum()]
    return (time.perf_counter() - start) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-reps", type=int, default=20)
    ap.add_argument("--full-baseline", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        m, preds = make_data(Path(tmp) / "ds")
        manifest = DatasetLayout(Path(tmp) / "ds").manifest
        times, table = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            table = compute_metrics(manifest, preds, list(ATTRS), MetricSettings(n_boot=N_BOOT))
            times.append(time.perf_counter() - t0)
        ours = statistics.median(times)
        threshold = next(r["value"] for r in table.to_pylist() if r["metric"] == "threshold")
        reps = N_BOOT if args.full_baseline else args.baseline_reps
        per_rep = baseline(m, preds, reps, threshold)
        base = per_rep * N_BOOT
    print(f"data: {N:,} predictions ({N - N_VAL:,} test scored, {N_VAL:,} val for the threshold), "
          f"{N_PATIENTS:,} patient ids, {len(ATTRS)} attributes, {N_BOOT} bootstrap replicates, {table.num_rows} metric rows")
    print(f"spurspec (DuckDB SQL point values + vectorised numpy bootstrap): median {ours:.1f} s of {args.repeats} ({', '.join(f'{t:.1f}' for t in times)})")
    how = "all 1,000 replicates run" if args.full_baseline else f"timed on {reps} replicates, extrapolated linearly to {N_BOOT}"
    print(f"pandas + sklearn loop: {per_rep:.2f} s/replicate -> {base:.0f} s for {N_BOOT} ({how})")
    print(f"ratio: {base / ours:.1f}x faster (target >= 20x)")


if __name__ == "__main__":
    main()
