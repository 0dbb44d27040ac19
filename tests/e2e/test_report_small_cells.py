"""A report on a 60-image dataset whose test split holds 3 robust images (1 positive without the
tube, 2 negatives with it), through the real CLI: under the cell-size rule no finding is bold
and none says beats or trails; each says "too few images to tell" with the counts, in the first
paragraph, the findings, the data summary and the table of every run, with every count's noun
in the right number."""

import re

import pytest
from metrics_data import fake_run, write_dataset

COUNTS = "3 robust test images: 1 positive, 2 negatives"


def _tiny(out):
    """60 images: 48 train/val with the tube mostly on positives; 12 test images of which 1
    positive lacks the tube and 2 negatives have it (the robust cells)."""
    labels, tube, splits = [], [], []
    for i in range(48):
        y = i % 2
        labels.append(y)
        tube.append(y if i % 5 else 1 - y)
        splits.append("train" if i < 36 else "val")
    test = [(1, 0)] + [(0, 1)] * 2 + [(1, 1)] * 5 + [(0, 0)] * 4  # (label, tube); fake_run keeps maps of the first 3
    labels += [y for y, _ in test]
    tube += [t for _, t in test]
    splits += ["test"] * len(test)
    return write_dataset(out, labels, {"chest_tube": tube}, splits, name="folder")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from typer.testing import CliRunner

    from spurspec.cli.main import app

    d = tmp_path_factory.mktemp("small")
    m = _tiny(d / "ds")
    fake_run(d / "runs" / "binary", d / "ds", m, "binary", 0, 2.0)
    fake_run(d / "runs" / "seg", d / "ds", m, "seg", 0, 0.0, summaries=("mean",))
    res = CliRunner().invoke(app, ["report", str(d / "runs"), "--out", str(d / "rep"), "--title", "Small"])
    assert res.exit_code == 0, res.output
    return (d / "rep" / "report.md").read_text(), (d / "rep" / "report.html").read_text()


@pytest.mark.e2e
def test_no_finding_is_bold_and_each_says_too_few_with_the_counts(small):
    md, html = small
    assert 'class="finding"' not in html and "**" not in md  # p.finding is the bold style
    findings = md.split("## Findings\n", 1)[1].split("\n## ", 1)[0]
    assert f"seg against binary on the robust cells (chest_tube): too few images to tell ({COUNTS})" in findings
    assert not re.search(r"\b(beats|trails|is not distinguishable from)\b", findings)
    assert re.search(r'<p class="too-few">seg against binary .*too few images to tell', html)


@pytest.mark.e2e
def test_the_opening_data_and_every_run_say_too_few(small):
    md, _ = small
    first = md.split("# Small\n\n", 1)[1].split("\n\n", 1)[0]
    assert f"there are too few images to tell ({COUNTS}): robust AUROC" in first
    assert "far below" not in first and "well above" not in first and " read " not in first
    assert "Robust cells of the test split: 1 positive without chest_tube, 2 negatives with chest_tube." in md
    assert f"Too few images to tell ({COUNTS}): fewer than 10 of a class" in md
    every = md.split("## Every run\n", 1)[1].split("\n## ", 1)[0]
    assert every.count(f"too few images to tell ({COUNTS})") == 2  # both runs' rows
    assert not re.search(r"\b1 (positives|negatives|runs|groups|images|replicates)\b", md)
    assert "(s)" not in md
