"""Training throughput of spurspec's loop (`spurspec.training.train`: DataLoader over the memmapped
arrays, sampler, AMP/bookkeeping, per-epoch validation excluded from the timing) against a bare
PyTorch loop over the same model, batch size, resolution and preprocessed arrays, side by side in
one run, interleaved, medians over repeats. Prints images/s, the ratio (target >= 0.9) and peak
memory. Usage: .venv/bin/python tests/benchmarks/bench_train.py [--images 320] [--repeats 3]"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
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


def spurspec_loop(ds: Path, out: Path, gran: str, model_name: str, batch: int, seed: int, augment: str) -> float:
    cfg = TrainConfig(dataset=ds, out=out, granularity=gran, model=model_name, epochs=2, batch_size=batch,
                      seed=seed, balance="none", augment=augment, device="cpu", patience=100)
    result = train(cfg, force=True, progress=False)
    return float(result.log[-1]["images_per_s"])


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=320)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="small")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ds = make(Path(tmp) / "ds", n=args.images, size=args.size, splits=(0.8, 0.1))
        print(f"{args.images} images ({int(args.images * 0.8)} train) at {args.size} px, batch {args.batch}, "
              f"model {args.model}, {args.threads} threads, {args.repeats} repeats (medians)")
        for gran, pixel in (("binary", False), ("seg", True)):
            bare, ours, aug = [], [], []
            for r in range(args.repeats):
                bare.append(bare_loop(ds, args.model, pixel, args.batch, r))
                ours.append(spurspec_loop(ds, Path(tmp) / "run", gran, args.model, args.batch, r, "none"))
                aug.append(spurspec_loop(ds, Path(tmp) / "run", gran, args.model, args.batch, r, "standard"))
            b, o, a = statistics.median(bare), statistics.median(ours), statistics.median(aug)
            print(f"{gran:>6}: bare PyTorch {b:7.1f} img/s | spurspec {o:7.1f} img/s | ratio {o / b:.2f}"
                  f" {'OK' if o / b >= 0.9 else 'BELOW 0.9'} | spurspec with MONAI augmentation {a:7.1f} img/s")
        print(f"peak memory (RSS of this process): {peak_rss_mib():.0f} MiB")
        if torch.cuda.is_available():
            print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
