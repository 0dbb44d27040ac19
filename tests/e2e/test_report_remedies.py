"""The report's remedies section: arms grouped by what they need (nothing, attribute labels, N
masks, from the methods' declared needs and each run's masks), binary ERM as the reference line,
and each arm's paired difference to binary ERM per seed, equal to `spurspec compare`'s; a
granularity sweep of ERM runs gets no such section."""

from types import SimpleNamespace

import numpy as np
import pytest
from metrics_data import fake_run, study_like

from spurspec.report import curves, figures
from spurspec.report.compare import CompareConfig, compare

# (granularity, method, mask budget, how much the made-up scores lean on the tube)
ARMS = [("binary", None, None, 0.6), ("binary", "jtt", None, 0.5), ("binary", "groupdro", None, 0.3),
        ("binary", "rrr", 12, 0.4), ("seg", None, 12, 0.35), ("seg", None, None, 0.1)]


def _table(md: str, heading: str) -> list[list[str]]:
    """The first Markdown table after `heading`, as rows of cells (header row left out)."""
    lines = md.split(f"## {heading}\n", 1)[1].splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


@pytest.fixture(scope="module")
def remedies(tmp_path_factory):
    from typer.testing import CliRunner

    from spurspec.cli.main import app
    from tests.e2e.test_report_study import _budget

    d = tmp_path_factory.mktemp("remedies")
    m = study_like(d / "ds", n=300, name="synthetic")
    for granularity, method, budget, shortcut in ARMS:
        for seed in (0, 1):
            name = "-".join(str(p) for p in (granularity, method, budget, seed) if p is not None)
            run = fake_run(d / "runs" / name, d / "ds", m, granularity, seed, shortcut,
                           summaries=("image",) if granularity == "binary" else ("mean",))
            extra = (f'method = "{method}"\n' if method else "") + (f"mask_budget = {budget}\n" if budget else "")
            (run / "config.toml").write_text((run / "config.toml").read_text() + extra)
            if budget:
                _budget(run, m, budget)
    calls = []
    real = figures.remedies

    def spy(path, arms, deltas, reference, key, ylabel):
        calls.append({"arms": arms, "deltas": deltas, "reference": reference, "key": key})
        real(path, arms, deltas, reference, key, ylabel)

    (d / "report.toml").write_text("bootstrap = 200\n")
    figures.remedies = spy
    try:
        res = CliRunner().invoke(app, ["report", str(d / "runs"), "--out", str(d / "rep"), "--config", str(d / "report.toml")])
    finally:
        figures.remedies = real
    assert res.exit_code == 0, res.output
    return d, m, (d / "rep" / "report.md").read_text(), calls


@pytest.mark.e2e
def test_arms_are_grouped_by_what_they_need(remedies):
    d, m, md, _ = remedies
    assert (d / "rep" / "figures" / "remedies.png").exists() and "figures/remedies.png" in md
    rows = _table(md, "Remedies: robust AUROC against what each arm needs")
    labels, split = np.asarray(m.column("label").to_pylist()), np.asarray(m.column("split").to_pylist())
    every = int(((labels == 1) & (split == "train")).sum())  # every positive has a mask in study_like
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("nothing", "binary", "2"), ("nothing", "binary jtt", "2"), ("attribute labels", "binary groupdro", "2"),
        ("12 masks", "binary rrr masks=12", "2"), ("12 masks", "seg masks=12", "2"), (f"{every} masks", "seg", "2")]
    assert all(r[4].startswith("seed 0: ") and "; seed 1: " in r[4] for r in rows)


@pytest.mark.e2e
def test_binary_erm_is_the_reference_and_differences_are_compares(remedies):
    d, _, md, calls = remedies
    rows = {r[1]: r for r in _table(md, "Remedies: robust AUROC against what each arm needs")}
    assert rows["binary"][6] == "reference" and rows["binary"][7] == "—"
    (call,) = calls
    binary = [r["robust"] for a in call["arms"] if a.group == "binary" for r in a.rows]
    assert len(binary) == 2 and call["reference"] == pytest.approx(np.mean(binary)) and call["key"] == "robust"
    assert set(call["deltas"]) == {a.group for a in call["arms"]} - {"binary"}
    # The section's differences are `spurspec compare`'s: same pairs, same resamples.
    found = compare(CompareConfig(runs=(d / "runs" / "binary-0", d / "runs" / "binary-rrr-12-0"), bootstrap=200))
    row = next(r for r in found.rows if (r["metric"], r["attribute"]) == ("robust_auroc", "chest_tube"))
    assert f"seed 0: {row['diff']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]" in rows["binary rrr masks=12"][6]
    diffs = [r["diff"] for r in call["deltas"]["binary rrr masks=12"]]
    assert rows["binary rrr masks=12"][7] == f"{np.mean(diffs):+.3f} ± {np.std(diffs, ddof=1):.3f}"


def _runs(*pairs):
    return [SimpleNamespace(granularity=g, method=m) for g, m in pairs]


def test_only_a_comparison_of_methods_gets_the_section():
    assert not curves.shows_remedies(_runs(("binary", "erm"), ("bbox", "erm"), ("seg", "erm"), ("grid:4", "erm")))
    assert curves.shows_remedies(_runs(("binary", "erm"), ("binary", "jtt")))  # both need nothing
    assert curves.shows_remedies(_runs(("seg", "erm"), ("seg", "seg-ssl")))  # nothing beside masks
    assert curves.shows_remedies(_runs(("binary", "erm"), ("binary", "no-such-method")))
