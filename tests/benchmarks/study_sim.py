"""The numbers on generated SIIM-format data in docs/results/siim-format.md (issue 11, points 7
and 8): writes a SIIM folder whose films hold a pneumothorax painted inside each image's real
mask and a chest tube where the image has one (tests/siim_builder.py's renderer, real label rows
from ../shared/data/siim), then ingests it and trains, evaluates and tabulates runs of any spurspec
checkout (a git worktree of an older commit gives the "before" column). Reads the checkout and
the real label files; writes the SIIM folder and a work directory (dataset, runs, results.json).
Not collected by pytest (benchmarks are scripts, not tests).

Reproduce (each command prints its table; `run` skips what is done, so it resumes):
  python tests/benchmarks/study_sim.py generate --out /tmp/sim/siim              # 3,451 films, ~10 min
  git worktree add /tmp/snap-after HEAD ; git worktree add /tmp/snap-before 8be6ac3
  python tests/benchmarks/study_sim.py run --plan after  --checkout /tmp/snap-after  --data /tmp/sim/siim --work /tmp/sim/after --seeds 0 1
  python tests/benchmarks/study_sim.py run --plan before --checkout /tmp/snap-before --data /tmp/sim/siim --work /tmp/sim/before --seeds 0 1
  python tests/benchmarks/study_sim.py run --plan study  --checkout /tmp/snap-after  --data /tmp/sim/siim --work /tmp/sim/study --limit 800
  python tests/benchmarks/study_sim.py table /tmp/sim/before /tmp/sim/after /tmp/sim/study
Training runs with OMP_NUM_THREADS=1 unless it is set. Pixel runs keep a checkpoint per epoch (training one epoch at a time with --resume, which spurspec
tests to give the same weights as one uninterrupted run), and `run` writes per-epoch probability
statistics on the val split (dice_stats.json) for the Dice-collapse question of issue 11."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from siim_builder import learnable_pick, write_learnable  # noqa: E402

REAL_DATA = Path(os.environ.get("SPURSPEC_REAL_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))

# Plans: name -> (run name, train flags). Loss names changed with issue 11 (bce -> ce).
PLANS = {
    "after": [("binary", ["--granularity", "binary"]),
              ("seg ce", ["--granularity", "seg", "--loss", "ce"]),
              ("seg ce+dice", ["--granularity", "seg", "--loss", "ce+dice"]),
              ("bbox", ["--granularity", "bbox"])],
    "before": [("binary", ["--granularity", "binary"]),
               ("seg bce", ["--granularity", "seg", "--loss", "bce"]),
               ("seg bce+dice", ["--granularity", "seg", "--loss", "bce+dice"]),
               ("bbox", ["--granularity", "bbox"])],
    # The study's protocol; ImageNet weights cannot be fetched offline, hence --pretrained none.
    "study": [(f"study {g}", ["--preset", "study", "--pretrained", "none", "--granularity", g])
              for g in ("binary", "seg", "bbox")],
}
DEFAULT_EPOCHS = {"after": 6, "before": 6, "study": 3}


def generate(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    labelled = None if args.labelled == "all" else int(args.labelled)
    ids = learnable_pick(REAL_DATA, args.train_pos, args.train_neg, labelled, args.seed)
    drawn = write_learnable(Path(args.out), REAL_DATA, ids, seed=args.seed, workers=args.workers)
    print(f"{args.out}: {len(ids)} films, {sum(drawn.values())} with a tube, "
          f"{time.perf_counter() - t0:.0f} s")


def _env(checkout: Path) -> dict[str, str]:
    """The checkout's package first on the path (subprocesses also run in the checkout, since
    `python -m` puts the working directory before PYTHONPATH); one torch thread unless
    OMP_NUM_THREADS says otherwise (on a shared 2-core machine one ran 2x faster than two)."""
    return {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def _check_package(checkout: Path) -> None:
    """Refuse to run unless the checkout's own package is the one imported."""
    out = subprocess.run([sys.executable, "-c", "import spurspec; print(spurspec.__file__)"], env=_env(checkout),
                         cwd=checkout, capture_output=True, text=True)
    if not out.stdout.strip().startswith(str(checkout.resolve())):
        sys.exit(f"{checkout}: spurspec is imported from {out.stdout.strip() or out.stderr}, not this checkout")


def _spurspec(checkout: Path, argv: list[str], log: Path) -> float:
    """Run `spurspec ARGV` from `checkout`; returns seconds."""
    env = _env(checkout)
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"$ spurspec {' '.join(argv)}\n")
        fh.flush()
        done = subprocess.run([sys.executable, "-m", "spurspec.cli.main", *argv], env=env, cwd=checkout,
                              stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"spurspec {' '.join(argv)} failed ({done.returncode}); see {log}")
    return time.perf_counter() - t0


def _ingest(args: argparse.Namespace, work: Path) -> tuple[Path, float]:
    ds = work / "dataset"
    if (ds / "manifest.parquet").exists():
        return ds, 0.0
    argv = ["ingest", "siim", str(args.data), "--out", str(ds), "--size", str(args.size),
            "--tube-labels", str(Path(args.data) / "tube_labels.csv"), "--workers", "2"]
    argv += ["--limit", str(args.limit)] if args.limit else []
    return ds, _spurspec(args.checkout, argv, work / "log.txt")


def _train(args, ds: Path, run: Path, flags: list[str], epochs: int, log: Path) -> float:
    """Train; pixel runs one epoch per call, keeping each epoch's checkpoint for dice_stats."""
    argv = ["train", str(ds), "--out", str(run), "--epochs", str(epochs), *flags]
    argv += ["--model", args.model] if args.model else []  # default: the checkout's (or the preset's)
    if "binary" in flags:
        return _spurspec(args.checkout, [*argv, "--force"], log)
    seconds = 0.0
    for epoch in range(epochs):
        seconds += _spurspec(args.checkout, [*argv, "--epochs-this-run", "1",
                                             *(["--resume"] if epoch else ["--force"])], log)
        (run / "epochs").mkdir(exist_ok=True)
        shutil.copy(run / "checkpoints" / "last.pt", run / "epochs" / f"epoch{epoch + 1}.pt")
        if (run / "done").exists():  # early stopping ended it
            break
    return seconds


def run_plan(args: argparse.Namespace) -> None:
    args.checkout, args.data, work = args.checkout.resolve(), args.data.resolve(), Path(args.work).resolve()
    _check_package(args.checkout)
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"runs": []}
    ds, ingest_s = _ingest(args, work)
    results.setdefault("ingest_seconds", ingest_s)
    results.update(plan=args.plan, checkout=str(args.checkout), commit=_commit(args.checkout), size=args.size,
                   limit=args.limit, model=args.model)
    epochs = args.epochs or DEFAULT_EPOCHS[args.plan]
    for seed in args.seeds:
        for name, flags in PLANS[args.plan]:
            if args.only and name not in args.only:
                continue
            if any(r["name"] == name and r["seed"] == seed for r in results["runs"]):
                continue
            run = work / "runs" / f"{name.replace(' ', '-')}-s{seed}"
            log = work / "log.txt"
            train_s = _train(args, ds, run, [*flags, "--seed", str(seed)], epochs, log)
            eval_s = _evaluate(args, run, log)
            if (run / "epochs").exists():
                _spurspec_python(args.checkout, [str(Path(__file__).resolve()), "dice-stats", str(run), str(ds)], log)
            results["runs"].append({"name": name, "seed": seed, "dir": str(run), "flags": flags,
                                    "commit": _commit(args.checkout), "threads": _env(args.checkout)["OMP_NUM_THREADS"],
                                    "train_seconds": round(train_s, 1), "eval_seconds": round(eval_s, 1)})
            results_path.write_text(json.dumps(results, indent=1))
            print(f"{name} seed {seed}: train {train_s:.0f} s, evaluate {eval_s:.0f} s", flush=True)
    for r in results["runs"]:  # runs from before the last-epoch column existed
        if not (Path(r["dir"]) / "metrics_last.parquet").exists():
            _evaluate(args, Path(r["dir"]), work / "log.txt")
    print_tables([work])


def _evaluate(args: argparse.Namespace, run: Path, log: Path) -> float:
    """Evaluate the last epoch's checkpoint (kept as metrics_last.parquet), then the selected one
    (metrics.parquet, as spurspec leaves it); returns the seconds of the latter. Both, because
    selection on a val Dice that is ~0 can keep an untrained epoch."""
    argv = ["evaluate", str(run), "--bootstrap", str(args.bootstrap), "--force"]
    _spurspec(args.checkout, [*argv, "--checkpoint", "last"], log)
    (run / "metrics.parquet").replace(run / "metrics_last.parquet")
    return _spurspec(args.checkout, argv, log)


def _spurspec_python(checkout: Path, argv: list[str], log: Path) -> None:
    with open(log, "a") as fh:
        done = subprocess.run([sys.executable, *argv], env=_env(checkout), cwd=checkout,
                              stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"{' '.join(argv)} failed; see {log}")


def _commit(checkout: Path) -> str:
    out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip()


def dice_stats(run: Path, ds: Path) -> None:
    """Per saved epoch, on the val split: val Dice at 0.5 (recomputed), the share of pixels above
    0.5 on positive and negative images, mean P(positive) inside and outside the targets, the
    median over positives of the largest pixel probability, and the best Dice at any fixed
    threshold (is the map still right, only below 0.5?). Runs inside the run's checkout."""
    import tomllib

    import numpy as np
    import pyarrow.parquet as pq
    import torch

    import spurspec
    from spurspec.training import checkpoint, models

    print(f"dice-stats: spurspec from {spurspec.__file__}")
    cfg = tomllib.loads((run / "config.toml").read_text())
    man = pq.read_table(ds / "manifest.parquet").to_pydict()
    rows = np.array([i for i, s in enumerate(man["split"]) if s == "val"])
    labels = np.array(man["label"])[rows]
    images = np.load(ds / "images.npy", mmap_mode="r")
    # Against the run's own target: boxes for bbox (derived by its training), masks for seg.
    target = "box_masks.npy" if cfg["granularity"] == "bbox" else "masks.npy"
    masks = np.load(ds / target, mmap_mode="r")[rows].astype(bool)
    out = []
    for path in sorted((run / "epochs").glob("epoch*.pt"), key=lambda p: int(p.stem[5:])):
        ck = checkpoint.load(path)
        heads = [v.shape[0] for k, v in ck["model"].items() if k.startswith("head.") and k.endswith(".weight")]
        classes = heads[-1] if heads else 1  # one logit (two classes) or one per class
        try:
            model = models.build(cfg["model"], images.shape[1], True, out_channels=classes)
        except TypeError:  # before issue 11, build() had no out_channels
            model = models.build(cfg["model"], images.shape[1], True)
        model.load_state_dict(ck["model"])
        model.eval()
        probs = []
        with torch.no_grad():
            for start in range(0, len(rows), 64):
                x = (torch.from_numpy(images[rows[start:start + 64]].astype(np.float32)) / 255.0 - 0.5) / 0.5
                logits = model(x).float()
                p = torch.softmax(logits, 1)[:, -1] if classes > 1 else torch.sigmoid(logits.squeeze(1))
                probs.append(p.numpy())
        out.append({"epoch": int(path.stem[5:]), **_prob_stats(np.concatenate(probs), masks, labels)})
    (run / "dice_stats.json").write_text(json.dumps(out, indent=1))


def _prob_stats(prob, masks, labels) -> dict[str, float]:
    import numpy as np

    pos, neg = labels == 1, labels == 0

    def dice_at(t: float) -> float:
        pred = prob[pos] > t
        inter = (pred & masks[pos]).sum((1, 2))
        return float(np.mean(2 * inter / np.maximum(pred.sum((1, 2)) + masks[pos].sum((1, 2)), 1)))

    inside = [p[m].mean() for p, m in zip(prob[pos], masks[pos], strict=True)]
    outside = [p[~m].mean() for p, m in zip(prob[pos], masks[pos], strict=True)]
    thresholds = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5]
    dices = {t: dice_at(t) for t in thresholds}
    best = max(dices, key=dices.get)
    return {"dice_at_0.5": dices[0.5], "frac_above_0.5_pos": float((prob[pos] > 0.5).mean()),
            "frac_above_0.5_neg": float((prob[neg] > 0.5).mean()), "mask_frac_pos": float(masks[pos].mean()),
            "mean_p_inside": float(np.mean(inside)), "mean_p_outside_pos": float(np.mean(outside)),
            "mean_p_neg": float(prob[neg].mean()), "median_max_p_pos": float(np.median(prob[pos].max((1, 2)))),
            "best_threshold": best, "dice_at_best": dices[best]}


def _metric(run: Path, metric: str, attribute: str | None, name: str = "metrics.parquet") -> str:
    import pyarrow.parquet as pq

    if not (run / name).exists():
        return "-"
    t = pq.read_table(run / name).to_pylist()
    for r in t:
        if r["metric"] == metric and r["attribute"] == attribute and r["summary"] in ("mean", "image"):
            return "n/a" if r["value"] is None else f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
    return "missing"


def _val_log(run: Path) -> tuple[list[float], list[float], int]:
    """Val Dice and AUROC per epoch, and the selected (best) epoch, 1-based."""
    import pyarrow.parquet as pq

    log = pq.read_table(run / "train_log.parquet").to_pydict()
    best = max(e for e, b in zip(log["epoch"], log["is_best"], strict=True) if b) + 1
    return log["val_dice"], log["val_auroc"], best


def print_tables(works: list[Path]) -> None:
    """One markdown table of every run (test split; summary `mean` for pixel models) and one of
    val Dice / AUROC per epoch for pixel runs, then dice_stats where present."""
    print("| plan | commit | run | seed | selected epoch | AUROC | robust AUROC (chest_tube) | "
          "last epoch: AUROC | last epoch: robust AUROC | train s | eval s |")
    print("|---|---|---|---:|---:|---|---|---|---|---:|---:|")
    rows = []
    for work in works:
        res = json.loads((Path(work) / "results.json").read_text())
        for r in res["runs"]:
            run = Path(r["dir"])
            cells = [_metric(run, "auroc", None), _metric(run, "robust_auroc", "chest_tube"),
                     _metric(run, "auroc", None, "metrics_last.parquet"),
                     _metric(run, "robust_auroc", "chest_tube", "metrics_last.parquet")]
            print(f"| {res['plan']} | {r.get('commit', res['commit'])} | {r['name']} | {r['seed']} | "
                  f"{_val_log(run)[2]} | {' | '.join(cells)} | {r['train_seconds']:.0f} | {r['eval_seconds']:.0f} |")
            rows.append((res["plan"], r, run))
    print("\n| plan | run | seed | val Dice per epoch | val AUROC per epoch |\n|---|---|---:|---|---|")
    for plan, r, run in rows:
        dice, auroc, _ = _val_log(run)
        if "binary" not in r["flags"]:
            print(f"| {plan} | {r['name']} | {r['seed']} | {' '.join(f'{d:.4f}' for d in dice)} | "
                  f"{' '.join(f'{a:.3f}' for a in auroc)} |")
    for plan, r, run in rows:
        if (run / "dice_stats.json").exists():
            print(f"\n{plan} {r['name']} seed {r['seed']} (val split, per epoch):")
            for e in json.loads((run / "dice_stats.json").read_text()):
                print("  " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in e.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="write the SIIM-format folder")
    g.add_argument("--out", required=True)
    g.add_argument("--train-pos", type=int, default=500, help="untubed pneumothorax images (train)")
    g.add_argument("--train-neg", type=int, default=1000, help="untubed negatives (train)")
    g.add_argument("--labelled", default="all", help="tube-labelled images (val/test): a count or all (1,951)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--workers", type=int, default=2)
    r = sub.add_parser("run", help="ingest, train, evaluate a plan with one checkout")
    r.add_argument("--plan", choices=sorted(PLANS), required=True)
    r.add_argument("--checkout", type=Path, required=True, help="a spurspec checkout (its package is used)")
    r.add_argument("--data", type=Path, required=True, help="the folder `generate` wrote")
    r.add_argument("--work", required=True)
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    r.add_argument("--epochs", type=int, help="default: 6 (3 for the study plan)")
    r.add_argument("--only", nargs="+", help="run names of the plan to run (default: all)")
    r.add_argument("--size", type=int, default=128)
    r.add_argument("--limit", type=int, help="ingest a stratified subset of this many films")
    r.add_argument("--model", help="default: the checkout's default (small), or the study preset's")
    r.add_argument("--bootstrap", type=int, default=200)
    t = sub.add_parser("table", help="print the tables of finished work directories")
    t.add_argument("works", nargs="+", type=Path)
    d = sub.add_parser("dice-stats", help="(internal) per-epoch probability statistics of a pixel run")
    d.add_argument("run", type=Path)
    d.add_argument("dataset", type=Path)
    args = p.parse_args()
    if args.cmd == "generate":
        generate(args)
    elif args.cmd == "run":
        run_plan(args)
    elif args.cmd == "table":
        print_tables(args.works)
    else:
        dice_stats(args.run, args.dataset)


if __name__ == "__main__":
    main()
