"""GPU training throughput at the study's 512 px (`make bench-gpu`; under 5 minutes on one GPU):
generates a synthetic dataset (`ingest synthetic`, nine tenths of it training images), then runs
`spurspec.training.train` (what `spurspec train` calls) for each model x granularity with its CUDA
defaults (bf16 autocast, channels_last, batched augmentation on the device, loader workers) and
reads the run's train_log: images/s and the share of each epoch spent waiting for data (medians
over the epochs after the first, which pays warm-up and any compilation), plus the peak GPU memory
and the GPU's name. Prints a table and writes JSON (--json).

Without CUDA it stops with one line and exit code 2; --allow-cpu runs the same code path on the
CPU (a smoke test: tests/unit/test_bench_gpu.py runs it with a handful of tiny images).

    .venv/bin/python tests/benchmarks/bench_gpu.py [--images 1024] [--size 512] [--batch 32]
        [--epochs 3] [--models small,resnet50,study] [--granularities binary,seg] [--compile]
        [--allow-cpu] [--json PATH]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Run  # noqa: E402

from spurspec import runtime  # noqa: E402
from spurspec.datasets import synthetic  # noqa: E402
from spurspec.training import TrainConfig, train  # noqa: E402

NO_CUDA = 2  # exit code without a CUDA device (and no --allow-cpu), as spurspec's usage errors


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1024, help="generated images (nine tenths train)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3, help="per run; the first is left out of the medians")
    ap.add_argument("--models", default="small,resnet50,study")
    ap.add_argument("--granularities", default="binary,seg")
    ap.add_argument("--augment", default="standard", help="spurspec's default; `study` for the study's list")
    ap.add_argument("--compile", action="store_true", help="torch.compile the binary models (TrainConfig.compile)")
    ap.add_argument("--workers", type=int, default=None, help="loader processes (default: spurspec's)")
    ap.add_argument("--dataset", type=Path, help="an existing dataset directory instead of generating one")
    ap.add_argument("--allow-cpu", action="store_true", help="without CUDA, run on the CPU (a smoke test)")
    ap.add_argument("--json", type=Path, help="write the results here")
    return ap.parse_args(argv)


def device_name(cuda: bool) -> str:
    if cuda:
        return f"{torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)"
    return "CPU (--allow-cpu smoke run, not a GPU figure)"


def one_run(ds: Path, out: Path, model: str, gran: str, args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Train one model x granularity; its throughput from the train_log rows after the first."""
    cfg = TrainConfig(dataset=ds, out=out, granularity=gran, model=model, epochs=args.epochs, batch_size=args.batch,
                      balance="none", patience=0, augment=args.augment, device=device,
                      compile=args.compile and gran == "binary",  # trainer.check refuses it for U-Nets
                      workers=args.workers)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    log = train(cfg, force=True, progress=False).log
    steady = log[1:] or log
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
    return {"model": model, "granularity": gran, "images_per_s": statistics.median(r["images_per_s"] for r in steady),
            "data_wait_fraction": statistics.median(r["data_wait_fraction"] for r in steady),
            "epoch_images_per_s": [r["images_per_s"] for r in log], "peak_memory_mib": peak,
            "peak_memory_is": "torch.cuda.max_memory_allocated" if device == "cuda" else "process peak RSS"}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print(f"bench_gpu: no CUDA device (torch {torch.__version__} sees none); run it on a GPU machine, "
              "or pass --allow-cpu for a CPU smoke run", file=sys.stderr)
        return NO_CUDA
    run = Run("gpu")
    device = "cuda" if cuda else "cpu"
    name = device_name(cuda)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        ds = args.dataset or Path(tmp) / "ds"
        if args.dataset is None:
            held = max(0.05, 4 / args.images)  # val and test: 5 %, or 4 images so val holds both classes
            synthetic.ingest(synthetic.Config(out=ds, n=args.images, size=args.size, fractions=(1 - 2 * held, held, held),
                                              workers=runtime.allowed_cores()))
        print(f"{name}: {args.size} px, batch {args.batch}, {args.epochs} epochs of ~{int(args.images * 0.9)} images, "
              f"augment {args.augment}, compile {'on' if args.compile else 'off'}; medians over epochs 2-{args.epochs}")
        print(f"| {'model':<9} | {'granularity':<11} | {'images/s':>9} | {'data wait':>9} | {'peak memory':>12} |")
        for model in args.models.split(","):
            for gran in args.granularities.split(","):
                r = one_run(ds, Path(tmp) / "run", model, gran, args, device)
                rows.append(r)
                print(f"| {model:<9} | {gran:<11} | {r['images_per_s']:9.1f} | {r['data_wait_fraction']:9.1%} | "
                      f"{r['peak_memory_mib']:8.0f} MiB |", flush=True)
    config = {"images": args.images, "train_images": int(args.images * 0.9), "size": args.size, "batch": args.batch,
              "epochs": args.epochs, "augment": args.augment, "compile": args.compile, "workers": args.workers}
    run.write(args.json, config, {"device": name, "cuda": cuda, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
