"""`spurspec report` through the real CLI on evaluated runs: report.md, figures, and a report.html
whose every image is an embedded PNG that decodes, with no external references; rendered in
headless Chromium when it is installed."""

import base64
import io
import os
import re
import shutil
import statistics
import subprocess
from html.parser import HTMLParser

import numpy as np
import pyarrow.parquet as pq
import pytest
from metrics_data import fake_run, study_like
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.refs = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.srcs.append(attrs.get("src", ""))
        for key in ("src", "href"):
            if attrs.get(key):
                self.refs.append(attrs[key])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from typer.testing import CliRunner

    from spurspec.cli.main import app

    d = tmp_path_factory.mktemp("report")
    m = study_like(d / "ds", n=300)
    for g, shortcut in (("binary", 0.6), ("bbox", 0.3), ("seg", 0.1)):
        for seed in (0, 1):
            summaries = ("image",) if g == "binary" else ("mean", "max", "topk:5")
            fake_run(d / "study" / f"{g}-{seed}", d / "ds", m, g, seed, shortcut, summaries=summaries)
    (d / "study" / "unevaluated").mkdir()
    (d / "study" / "unevaluated" / "config.toml").write_text('granularity = "seg"\n')
    res = CliRunner().invoke(app, ["report", str(d / "study"), "--out", str(d / "rep"), "--title", "Test study"])
    assert res.exit_code == 0, res.output
    return d / "rep", res.stdout


@pytest.mark.e2e
def test_report_files_and_tables(report):
    rep, stdout = report
    assert "report of 6 run(s)" in stdout and "skipped" in stdout
    md = (rep / "report.md").read_text()
    assert "study (reference)" in md and "| seg | " in md and "0.820" in md and "0.460" in md
    assert "Robust AUROC by spurious attribute" in md and "| group | chest_tube | marker |" in md
    assert "ours is robust AUROC on the chest_tube cells" in md
    for name in ("headline", "specificity", "roc_robust", "by_summary", "saliency"):
        assert (rep / "figures" / f"{name}.png").exists()
        assert f"figures/{name}.png" in md
    results = pq.read_table(rep / "results.parquet")
    assert set(results.column("group").to_pylist()) == {"binary", "bbox", "seg"}
    # Our own numbers: the seg group's robust AUROC, mean ± sd over its two seeds' metrics files.
    seg = [r["value"] for r in results.to_pylist() if r["group"] == "seg" and r["metric"] == "robust_auroc"
           and r["attribute"] == "chest_tube" and r["summary"] == "mean"]
    assert len(seg) == 2
    assert f"| seg | {statistics.mean(seg):.3f} ± {statistics.stdev(seg):.3f} | 2 | 0.820 |" in md


@pytest.mark.e2e
def test_html_is_self_contained(report):
    rep, _ = report
    text = (rep / "report.html").read_text()
    parser = _Images()
    parser.feed(text)
    assert len(parser.srcs) == 5
    for src in parser.srcs:
        assert src.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        img.verify()
        assert img.format == "PNG"
    assert not [r for r in parser.refs if not r.startswith("data:")]
    assert not re.search(r"https?://", text)


@pytest.mark.e2e
@pytest.mark.slow
def test_html_renders_in_headless_chromium(report, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("SPURSPEC_REQUIRE_CHROMIUM"):  # set by .ci/run once it has installed chromium
            pytest.fail("SPURSPEC_REQUIRE_CHROMIUM is set but no chromium is on PATH")
        pytest.skip("chromium is not installed here (CI installs Debian's chromium); the parse test above still checks every image")
    rep, _ = report
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--window-size=1000,1400", f"--screenshot={shot}", (rep / "report.html").resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # text, tables and figures, not a blank page
    assert (pixels < 128).mean() > 0.01


@pytest.mark.e2e
def test_rerun_is_up_to_date_and_other_settings_need_force(report, cli):
    rep, _ = report
    study = rep.parent / "study"
    before = (rep / "report.html").stat().st_mtime_ns
    again = cli(["report", study, "--out", rep, "--title", "Test study"])
    assert "up to date" in again.stdout
    assert (rep / "report.html").stat().st_mtime_ns == before
    other = cli(["report", study, "--out", rep, "--title", "Another title"], expect=4)
    assert "pass --force" in other.stderr
    assert "Test study" in (rep / "report.md").read_text()  # the old report is untouched
    not_a_report = rep.parent / "elsewhere"
    not_a_report.mkdir()
    (not_a_report / "notes.txt").write_text("mine")
    cli(["report", study, "--out", not_a_report, "--force"], expect=4)
    assert (not_a_report / "notes.txt").read_text() == "mine"
