"""Benchmark `ingest siim` on generated 1024x1024 JPEG-Baseline DICOMs, at each target size
(--sizes, default 256 and 512).

Side by side in one run (medians of --repeats), per size: a bare loop of
pydicom.dcmread(f).pixel_array plus a resize (pydicom's default decoder choice), the library's
per-file decode (JPEG fast path: the decoder's limit, what one process can reach), and the full
`ingest` with 1 and 2 workers (issue 17's targets: --workers 1 >= 0.9x decode only, --workers 2
>= 1.8x --workers 1 where two cores are free, each the median of the ratios within a repeat, whose
runs are ordered ABBA so a linear drift cancels); the fast path's mean absolute difference from
full decode + resize; and the peak RSS of a full ingest of --rss-sizes images in a child process
each (at the first size).

    .venv/bin/python tests/benchmarks/bench_ingest_siim.py [--n 200] [--repeats 3] [--bare-n 100]
        [--sizes 256,512] [--rss-sizes 1000,4000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the SIIM folder builder
sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Run  # noqa: E402
from siim_builder import chest_like, jpeg_dicom_bytes  # noqa: E402

from spurspec.datasets import siim  # noqa: E402
from spurspec.imaging import dicom, rle  # noqa: E402
from spurspec.imaging.resize import resize_image  # noqa: E402

CONTENDERS = {  # key in the JSON: what the row is
    "bare": "bare loop: dcmread().pixel_array + resize",
    "decode": "spurspec decode (JPEG fast path), 1 process",
    "workers1": "spurspec ingest siim, --workers 1",
    "workers2": "spurspec ingest siim, --workers 2",
}


def make_folder(root: Path, n: int, unique: int) -> list[Path]:
    """A stage-2 style folder of n DICOMs (`unique` distinct images, the rest byte copies under
    new ids, which costs the decoder the same) and a label CSV, a quarter of it positive."""
    images = root / "stage_2_images"
    images.mkdir(parents=True)
    blobs = [jpeg_dicom_bytes(chest_like(1024, 1024, k), f"1.2.826.0.9.{k}", f"P{k}") for k in range(min(unique, n))]
    rng = np.random.default_rng(0)
    lines = ["ImageId, EncodedPixels"]
    paths = []
    for k in range(n):
        image_id = f"1.2.826.0.9.{k}"
        path = images / f"{image_id}.dcm"
        path.write_bytes(blobs[k % len(blobs)])
        paths.append(path)
        if k % 4 == 0:
            mask = np.zeros((1024, 1024), dtype=bool)
            y, x = rng.integers(100, 700, size=2)
            mask[y : y + 200, x : x + 150] = True
            lines.append(f"{image_id},{rle.encode(mask)}")
        else:
            lines.append(f"{image_id},-1")
    (root / "stage_2_train.csv").write_text("\n".join(lines) + "\n")
    return paths


def timed(fn, repeats: int, setup=None) -> float:
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_loop(paths: list[Path], size: int) -> None:
    for p in paths:
        resize_image(pydicom.dcmread(p).pixel_array, size)


def fast_loop(paths: list[Path], size: int) -> None:
    for p in paths:
        dicom.decode(p, size)


def run_ingest(root: Path, out: Path, workers: int, size: int) -> None:
    siim.ingest(siim.Config(root=root, out=out, size=size, workers=workers), force=True)


def rss_child(root: Path, out: Path, workers: int, size: int) -> dict:
    """Peak memory (MiB) of a fresh process running the full ingest: ru_maxrss (which counts the
    memory-mapped output arrays' resident pages), and sampled peaks of anonymous memory (the heap:
    what must stay flat) and file-backed memory (reclaimable page cache of images.npy/masks.npy)."""
    code = (
        "import json, resource, sys, threading, time\n"
        "from pathlib import Path\n"
        "from spurspec.datasets import siim\n"
        "peak = {'RssAnon': 0, 'RssFile': 0}\n"
        "def sample():\n"
        "    while True:\n"
        "        for line in open('/proc/self/status'):\n"
        "            k, _, v = line.partition(':')\n"
        "            if k in peak: peak[k] = max(peak[k], int(v.split()[0]))\n"
        "        time.sleep(0.02)\n"
        "threading.Thread(target=sample, daemon=True).start()\n"
        "r, o, w, s = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])\n"
        "siim.ingest(siim.Config(root=r, out=o, size=s, workers=w), force=True)\n"
        "me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'maxrss': round(me), 'anon': round(peak['RssAnon'] / 1024), 'file': round(peak['RssFile'] / 1024), 'worker': round(kids)}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(root), str(out), str(workers), str(size)],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def throughput(root: Path, tmp: Path, paths: list[Path], size: int, repeats: int, bare_n: int) -> dict:
    """Median seconds of each contender at one target size, and the targets' ratios per repeat.
    Each repeat runs the bare loop, then decode, --workers 1, --workers 2, --workers 2,
    --workers 1, decode (ABBA): both ratios compare runs whose mean position in the repeat is the
    same, so a drift of the machine's speed that is linear over a repeat cancels out of them (this
    virtual machine's speed wanders by up to +-20 % from one second to the next). The bare loop,
    5x slower and only the reference for the 'vs bare loop' column, times the first `bare_n`."""
    fresh = lambda: shutil.rmtree(tmp / "out", ignore_errors=True)  # noqa: E731  (untimed)
    fast_loop(paths[:5], size)  # warm imports and caches for every contender
    bare_loop(paths[:5], size)
    run_ingest(root, tmp / "out", 1, size)
    fresh()
    contender = {"decode": lambda: fast_loop(paths, size),
                 "workers1": lambda: run_ingest(root, tmp / "out", 1, size),
                 "workers2": lambda: run_ingest(root, tmp / "out", 2, size)}
    runs: dict[str, list[float]] = {k: [] for k in CONTENDERS}
    paired: dict[str, list[float]] = {"workers1_vs_decode": [], "workers2_vs_workers1": []}
    for _ in range(repeats):
        runs["bare"].append(timed(lambda: bare_loop(paths[:bare_n], size), 1))
        took = {k: 0.0 for k in contender}
        for key in ("decode", "workers1", "workers2", "workers2", "workers1", "decode"):
            seconds = timed(contender[key], 1, fresh)
            runs[key].append(seconds)
            took[key] += seconds
        paired["workers1_vs_decode"].append(took["decode"] / took["workers1"])
        paired["workers2_vs_workers1"].append(took["workers1"] / took["workers2"])
    images = {k: min(bare_n, len(paths)) if k == "bare" else len(paths) for k in runs}
    rates = {k: {"images": images[k], "seconds": v, "images_per_s": images[k] / statistics.median(v)} for k, v in runs.items()}
    return {**rates, "design": "ABBA", "paired": {k: {"per_repeat": v, "median": statistics.median(v)} for k, v in paired.items()}}


def fast_path_difference(paths: list[Path], size: int) -> dict:
    diffs = []
    for p in paths[: min(50, len(paths))]:
        fast, _ = dicom.decode(p, size)
        full = resize_image(pydicom.dcmread(p).pixel_array, size)[0]
        diffs.append(np.abs(fast.astype(np.int16) - full.astype(np.int16)).mean())
    return {"size": size, "mean": float(np.mean(diffs)), "max_per_image": float(np.max(diffs))}


def print_table(n: int, repeats: int, rates: dict[int, dict]) -> None:
    print(f"{n} DICOMs 1024x1024 JPEG-Baseline, median of {repeats}")
    for size, rows in rates.items():
        bare = rows["bare"]["images_per_s"]
        print(f"-> {size}x{size}")
        print(f"| {'path':<46} | images/s | vs bare loop |")
        print(f"|{'-' * 48}|---------:|-------------:|")
        for key, name in CONTENDERS.items():
            print(f"| {name:<46} | {rows[key]['images_per_s']:8.1f} | {rows[key]['images_per_s'] / bare:11.2f}x |")
        p1, p2 = rows["paired"]["workers1_vs_decode"], rows["paired"]["workers2_vs_workers1"]
        print(f"--workers 1 / decode only: {p1['median']:.2f}x (target >= 0.9); --workers 2 / --workers 1: "
              f"{p2['median']:.2f}x (target >= 1.8); medians of the per-repeat ratios "
              f"{', '.join(f'{x:.2f}' for x in p1['per_repeat'])} and {', '.join(f'{x:.2f}' for x in p2['per_repeat'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="DICOMs in the throughput run")
    ap.add_argument("--sizes", default="256,512", help="comma-separated target sizes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bare-n", type=int, default=100, help="images the bare pydicom loop times (it is 5x slower)")
    ap.add_argument("--rss-sizes", default="200,800", help="comma-separated dataset sizes for peak RSS (issue: 1000,4000)")
    ap.add_argument("--unique", type=int, default=200, help="distinct images generated for the RSS folders (rest are copies)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    run = Run("ingest")
    sizes = [int(x) for x in args.sizes.split(",") if x]
    tmp = Path(tempfile.mkdtemp(prefix="bench-siim-"))
    try:
        root = tmp / "siim"
        paths = make_folder(root, args.n, args.n)
        rates = {size: throughput(root, tmp, paths, size, args.repeats, args.bare_n) for size in sizes}
        print_table(args.n, args.repeats, rates)
        diff = fast_path_difference(paths, sizes[0])
        print(f"fast path vs full decode + resize at {sizes[0]}: mean |diff| = {diff['mean']:.3f} grey levels "
              f"(max per image {diff['max_per_image']:.3f})")
        rss = []
        for m in [int(x) for x in args.rss_sizes.split(",") if x]:
            big = tmp / f"siim{m}"
            make_folder(big, m, args.unique)
            for w in (1, 2):
                r = rss_child(big, tmp / f"out{m}", w, sizes[0])
                rss.append({"images": m, "workers": w, "size": sizes[0], **r})
                print(f"ingest of {m} images, --workers {w}: peak RSS {r['maxrss']} MiB = anonymous {r['anon']} MiB "
                      f"+ memory-mapped output {r['file']} MiB; largest worker RSS {r['worker']} MiB")
            shutil.rmtree(big)
            shutil.rmtree(tmp / f"out{m}", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    run.write(args.json, {"images": args.n, "bare_images": min(args.bare_n, args.n), "source": "1024x1024 JPEG-Baseline DICOM", "repeats": args.repeats,
                          "sizes": sizes}, {"rates": {str(k): v for k, v in rates.items()}, "fast_path_diff": diff, "rss": rss})


if __name__ == "__main__":
    main()
