"""Benchmark the metric engine (`compute_metrics`: every metric, with 1,000 patient-bootstrap
replicates) as the number of predictions grows, and against a pandas + sklearn loop.

1. Time and peak memory against predictions (--sizes, default 10k, 100k, 1M; a tenth of each are
   val rows choosing the threshold, the rest test rows scored; 0.6 patient ids per image, 4
   spurious attributes). Each size runs in a fresh child process, so its peak resident memory
   (Linux: VmHWM, reset after the data is loaded) is the evaluation's own. Time must grow no worse
   than linearly: the script prints time(n) / time(previous n) beside n / previous n.
2. At 100,000 predictions, a pandas + sklearn loop doing the same work per replicate (stratified
   patient resample, then roc_auc_score for overall, 4 x robust, 4 x a=0, 4 x a=1,
   average_precision_score, sensitivity/specificity), timed on --baseline-reps replicates and
   extrapolated linearly to 1,000 (it takes minutes); --full-baseline runs all 1,000.

    .venv/bin/python tests/benchmarks/bench_metrics.py [--sizes 10000,100000,1000000] [--repeats 3]
        [--big-repeats 1] [--baseline-reps 20] [--full-baseline] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Run  # noqa: E402

from spurspec.artefacts import io, schemas  # noqa: E402
from spurspec.metrics.compute import MetricSettings, compute_metrics  # noqa: E402

ATTRS, N_BOOT, BASELINE_N = ("a1", "a2", "a3", "a4"), 1000, 100_000
VAL_SHARE, PATIENTS_PER_IMAGE = 0.1, 0.6


def make_data(root: Path, n: int) -> tuple[Path, pa.Table, pa.Table]:
    """A manifest (written as the dataset's manifest.parquet; the metrics read nothing else) and
    predictions whose scores lean on the label and on attribute a1, with ties (3 decimals)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    attrs = {}
    for a in ATTRS:  # a tenth unknown (null)
        unknown, value = rng.random(n) < 0.1, rng.random(n) < 0.3 + 0.4 * y
        attrs[a] = pa.array(value.astype(np.int8), pa.int8(), mask=unknown)
    n_val = int(n * VAL_SHARE)
    ids = pa.array([f"img{i:07d}" for i in range(n)])
    manifest = pa.table({
        "row": pa.array(np.arange(n, dtype=np.int32)), "image_id": ids,
        "patient_id": pa.array([f"p{i:07d}" for i in rng.integers(0, int(n * PATIENTS_PER_IMAGE), n)]),
        "split": pa.array(["val"] * n_val + ["test"] * (n - n_val)), "label": pa.array(y, pa.int8()),
        "has_mask": pa.array(np.zeros(n, dtype=bool)), "source": pa.array(["bench"] * n),
        "orig_height": pa.array(np.full(n, 8, np.int32)), "orig_width": pa.array(np.full(n, 8, np.int32)), **attrs,
    })
    path = root / "manifest.parquet"
    io.write_table(path, manifest, schemas.manifest_schema(list(ATTRS)))
    a1 = np.nan_to_num(attrs["a1"].to_numpy(zero_copy_only=False).astype(float))
    score = np.round(rng.normal(size=n) + y + 0.5 * a1, 3)
    preds = pa.table({"image_id": ids, "summary": ["mean"] * n,
                      "role": ["val"] * n_val + ["eval"] * (n - n_val), "score": score})
    return path, manifest, preds


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


def _status_mib(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_mib("VmHWM") is not None


def child(n: int, repeats: int, baseline_reps: int) -> dict:
    """In a fresh process: time `repeats` evaluations of n predictions and their peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        manifest_path, manifest, preds = make_data(Path(tmp), n)
        compute_metrics(manifest_path, preds[:2000], list(ATTRS), MetricSettings(n_boot=2))  # warm imports
        loaded = _status_mib("VmRSS")
        exact = _reset_peak()
        times, table = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            table = compute_metrics(manifest_path, preds, list(ATTRS), MetricSettings(n_boot=N_BOOT))
            times.append(time.perf_counter() - t0)
        peak = _status_mib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out = {"predictions": n, "seconds": times, "median_s": statistics.median(times), "rss_loaded_mib": loaded,
               "peak_rss_mib": peak, "peak_is_evaluation_only": exact, "metric_rows": table.num_rows}
        if baseline_reps:
            threshold = next(r["value"] for r in table.to_pylist() if r["metric"] == "threshold")
            out["baseline_s_per_replicate"] = baseline(manifest, preds, baseline_reps, threshold)
            out["baseline_replicates_run"] = baseline_reps
    return out


def run_child(n: int, repeats: int, baseline_reps: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), "--repeats", str(repeats), "--baseline-reps", str(baseline_reps)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"the child for {n:,} predictions failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def report(sizes: list[dict], base: dict | None) -> None:
    print(f"compute_metrics: {len(ATTRS)} attributes, {N_BOOT} patient-bootstrap replicates; a child process per size")
    print(f"| {'predictions':>11} | {'median s':>8} | {'x time':>6} | {'x n':>5} | {'peak RSS MiB':>12} | runs")
    prev = None
    for s in sizes:
        grow = f"{s['median_s'] / prev['median_s']:6.2f} | {s['predictions'] / prev['predictions']:5.0f}" if prev else f"{'':>6} | {'':>5}"
        print(f"| {s['predictions']:>11,} | {s['median_s']:8.2f} | {grow} | {s['peak_rss_mib']:12.0f} | "
              f"{', '.join(f'{t:.1f}' for t in s['seconds'])}")
        prev = s
    if base is not None:
        how = "all 1,000 replicates run" if base["replicates_run"] == N_BOOT else f"timed on {base['replicates_run']} replicates, extrapolated to {N_BOOT}"
        print(f"pandas + sklearn loop at {BASELINE_N:,}: {base['seconds']:.0f} s ({how}); spurspec {base['spurspec_s']:.1f} s: "
              f"{base['ratio']:.1f}x faster (target >= 20x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated prediction counts")
    ap.add_argument("--repeats", type=int, default=3, help="timed evaluations per size up to 100,000")
    ap.add_argument("--big-repeats", type=int, default=1, help="timed evaluations per size above 100,000")
    ap.add_argument("--baseline-reps", type=int, default=20, help="replicates of the pandas loop (0: skip it)")
    ap.add_argument("--full-baseline", action="store_true")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeats, args.baseline_reps)))
        return
    run = Run("metrics")
    sizes, base = [], None
    for n in sorted(int(x) for x in args.sizes.split(",") if x):
        reps = N_BOOT if args.full_baseline else args.baseline_reps
        s = run_child(n, args.repeats if n <= BASELINE_N else args.big_repeats, reps if n == BASELINE_N else 0)
        if "baseline_s_per_replicate" in s:
            seconds = s["baseline_s_per_replicate"] * N_BOOT
            base = {"predictions": n, "seconds": seconds, "replicates_run": s["baseline_replicates_run"],
                    "spurspec_s": s["median_s"], "ratio": seconds / s["median_s"]}
        sizes.append(s)
    report(sizes, base)
    run.write(args.json, {"attributes": len(ATTRS), "replicates": N_BOOT, "val_share": VAL_SHARE,
                          "patients_per_image": PATIENTS_PER_IMAGE}, {"sizes": sizes, "baseline": base})


if __name__ == "__main__":
    main()
