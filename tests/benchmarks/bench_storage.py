"""Why the dataset directory stores preprocessed images as one memory-mapped .npy array: reading
random training batches from it, side by side in one run with the alternatives a folder of
notebooks would use (one PNG per image, one .npy per image), at the training size. Prints
images/s and ratios (medians). Usage:
    .venv/bin/python tests/benchmarks/bench_storage.py [--n 2000] [--size 256] [--json PATH]"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Run  # noqa: E402


def _timed(read, order: np.ndarray, batch: int) -> float:
    t0 = time.perf_counter()
    for start in range(0, len(order), batch):
        x = read(np.sort(order[start : start + batch]))
        x.astype(np.float32)  # what a loader does next; keeps all three honest about copying
    return len(order) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    run = Run("storage")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = np.lib.format.open_memmap(root / "images.npy", mode="w+", dtype=np.uint8, shape=(args.n, 1, args.size, args.size))
        yy, xx = np.mgrid[: args.size, : args.size]
        for i in range(args.n):  # smooth, film-like content so PNG compresses as it would on X-rays
            img = (128 + 60 * np.sin(xx / (17 + i % 7)) * np.cos(yy / (23 + i % 5)) + rng.normal(0, 6, xx.shape)).clip(0, 255)
            images[i, 0] = img.astype(np.uint8)
            Image.fromarray(images[i, 0]).save(root / f"{i}.png")
            np.save(root / f"{i}.npy", images[i])
        images.flush()
        del images
        mm = np.load(root / "images.npy", mmap_mode="r")
        readers = {
            "one memory-mapped .npy (spurspec)": lambda idx: mm[idx],
            "one .npy file per image": lambda idx: np.stack([np.load(root / f"{i}.npy") for i in idx]),
            "one PNG per image": lambda idx: np.stack([np.asarray(Image.open(root / f"{i}.png"))[None] for i in idx]),
        }
        rates: dict[str, list[float]] = {name: [] for name in readers}
        for _ in range(args.repeats):
            order = rng.permutation(args.n)
            for name, read in readers.items():  # interleaved, so drift hits all alike
                rates[name].append(_timed(read, order, args.batch))
        base = statistics.median(rates["one PNG per image"])
        print(f"{args.n} images at {args.size} px, random batches of {args.batch}, median of {args.repeats} (warm page cache)")
        rows = []
        for name, values in rates.items():
            rate = statistics.median(values)
            rows.append({"stored_as": name, "images_per_s": rate, "vs_png": rate / base, "runs": values})
            print(f"{name:<36} {rate:10.0f} images/s   {rate / base:6.1f}x PNG")
    run.write(args.json, {"images": args.n, "size": args.size, "batch": args.batch, "repeats": args.repeats}, {"rows": rows})


if __name__ == "__main__":
    main()
