"""docs/benchmarks.md's tables come from the benchmarks' JSON files, never by hand: render.py
replaces exactly the marked blocks that have a file, draws the figures into images/ beside the
page, names the machine under each table (and says when other processes shared it), leaves blocks
without a file (or with a CPU smoke run of the GPU benchmark) alone, and refuses a page without a
block."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts beside this file
import render  # noqa: E402

MACHINE = {"cpu": "Test CPU", "cores": 2, "usable_cores": 2, "memory_gib": 8.0, "python": "3.11", "torch": "2.x",
           "numpy": "2.x", "platform": "test", "date": "2026-01-01 00:00 UTC", "seconds": 60.0, "other_load": 0.0}


def rate(x: float) -> dict:
    return {"seconds": [200 / x], "images_per_s": x}


DOCS = {
    "ingest": ({"sizes": [256, 512]}, {
        "rates": {"256": {"bare": rate(75), "decode": rate(350), "workers1": rate(330), "workers2": rate(600)},
                  "512": {"bare": rate(70), "decode": rate(300), "workers1": rate(250), "workers2": rate(480)}},
        "fast_path_diff": {"size": 256, "mean": 0.283, "max_per_image": 0.29},
        "rss": [{"images": 1000, "workers": 1, "maxrss": 217, "worker": 0},
                {"images": 1000, "workers": 2, "maxrss": 200, "worker": 61}]}),
    "metrics": ({"replicates": 1000}, {
        "sizes": [{"predictions": n, "median_s": n / 1e4, "seconds": [n / 1e4], "peak_rss_mib": 300 + n / 1e3}
                  for n in (10_000, 100_000, 1_000_000)],
        "baseline": {"predictions": 100_000, "seconds": 215.0, "replicates_run": 20, "spurspec_s": 10.0, "ratio": 21.5}}),
    "gpu": ({"size": 512, "batch": 32, "train_images": 921, "compile": False}, {
        "device": "Test GPU (80 GiB)", "cuda": True,
        "rows": [{"model": "resnet50", "granularity": "binary", "images_per_s": 1234.5, "data_wait_fraction": 0.01,
                  "peak_memory_mib": 20480.0}]}),
}

PAGE = """# Title

Before.

<!-- bench:ingest -->
old ingest table
<!-- /bench:ingest -->

Between.

<!-- bench:metrics -->
old metrics table
<!-- /bench:metrics -->

<!-- bench:storage -->
kept: no storage.json
<!-- /bench:storage -->

<!-- bench:gpu -->
no GPU yet
<!-- /bench:gpu -->

After.
"""


def write_docs(results: Path, names=DOCS, other_load: float = 0.0, cuda: bool = True) -> None:
    results.mkdir(parents=True, exist_ok=True)
    for name in names:
        config, res = DOCS[name]
        res = {**res, "cuda": cuda} if name == "gpu" else res
        doc = {"benchmark": name, "command": f".venv/bin/python tests/benchmarks/bench_{name}.py",
               "machine": {**MACHINE, "other_load": other_load}, "config": config, "results": res}
        (results / f"{name}.json").write_text(json.dumps(doc))


def test_blocks_are_rendered_from_json(tmp_path):
    write_docs(tmp_path / "bench", other_load=1.2)
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE)
    render.main(["--results", str(tmp_path / "bench"), "--page", str(page)])
    text = page.read_text()
    for outside in ("# Title\n\nBefore.\n", "\nBetween.\n", "\nAfter.\n", "kept: no storage.json"):
        assert outside in text
    assert "old ingest table" not in text and "old metrics table" not in text and "no GPU yet" not in text
    assert "| `spurspec ingest siim --workers 1` | 330.0 | 4.40× | 250.0 | 3.57× |" in text
    assert "**0.94×** at 256 px and **0.83×** at 512 px" in text
    assert "| 1,000,000 | 100.0 s | 10.0× | 10× | 1,300 MiB | 1 |" in text
    assert "grows 10.0× for 10× the predictions" in text and "by 1.0 KiB a prediction, to 1.3 GiB" in text
    assert "**21.5×** faster" in text
    assert "| `resnet50` | binary | 1,234.5 | 1.0% | 20,480 MiB |" in text
    assert text.count("Test CPU, 2 cores, 8.0 GiB") == 3
    assert text.count("the machine was shared") == 3
    for name in ("ingest", "metrics"):
        assert f"![{name} benchmark](images/bench_{name}.png)" in text
        assert (tmp_path / "images" / f"bench_{name}.png").stat().st_size > 1000


def test_a_quiet_machine_and_a_cpu_smoke_run(tmp_path):
    write_docs(tmp_path / "bench", names=["ingest", "gpu"], other_load=0.05, cuda=False)
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE)
    render.main(["--results", str(tmp_path / "bench"), "--page", str(page)])
    text = page.read_text()
    assert "(a quiet machine)" in text and "the machine was shared" not in text
    assert "no GPU yet" in text and "old metrics table" in text


def test_a_page_without_the_block_is_refused(tmp_path):
    write_docs(tmp_path / "bench", names=["ingest"])
    page = tmp_path / "benchmarks.md"
    page.write_text("# no blocks\n")
    with pytest.raises(SystemExit, match="bench:ingest"):
        render.main(["--results", str(tmp_path / "bench"), "--page", str(page)])


def test_ingest_targets_are_the_per_repeat_ratios_with_their_range():
    """With per-repeat ratios (ABBA runs), the targets quoted are their medians, not the ratios of
    the median rates, and the sentence names the run order and each ratio's range."""
    rows = {"bare": rate(75), "decode": rate(350), "workers1": rate(330), "workers2": rate(600), "design": "ABBA",
            "paired": {"workers1_vs_decode": {"per_repeat": [0.85, 0.91, 0.97], "median": 0.91},
                       "workers2_vs_workers1": {"per_repeat": [1.70, 1.81, 1.95], "median": 1.81}}}
    text = render._ingest_pairing({256: rows}, [256])
    assert render._ingest_ratios(rows) == (0.91, 1.81)
    assert "decode, `--workers 1`, `--workers 2`, `--workers 2`, `--workers 1`, decode" in text
    assert "ranged at 256 px 0.85–0.97 and 1.70–1.95" in text
    assert render._ingest_pairing({256: {k: v for k, v in rows.items() if k != "paired"}}, [256]) == ""
