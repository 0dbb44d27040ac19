"""README's "Run it on your own data", run as written: the five steps' command lines are read
from README (ingest folder, derive-boxes, train at two granularities, evaluate, report) and run
in order through the real CLI on a small generated folder of PNG images and masks, whose table
has the columns the ingest line names. Only sizes are made tiny (a smaller image side, fewer
epochs and bootstrap replicates), by options appended to README's lines."""

from __future__ import annotations

import csv
import shlex
from pathlib import Path

import numpy as np
import pytest
from markdown_docs import README, block_commands, section
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STEPS = ["ingest", "derive-boxes", "train", "evaluate", "report"]
# Appended to README's lines, so they run in seconds; the last value of an option wins.
TINY = {"ingest": ["--size", "32"], "train": ["--epochs", "2", "--batch-size", "8"], "evaluate": ["--bootstrap", "20"]}


def readme_steps() -> list[list[str]]:
    return [shlex.split(c.text) for b in section(README, "Run it on your own data")
            for c in block_commands(b) if c.text.startswith("spurspec ")]


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def write_folder(table: Path, cols: dict[str, str], n: int = 64, size: int = 48, seed: int = 0) -> None:
    """n PNG images (two per patient) at `size` px: positives hold a bright disc (their mask);
    a bright vertical line, the spurious feature, agrees with the label for 80 % of images."""
    rng = np.random.default_rng(seed)
    root = table.parent
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:size, :size]
    rows = []
    for i in range(n):
        label = (i // 2) % 2
        tube = label if rng.random() < 0.8 else 1 - label
        img = rng.normal(60, 15, (size, size))
        mask_path = ""
        if label:
            cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
            mask = ((yy - cy) ** 2 + (xx - cx) ** 2) <= (size // 8) ** 2
            img += 90 * mask
            mask_path = f"masks/{i:04d}.png"
            Image.fromarray(mask.astype(np.uint8) * 255).save(root / mask_path)
        if tube:
            img[:, size // 8] += 120
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / f"images/{i:04d}.png")
        rows.append({cols["--image-col"]: f"images/{i:04d}.png", cols["--label-col"]: label,
                     cols["--mask-col"]: mask_path, cols["--spurious-cols"]: tube, cols["--patient-col"]: f"p{i // 2:03d}"})
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_the_five_steps_run_as_written(cli, tmp_path, monkeypatch):
    steps = readme_steps()
    order = [w[1] for w in steps]
    assert [s for i, s in enumerate(order) if i == 0 or order[i - 1] != s] == STEPS, order
    assert order.count("train") == 2 and len({option(w, "--granularity") for w in steps if w[1] == "train"}) == 2

    ingest = steps[0]
    cols = {k: option(ingest, k) for k in ("--image-col", "--label-col", "--mask-col", "--spurious-cols", "--patient-col")}
    monkeypatch.chdir(tmp_path)
    write_folder(Path(ingest[3]), cols)

    for words in steps:
        kind = words[1]
        cli([*words[1:], *TINY.get(kind, [])])

    report = Path(option(steps[-1], "--out"))
    assert (report / "report.html").stat().st_size > 0 and (report / "report.md").exists()
    for words in steps:
        if words[1] == "evaluate":
            assert (Path(words[2]) / "metrics.parquet").exists()
