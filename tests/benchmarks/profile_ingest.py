"""Where `ingest siim --workers 1` spends time beyond decoding: the one-off figures that
docs/results/ingest-profile.md quotes, reproducible. On generated 1024x1024 JPEG-Baseline DICOMs
(a quarter with a lesion):

1. the SIIM mask path per lesion (200 x 150 px): the band path ingest uses (paint, shrink and
   transpose only the rows the lesion touches) beside the full-image path it replaced;
2. how much this machine's speed drifts: the same decode loop timed --drift times in a row;
3. cProfile of the decode-only loop and of a whole ingest of the same files: both totals, the
   functions only ingest runs (largest first), and the closing fsync;
4. how long closing the output arrays waits for the disk, with the background flush every 32 MB
   (before) and every io.FLUSH_BYTES (now), medians of 3 ingests each;
5. the serial part of an ingest (everything but the decode loop: finding and fingerprinting the
   files, the label CSV, the manifest, closing and writing the outputs) with 1 and 2 workers, and
   finding the DICOMs by directory entries (now) against rglob + is_file (before), and resolving
   their manifest `source` paths a folder at a time (now) against os.path.realpath (before);
6. per image, what ingest's worker function (decode_item: decode plus the mask and the manifest
   facts) costs beyond decoding, for negatives and for images with a lesion, and the mask work of
   a lesion image timed alone (medians of 9 interleaved passes over 200 files);
7. in place: whole ingests with each part timed where it runs (decoding, the mask, writing the
   rows, the source path, the rest of the item, the serial part), beside the decode-only loop
   (medians of --in-situ interleaved pairs); and with 2 workers, each worker's CPU time per image
   and its share of the decode loop's wall time spent working.

    .venv/bin/python tests/benchmarks/profile_ingest.py [--n 1000] [--size 512] [--drift 8] [--in-situ 3]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the SIIM folder builder
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest_siim import fast_loop, make_folder, run_ingest  # noqa: E402

from spurspec.artefacts import dataset  # noqa: E402
from spurspec.datasets import common, siim, siim_inputs  # noqa: E402
from spurspec.imaging import dicom, rle  # noqa: E402
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


def close_wait(root: Path, out: Path, size: int) -> None:
    from spurspec.artefacts import io

    now, waits = io.FLUSH_BYTES, {}
    real_close = io.RowFile.close

    def close(self: io.RowFile) -> None:
        start = time.perf_counter()
        real_close(self)
        spent.append(time.perf_counter() - start)

    io.RowFile.close = close
    try:
        for every in (32 << 20, now):
            io.FLUSH_BYTES, totals = every, []
            for _ in range(3):
                spent: list[float] = []
                run_ingest(root, out, 1, size)
                shutil.rmtree(out)
                totals.append(sum(spent))
            waits[every] = sorted(totals)[1]
    finally:
        io.RowFile.close, io.FLUSH_BYTES = real_close, now
    print("closing the arrays waited " + ", ".join(f"{t * 1e3:.0f} ms with a background flush every {b >> 20} MB"
                                                 for b, t in waits.items()))


def serial_part(root: Path, out: Path, size: int) -> None:
    real = siim.decode_all
    inside: list[float] = []

    def timed_decode_all(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            inside.append(time.perf_counter() - start)

    siim.decode_all = timed_decode_all
    try:
        for workers in (1, 2):
            serial = []
            for _ in range(3):
                start = time.perf_counter()
                run_ingest(root, out, workers, size)
                serial.append(time.perf_counter() - start - inside.pop())
                shutil.rmtree(out)
            print(f"serial part of an ingest, --workers {workers}: {sorted(serial)[1] * 1e3:.0f} ms (median of 3)")
    finally:
        siim.decode_all = real
    labels = root / "stage_2_train.csv"
    images = root / "stage_2_images"
    entries = per_call_ms(lambda: siim_inputs.find_dicoms(root, labels), 5)
    rglob = per_call_ms(lambda: sorted({p for p in images.rglob("*") if p.suffix.lower() == ".dcm" and p.is_file()}), 5)
    print(f"finding {len(list(images.iterdir()))} DICOMs: {entries:.1f} ms by directory entries, {rglob:.1f} ms by rglob + is_file")
    files = [str(p) for p in siim_inputs.find_dicoms(root, labels)]
    siim_inputs.forget_folders()  # as each ingest starts: the first call fills the folder cache
    by_folder = per_call_ms(lambda: [siim_inputs.real_path(f) for f in files], 5)
    by_realpath = per_call_ms(lambda: [os.path.realpath(f) for f in files], 5)
    print(f"the source paths of {len(files)} DICOMs in a tight loop: {by_folder:.1f} ms a folder at a time, "
          f"{by_realpath:.1f} ms by os.path.realpath")


def per_image(root: Path, size: int) -> None:
    from spurspec.datasets.common import Rejects

    labels = root / "stage_2_train.csv"
    rows = siim_inputs.read_rle_csv(labels, Rejects(False))
    items = siim_inputs.pair(labels, rows, siim_inputs.find_dicoms(root, labels), None, None, Rejects(False))[:200]
    work = {label: [(str(it.path), size, "area", tuple((f"row{r.line}", r.text) for r in it.rows)) for it in items
                    if it.label == label] for label in (0, 1)}

    def masks() -> None:  # decode_item's mask work for every lesion image, without the decoding
        for *_, rle_rows in work[1]:
            siim.union_mask(rle_rows, 1024, 1024, size)

    passes: dict[str, list[float]] = {}
    for _ in range(9):
        for label, payloads in work.items():
            for name, fn in (("decode", lambda p=payloads: fast_loop([Path(w[0]) for w in p], size)),
                             ("item", lambda p=payloads: [siim.decode_item(w) for w in p])):
                start = time.perf_counter()
                fn()
                passes.setdefault(f"{name}{label}", []).append((time.perf_counter() - start) / len(payloads))
        start = time.perf_counter()
        masks()
        passes.setdefault("masks", []).append((time.perf_counter() - start) / len(work[1]))
    ms = {k: sorted(v)[len(v) // 2] * 1e3 for k, v in passes.items()}
    print(f"per image at {size} px, decode_item beyond decoding: negatives {ms['item0'] - ms['decode0']:+.2f} ms "
          f"(decoding {ms['decode0']:.2f} ms), lesion images {ms['item1'] - ms['decode1']:+.2f} ms; "
          f"their mask work alone {ms['masks']:.2f} ms")


def _timing(spent: dict[str, float], key: str, fn):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - start
    return timed


def in_situ(root: Path, out: Path, paths: list[Path], size: int, pairs: int) -> None:
    """Ingest's parts timed where they run (functions wrapped in place, ~1 us a call), in ms per
    image, beside the decode-only loop; then, with 2 workers, each worker's CPU time per image
    (each _call's thread time, sent back with its manifest facts) and the share of the decode
    loop's wall time it spent working."""
    spent: dict[str, float] = {}
    patched = [(dicom, "decode", "decoding"), (siim, "union_mask", "mask"), (dataset.RowSink, "put", "row writes"),
               (siim_inputs, "real_path", "source path"), (common, "_call", "item"), (siim, "decode_all", "loop")]
    real = [(owner, name, getattr(owner, name)) for owner, name, _ in patched]
    runs: dict[str, list[dict[str, float]]] = {"decode": [], "ingest": []}
    try:
        for (owner, name, fn), (_, _, key) in zip(real, patched, strict=True):
            setattr(owner, name, _timing(spent, key, fn))
        for _ in range(pairs):
            for which in ("decode", "ingest", "ingest", "decode"):
                spent.clear()
                start = time.perf_counter()
                fast_loop(paths, size) if which == "decode" else run_ingest(root, out, 1, size)
                runs[which].append({**spent, "total": time.perf_counter() - start})
                shutil.rmtree(out, ignore_errors=True)
    finally:
        for owner, name, fn in real:
            setattr(owner, name, fn)
    ms = {w: {k: statistics.median(r[k] for r in rs) / len(paths) * 1e3 for k in rs[0]} for w, rs in runs.items()}
    i = ms["ingest"]
    rest = i["item"] - i["decoding"] - i["mask"] - i["row writes"] - i["source path"]
    print(f"in place, ms per image at {size} px (medians of {pairs} pairs): decode-only loop {ms['decode']['total']:.3f}; "
          f"ingest --workers 1 {i['total']:.3f} = decoding {i['decoding']:.3f} + mask {i['mask']:.3f} + row writes "
          f"{i['row writes']:.3f} + source path {i['source path']:.3f} + rest of the item {rest:.3f} + serial part "
          f"{i['total'] - i['loop']:.3f} (+ {i['loop'] - i['item']:.3f} around the items)")
    _worker_busy(root, out, size, len(paths), pairs)


def _worker_busy(root: Path, out: Path, size: int, n: int, repeats: int) -> None:
    real_call, real_all = common._call, siim.decode_all
    box: dict[str, object] = {}

    def call(fn, sink, index, payload):  # runs in the workers (forked after this patch)
        cpu = time.thread_time()
        index, facts, region, error = real_call(fn, sink, index, payload)
        if facts is not None:
            facts = {**facts, "_cpu": time.thread_time() - cpu, "_pid": os.getpid()}
        return index, facts, region, error

    def decode_all(*args, **kwargs):
        start = time.perf_counter()
        kept, facts = real_all(*args, **kwargs)
        box["loop"], box["facts"] = time.perf_counter() - start, facts
        return kept, facts

    common._call, siim.decode_all = call, decode_all
    cpu: dict[int, list[float]] = {1: [], 2: []}
    busy: list[float] = []
    try:
        for _ in range(repeats):
            for workers in (1, 2, 2, 1):
                run_ingest(root, out, workers, size)
                shutil.rmtree(out)
                facts = list(box["facts"].values())  # type: ignore[union-attr]
                cpu[workers].append(sum(f["_cpu"] for f in facts) / n * 1e3)
                if workers == 2:
                    busy.append(sum(f["_cpu"] for f in facts) / len({f["_pid"] for f in facts}) / box["loop"])  # type: ignore[operator]
    finally:
        common._call, siim.decode_all = real_call, real_all
    one, two = statistics.median(cpu[1]), statistics.median(cpu[2])
    print(f"CPU time per image in ingest's item function at {size} px: {one:.3f} ms with 1 worker, {two:.3f} ms each "
          f"with 2 ({two / one - 1:+.1%}); the 2 workers worked {statistics.median(busy):.1%} of the decode loop's "
          f"wall time (medians of {repeats} pairs)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="DICOMs ingested (200 distinct, the rest copies)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--drift", type=int, default=8, help="back-to-back runs of the decode loop over 200 files")
    ap.add_argument("--in-situ", type=int, default=3, help="interleaved pairs of the in-place timings (7.)")
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
        shutil.rmtree(tmp / "out")
        close_wait(tmp / "siim", tmp / "out", args.size)
        serial_part(tmp / "siim", tmp / "out", args.size)
        per_image(tmp / "siim", args.size)
        in_situ(tmp / "siim", tmp / "out", paths, args.size, args.in_situ)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
