"""Where `ingest siim --workers 1` spends time beyond decoding: the one-off figures README's ingest
prose quotes, reproducible. On generated 1024x1024 JPEG-Baseline DICOMs (a quarter with a lesion):

1. the SIIM mask path per lesion (200 x 150 px): the band path ingest uses (paint, shrink and
   transpose only the rows the lesion touches) beside the full-image path it replaced;
2. how much this machine's speed drifts: the same decode loop timed --drift times in a row;
3. cProfile of the decode-only loop and of a whole ingest of the same files: both totals, the
   functions only ingest runs (largest first), and the closing fsync.

    .venv/bin/python tests/benchmarks/profile_ingest.py [--n 1000] [--size 512] [--drift 8]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the SIIM folder builder
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest_siim import fast_loop, make_folder, run_ingest  # noqa: E402

from spurspec.datasets import siim  # noqa: E402
from spurspec.imaging import rle  # noqa: E402
from spurspec.imaging.resize import band_step, resize_mask, resize_mask_band  # noqa: E402


def per_call_ms(fn, n: int = 300) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e3


def mask_paths(size: int) -> None:
    mask = np.zeros((1024, 1024), dtype=bool)
    mask[300:500, 200:350] = True
    rows = [("labels.csv:2", rle.encode(mask))]

    def band() -> np.ndarray:
        parsed = siim.parse_rows(rows, 1024, 1024)
        found = siim.union_transposed(parsed, 1024, 1024, band_step((1024, 1024), size) or 1)
        return resize_mask_band(*found, (1024, 1024), size, transpose=True)

    def full() -> np.ndarray:  # the path before: the whole transposed mask painted, shrunk, transposed
        flat = np.zeros(1024 * 1024, dtype=bool)
        rle.paint(flat, rows[0][1])
        return np.ascontiguousarray(resize_mask(flat.reshape(1024, 1024), size).T)

    assert np.array_equal(band(), full())
    print(f"mask of one 200x150 lesion to {size} px: band path {per_call_ms(band):.2f} ms, "
          f"full-image path {per_call_ms(full):.2f} ms (same bytes)")


def steal_ticks() -> int | None:
    """The CPU time the hypervisor reports as stolen from this guest (/proc/stat), in ticks."""
    try:
        return int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8])
    except (OSError, IndexError, ValueError):
        return None


def profiled(fn) -> tuple[dict, float]:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof)
    return {k: v[2] for k, v in stats.stats.items()}, stats.total_tt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="DICOMs ingested (200 distinct, the rest copies)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--drift", type=int, default=8, help="back-to-back runs of the decode loop over 200 files")
    args = ap.parse_args()
    mask_paths(args.size)
    tmp = Path(tempfile.mkdtemp(prefix="profile-ingest-"))
    try:
        paths = make_folder(tmp / "siim", args.n, 200)
        run_ingest(tmp / "siim", tmp / "out", 1, args.size)  # warm imports and page cache
        shutil.rmtree(tmp / "out")
        times, steal = [], steal_ticks()
        for _ in range(args.drift):
            start = time.perf_counter()
            fast_loop(paths[:200], args.size)
            times.append(time.perf_counter() - start)
        steal = "unknown" if steal is None else steal_ticks() - steal
        print(f"decode loop over 200 files, {args.drift} runs in a row: {min(times):.2f}-{max(times):.2f} s "
              f"(steal time the guest saw meanwhile: {steal} ticks)")
        decode, decode_total = profiled(lambda: fast_loop(paths, args.size))
        ingest, ingest_total = profiled(lambda: run_ingest(tmp / "siim", tmp / "out", 1, args.size))
        print(f"under cProfile, {args.n} files at {args.size} px: decode only {decode_total:.2f} s, "
              f"ingest --workers 1 {ingest_total:.2f} s ({ingest_total / decode_total - 1:+.1%})")
        only = sorted(((t, k) for k, t in ingest.items() if k not in decode), reverse=True)[:12]
        print("functions only ingest runs (own time):")
        for seconds, (file, line, name) in only:
            print(f"  {seconds:6.3f} s  {name} ({Path(file).name}:{line})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
