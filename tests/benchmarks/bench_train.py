"""Training throughput, two parts, side by side in one run:
1. spurspec's loop (`spurspec.training.train`: DataLoader over the memmapped arrays, sampler,
   AMP/bookkeeping, per-epoch validation excluded from the timing) against a bare PyTorch loop over
   the same model, batch size, resolution and preprocessed arrays, interleaved, medians over
   repeats (target: ratio >= 0.9), plus spurspec with its default `standard` augmentation (on the
   batch); --size 128, model `small`, binary (--images) and seg (--seg-images: a seg epoch costs
   ~8x a binary one; binary gets more images so its short epochs are not lost in timing noise).
2. The curve: images/s of `spurspec.training.train` (binary) against resolution (--curve-sizes) and
   model (--curve-models; `study` trains binary with the same ResNet-50 as `resnet50`), with
   augmentation `none` and `standard`, from the second of two epochs. Larger images and models get
   fewer images (--curve-pixels per model) so the whole curve stays within minutes on two cores.
Prints images/s, ratios and peak memory. Usage:
    .venv/bin/python tests/benchmarks/bench_train.py [--images 1280] [--seg-images 320] [--repeats 3]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Run  # noqa: E402
from tiny_dataset import make  # noqa: E402

from spurspec.training import TrainConfig, models, train  # noqa: E402


def bare_loop(ds: Path, model_name: str, pixel: bool, batch: int, seed: int) -> float:
    """images/s of the second epoch of a plain loop: slice arrays, forward, BCE, backward, step."""
    torch.manual_seed(seed)
    images = np.load(ds / "images.npy", mmap_mode="r")
    masks = np.load(ds / "masks.npy", mmap_mode="r")
    import pyarrow.parquet as pq

    man = pq.read_table(ds / "manifest.parquet").to_pydict()
    rows = np.array([i for i, s in enumerate(man["split"]) if s == "train"])
    labels = torch.tensor(man["label"], dtype=torch.float32)
    model = models.build(model_name, images.shape[1], pixel)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    model.train()
    rate = 0.0
    for _epoch in range(2):
        order = rows[torch.randperm(len(rows)).numpy()]
        t0 = time.perf_counter()
        for start in range(0, len(order), batch):
            idx = np.sort(order[start : start + batch])
            x = (torch.from_numpy(images[idx].astype(np.float32)) / 255.0 - 0.5) / 0.5
            logits = model(x).float()
            if pixel:
                t = torch.from_numpy(masks[idx].astype(np.float32))
                loss = F.binary_cross_entropy_with_logits(logits, t)
            else:
                loss = F.binary_cross_entropy_with_logits(logits, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        rate = len(order) / (time.perf_counter() - t0)
    return rate


def spurspec_loop(ds: Path, out: Path, gran: str, model_name: str, batch: int, seed: int, augment: str,
                  threads: int) -> dict:
    """The second epoch's train_log row of a two-epoch run (the first warms up allocations)."""
    cfg = TrainConfig(dataset=ds, out=out, granularity=gran, model=model_name, epochs=2, batch_size=batch,
                      seed=seed, balance="none", augment=augment, device="cpu", patience=100, threads=threads)
    result = train(cfg, force=True, progress=False)
    return result.log[-1]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def versus_bare(tmp: Path, args: argparse.Namespace) -> list[dict]:
    print(f"1. at {args.size} px, batch {args.batch}, model {args.model}, {args.threads} threads, "
          f"{args.repeats} repeats (medians; a tenth of the images validate, a tenth test)")
    rows = []
    for gran, pixel, n in (("binary", False, args.images), ("seg", True, args.seg_images)):
        ds = make(tmp / f"ds-{gran}", n=n, size=args.size, splits=(0.8, 0.1))
        bare, ours, aug = [], [], []
        for r in range(args.repeats):
            bare.append(bare_loop(ds, args.model, pixel, args.batch, r))
            ours.append(spurspec_loop(ds, tmp / "run", gran, args.model, args.batch, r, "none", args.threads)["images_per_s"])
            aug.append(spurspec_loop(ds, tmp / "run", gran, args.model, args.batch, r, "standard", args.threads)["images_per_s"])
        b, o, a = statistics.median(bare), statistics.median(ours), statistics.median(aug)
        print(f"{gran:>6} ({int(n * 0.8)} train images): bare PyTorch {b:7.1f} img/s | spurspec {o:7.1f} img/s | ratio {o / b:.2f}"
              f" {'OK' if o / b >= 0.9 else 'BELOW 0.9'} | spurspec with `standard` augmentation {a:7.1f} img/s")
        rows.append({"granularity": gran, "train_images": int(n * 0.8), "bare": bare, "spurspec": ours,
                     "standard": aug, "bare_median": b, "spurspec_median": o, "standard_median": a})
        shutil.rmtree(ds)
    return rows


def curve(tmp: Path, args: argparse.Namespace) -> list[dict]:
    """images/s of binary training per (model, size, augment): images per run = pixels / size^2."""
    pixels = dict(zip(args.curve_models.split(","), (int(x) for x in args.curve_pixels.split(",")), strict=True))
    sizes = [int(x) for x in args.curve_sizes.split(",")]
    print(f"2. binary training images/s by resolution and model, {args.threads} threads, second of two epochs")
    rows = []
    for model_name, budget in pixels.items():
        for size in sizes:
            n_train = max(4, budget // (size * size))
            batch = min(args.batch, n_train // 2)
            n = n_train + 4  # + 2 val (both classes) + 2 test
            ds = make(tmp / f"curve{size}", n=n, size=size, splits=((n_train + 0.5) / n, 2.5 / n))
            for augment in ("none", "standard"):
                log = spurspec_loop(ds, tmp / "run", "binary", model_name, batch, 0, augment, args.threads)
                rows.append({"model": model_name, "size": size, "augment": augment, "train_images": n_train,
                             "batch": batch, "images_per_s": log["images_per_s"],
                             "data_wait_fraction": log["data_wait_fraction"]})
                print(f"   {model_name:>8} {size:>4} px {augment:>8}: {log['images_per_s']:8.1f} img/s "
                      f"({n_train} images, batch {batch}, data wait {log['data_wait_fraction']:.1%})", flush=True)
            shutil.rmtree(ds)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1280, help="images of the binary comparison")
    ap.add_argument("--seg-images", type=int, default=320, help="images of the seg comparison")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="small")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--curve-models", default="small,resnet50", help="comma-separated models of the curve ('' skips it)")
    ap.add_argument("--curve-pixels", default="16777216,2097152",
                    help="per curve model, training pixels per epoch: images = pixels / size^2 (at least 4)")
    ap.add_argument("--curve-sizes", default="128,256,512")
    ap.add_argument("--skip-bare", action="store_true", help="only the curve")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    run = Run("train")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        bare = [] if args.skip_bare else versus_bare(Path(tmp), args)
        rows = curve(Path(tmp), args) if args.curve_models else []
    peak = peak_rss_mib()
    print(f"peak memory (RSS of this process): {peak:.0f} MiB")
    run.write(args.json, {"images": args.images, "seg_images": args.seg_images, "size": args.size, "batch": args.batch, "repeats": args.repeats,
                          "model": args.model, "threads": args.threads},
              {"versus_bare": bare, "curve": rows, "peak_rss_mib": peak})


if __name__ == "__main__":
    main()
