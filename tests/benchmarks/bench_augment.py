"""Cost of training augmentation, side by side in one run (prints, never asserts timings):
1. training images/s of spurspec's epoch loop (loop.train_epoch over RowsDataset and the loader,
   as `spurspec train` runs it, validation excluded) for a model at 128 px, binary and seg, with
   augmentation `none`, `standard` on the batch (augment.py) and `standard-cpu` (the per-image
   MONAI path), interleaved, medians over repeats, and the ratio augmented / unaugmented
   (issue 17's target: >= 0.9);
2. the cost of the `study` augmentation of a batch (image and target) at 512 px against one
   `resnet50` binary training step (forward, backward, Adam; seg too with --big-seg) on the same
   batch (target: < 10 %): the mean over many draws (each sample warps with p 0.3), and the worst
   case (every sample warped and rotated).
On a shared machine, run it when the cores are otherwise idle: torch's threads wait on each other
when another process holds a core, and every figure drops (see issue 17, point 5).
Usage: .venv/bin/python tests/benchmarks/bench_augment.py [--repeats 3] [--big-batch 4] [--json PATH]"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Run  # noqa: E402
from tiny_dataset import make  # noqa: E402

from spurspec.artefacts.dataset import Dataset  # noqa: E402
from spurspec.training import loop, models  # noqa: E402
from spurspec.training.data import augment, granularity  # noqa: E402
from spurspec.training.data import rows as data  # noqa: E402

CPU = torch.device("cpu")


def make_step(model_name: str, channels: int, pixel: bool, augment_name: str, seed: int) -> loop.Step:
    """A Step as the trainer builds it on a CPU (full precision, ERM, no channels_last)."""
    torch.manual_seed(seed)
    model = models.build(model_name, channels, pixel)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return loop.Step(model, optimizer, scaler, CPU, None, pixel, "bce", 1.0, False,
                     augment=augment.batch_augment(augment_name, seed, CPU))


def epoch_rate(ds: Dataset, gran: str, model_name: str, augment_name: str, batch: int, seed: int) -> tuple[float, float]:
    """images/s of the second of two training epochs (the first warms up allocations), and the
    share of that epoch spent augmenting: inside the batch augmentation, or for the per-image
    path waiting for data (loading and per-item transforms, in-process on a CPU)."""
    g = granularity.parse(gran)
    targets = granularity.Targets(ds, g) if g.pixel else None
    labels = np.asarray(ds.manifest.column("label").to_numpy(zero_copy_only=False)).astype(np.int64)
    rows = np.flatnonzero(np.asarray(ds.manifest.column("split").to_pylist()) == "train")
    step = make_step(model_name, ds.channels, g.pixel, augment_name, seed)
    spent = [0.0]
    if step.augment is not None:
        step.augment = timing(step.augment, spent)
    dataset = data.RowsDataset(ds.root, labels, targets, augment_name, seed)
    for epoch in range(2):
        spent[0] = 0.0
        sampler = data.EpochSampler(rows, epoch, seed)
        stats = loop.train_epoch(step, data.loader(dataset, sampler, batch, 0, CPU), lambda n, loss: None)
    share = (spent[0] if step.augment is not None else stats["wait_seconds"]) / stats["seconds"]
    return stats["n"] / stats["seconds"], share


def timing(fn, spent: list[float]):
    def timed(batch):
        t0 = time.perf_counter()
        out = fn(batch)
        spent[0] += time.perf_counter() - t0
        return out

    return timed


def throughput(tmp: Path, args: argparse.Namespace) -> list[dict]:
    ds = Dataset.open(make(tmp / "ds", n=args.images, size=args.size, splits=(0.8, 0.1)))
    print(f"1. training images/s: {int(args.images * 0.8)} train images at {args.size} px, batch {args.batch}, "
          f"model {args.model}, {args.threads} threads, medians of {args.repeats}")
    print("   (share: of the epoch spent in the batch augmentation; for `none` and `standard-cpu`,"
          " spent waiting for data, which holds the per-image transforms)")
    names = ("none", "standard", "standard-cpu")
    out = []
    for gran in ("binary", "seg"):
        runs: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        for r in range(args.repeats):
            for name in names:
                runs[name].append(epoch_rate(ds, gran, args.model, name, args.batch, r))
        rate = {n: statistics.median(x[0] for x in v) for n, v in runs.items()}
        share = {n: statistics.median(x[1] for x in v) for n, v in runs.items()}
        none, batched, cpu = rate["none"], rate["standard"], rate["standard-cpu"]
        print(f"   {gran:>6}: none {none:7.1f} img/s (wait {share['none']:.1%}) | standard on the batch "
              f"{batched:7.1f} ({batched / none:.2f}x{'' if batched / none >= 0.9 else ', BELOW 0.9'}; "
              f"share {share['standard']:.1%}) | standard-cpu per image {cpu:7.1f} ({cpu / none:.2f}x; "
              f"wait {share['standard-cpu']:.1%})")
        out.append({"granularity": gran, "images_per_s": rate, "share": share,
                    "runs": {n: [x[0] for x in v] for n, v in runs.items()}})
    return out


def big_batch(tmp: Path, size: int, n: int) -> dict[str, torch.Tensor]:
    ds = Dataset.open(make(tmp / "big", n=max(n, 4), size=size, splits=(1.0, 0.0)))
    targets = granularity.Targets(ds, granularity.parse("seg"))
    labels = np.asarray(ds.manifest.column("label").to_numpy(zero_copy_only=False)).astype(np.int64)
    rows = data.RowsDataset(ds.root, labels, targets, "none", 0)
    return torch.utils.data.default_collate([rows[(i, 0)] for i in range(n)])


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def study_cost(tmp: Path, args: argparse.Namespace) -> list[dict]:
    batch = big_batch(tmp, args.big_size, args.big_batch)
    print(f"2. study augmentation vs one resnet50 step: batch {args.big_batch} at {args.big_size} px, "
          f"{args.threads} threads, step median of {args.big_repeats}")
    typical = augment.BatchAugment(augment.RECIPES["study"], 0, CPU)
    worst = augment.BatchAugment(replace(augment.RECIPES["study"], distort=1.0, affine=1.0), 0, CPU)

    def augment_over_epochs(aug: augment.BatchAugment, epochs: int) -> float:
        aug(batch)
        t0 = time.perf_counter()
        for e in range(epochs):
            aug({**batch, "epoch": torch.full_like(batch["epoch"], e)})
        return (time.perf_counter() - t0) / epochs

    mean_aug, worst_aug = augment_over_epochs(typical, args.draws), augment_over_epochs(worst, 3)
    out = []
    for gran, pixel in (("binary", False), ("seg", True))[: 2 if args.big_seg else 1]:
        step = make_step("resnet50", 1, pixel, "none", 0)
        seconds = timed(lambda s=step: train_one(s, batch), args.big_repeats)
        print(f"   {gran:>6}: resnet50 step {seconds * 1e3:8.0f} ms | study augmentation (with target) mean over "
              f"{args.draws} draws {mean_aug * 1e3:6.1f} ms = {mean_aug / seconds:5.1%}"
              f"{'' if mean_aug / seconds < 0.1 else ' (ABOVE 10 %)'} | every sample warped "
              f"{worst_aug * 1e3:6.1f} ms = {worst_aug / seconds:5.1%}")
        out.append({"granularity": gran, "step_s": seconds, "augment_mean_s": mean_aug, "augment_worst_s": worst_aug})
    return out


def train_one(step: loop.Step, batch: dict[str, torch.Tensor]) -> None:
    loop.train_epoch(step, [batch], lambda n, loss: None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=320)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="small")
    ap.add_argument("--big-size", type=int, default=512)
    ap.add_argument("--big-batch", type=int, default=4)
    ap.add_argument("--big-repeats", type=int, default=2)
    ap.add_argument("--draws", type=int, default=20, help="batches of study augmentation averaged")
    ap.add_argument("--big-seg", action="store_true", help="also time a resnet50 seg step (slow on a CPU)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    run = Run("augment")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        rates = throughput(Path(tmp), args)
        cost = study_cost(Path(tmp), args)
    run.write(args.json, {k: v for k, v in vars(args).items() if k != "json"}, {"throughput": rates, "study_cost": cost})


if __name__ == "__main__":
    main()
