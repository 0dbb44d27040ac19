"""Throughput of `spurspec audit`'s scoring against a bare ONNX Runtime loop, side by side in one
run (prints, never asserts timings). Both score every image of one dataset in batches with the
same ONNX model (a small plain conv net, exported here with torch.onnx.export) and the same
normalisation: the audit through its own path (spurspec.audit.scorer.ExternalScorer.clean_scores,
which `spurspec audit` calls per split: memory-mapped images, the card's normalisation, the card's
output read), the bare loop as `sess.run` over slices of the same array. Interleaved repeats;
images/s medians and the median of the ratios within a repeat (issue 27's target: >= 0.9).
Usage: .venv/bin/python tests/benchmarks/bench_audit.py [--n 4000] [--size 64] [--batch 64] [--repeats 5] [--json PATH]"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from tiny_dataset import make  # noqa: E402

from spurspec.artefacts.dataset import Dataset  # noqa: E402
from spurspec.audit.model import OnnxModel  # noqa: E402
from spurspec.audit.scorer import ExternalScorer  # noqa: E402


class SmallNet(nn.Module):
    """Three conv layers and a linear head: a small classifier, not spurspec's network code."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def export(path: Path, size: int) -> Path:
    torch.manual_seed(0)
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(SmallNet().eval(), (torch.zeros(2, 1, size, size),), dynamic_shapes={"x": {0: batch}},
                                dynamo=True, verbose=False)
    program.save(str(path))
    return path


def bare(session, images: np.ndarray, batch: int) -> np.ndarray:
    name = session.get_inputs()[0].name
    out = []
    for s in range(0, len(images), batch):
        x = (images[s:s + batch].astype(np.float32) / 255.0 - 0.5) / 0.5
        out.append(session.run(None, {name: x})[0][:, 0])
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ds = Dataset.open(make(Path(tmp) / "ds", n=args.n, size=args.size, masks=False))
        model = OnnxModel.open(export(Path(tmp) / "small.onnx", args.size))
        scorer = ExternalScorer(model, ds, args.batch)
        rows = np.arange(args.n)
        images = np.load(ds.layout.images, mmap_mode="r")
        assert np.allclose(scorer.clean_scores(rows), bare(model.session, images, args.batch), atol=1e-6)
        rates: dict[str, list[float]] = {"bare": [], "audit": []}
        for _ in range(args.repeats):
            for name, fn in (("bare", lambda: bare(model.session, images, args.batch)),
                             ("audit", lambda: scorer.clean_scores(rows))):
                t0 = time.perf_counter()
                fn()
                rates[name].append(args.n / (time.perf_counter() - t0))
    ratios = [a / b for a, b in zip(rates["audit"], rates["bare"], strict=True)]
    result = {"n": args.n, "size": args.size, "batch": args.batch, "repeats": args.repeats,
              "bare_images_per_s": statistics.median(rates["bare"]), "audit_images_per_s": statistics.median(rates["audit"]),
              "ratio": statistics.median(ratios), "machine": f"{platform.processor() or platform.machine()}, "
              f"python {platform.python_version()}, torch {torch.__version__}, {time.strftime('%d %b %Y')}"}
    print(f"bare onnxruntime loop: {result['bare_images_per_s']:.0f} images/s")
    print(f"spurspec audit scoring: {result['audit_images_per_s']:.0f} images/s")
    print(f"ratio audit / bare: {result['ratio']:.2f}x (median of the ratios of {args.repeats} interleaved repeats; target >= 0.9)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
