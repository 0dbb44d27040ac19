"""`spurspec probe` through the real CLI on tiny models trained on the demo's synthetic data:
inserting the tube moves the image-label model trained with the tube correlated with the label
far more than the mask model, and barely moves one trained with it uncorrelated; removal moves
it back; a probe's clean scores are evaluate's; probes are seeded, reproducible and up to date
on a rerun; images that already have the feature are never painted; the pipeline stage and the
report section read the same tables."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.layout import RunLayout

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SYNTHETIC = ["ingest", "synthetic", "--n", "800", "--size", "32", "--seed", "0"]


def _invoke(runner, app, args, expect=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == expect, f"spurspec {' '.join(map(str, args))}: exit {result.exit_code}\n{result.output}"
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tube correlated with the label (P(tube = label) = 0.9 in train, reversed in test):
    image-label and mask models; uncorrelated (0.5): an image-label model. Each evaluated."""
    from typer.testing import CliRunner

    from spurspec.cli.main import app

    runner, d = CliRunner(), tmp_path_factory.mktemp("probes")
    _invoke(runner, app, [*SYNTHETIC, "--out", d / "ds"])
    _invoke(runner, app, [*SYNTHETIC, "--correlation", "0.5", "--out", d / "ds_uncorrelated"])
    plan = {"binary": ("ds", "binary", "8"), "seg": ("ds", "seg", "4"), "uncorrelated": ("ds_uncorrelated", "binary", "8")}
    for name, (ds, gran, epochs) in plan.items():
        _invoke(runner, app, ["train", d / ds, "--granularity", gran, "--out", d / name, "--epochs", epochs,
                              "--lr", "0.002", "--patience", "0"])
        _invoke(runner, app, ["evaluate", d / name, "--bootstrap", "20"])
    return d


def _probe(cli, run, *args):
    return cli(["probe", run, "--bootstrap", "200", *args])


def _rows(run, name):
    return {(r["images"], r["map"], r["metric"]): r for r in pq.read_table(RunLayout(run).probe(name)).to_pylist()}


def test_tube_insertion_moves_the_model_that_learned_it(cli, runs):
    for name in ("binary", "seg", "uncorrelated"):
        _probe(cli, runs / name, "--insert", "tube")
    shift = {n: _rows(runs / n, "insert-tube-away")[("all", None, "median_shift")]["value"] for n in ("binary", "seg", "uncorrelated")}
    flip = {n: _rows(runs / n, "insert-tube-away")[("all", None, "flip_up")]["value"] for n in ("binary", "seg", "uncorrelated")}
    assert shift["binary"] > 0.2 and flip["binary"] > 0.5, (shift, flip)
    assert abs(shift["seg"]) < 0.05 and abs(shift["uncorrelated"]) < 0.05, shift
    assert flip["binary"] > 2 * max(flip["seg"], flip["uncorrelated"]), flip
    low = _rows(runs / "binary", "insert-tube-away")[("all", None, "median_shift")]["ci_low"]
    assert low > 0.1  # the interval excludes no effect


def test_removal_moves_it_back(cli, runs):
    _probe(cli, runs / "binary", "--remove")
    rows = _rows(runs / "binary", "remove")
    assert rows[("all", None, "median_shift")]["value"] < -0.2
    assert rows[("all", None, "flip_down")]["value"] > 0.5
    assert rows[("all", None, "median_shift")]["n_images"] == _test_count(runs / "ds", 1)


def _test_count(ds_dir, tube: int) -> int:
    m = Dataset.open(ds_dir).manifest.to_pydict()
    return sum(1 for s, t in zip(m["split"], m["chest_tube"], strict=True) if s == "test" and t == tube)


def test_images_that_have_the_feature_are_not_painted_and_clean_scores_are_evaluates(cli, runs):
    result = _probe(cli, runs / "uncorrelated", "--insert", "tube", "--placement", "random")
    assert "already have the feature" in result.stdout
    rows = _rows(runs / "uncorrelated", "insert-tube-random")
    ds = runs / "ds_uncorrelated"
    assert rows[("all", None, "skipped_has_feature")]["n_images"] == _test_count(ds, 1)
    assert rows[("all", None, "median_shift")]["n_images"] == _test_count(ds, 0)
    # AUROC before insertion is evaluate's AUROC on the same images (the tube-free test images).
    from spurspec.metrics.auroc import auroc

    preds = pq.read_table(RunLayout(runs / "uncorrelated").predictions)
    preds = preds.filter(pc.equal(preds.column("split"), "test")).join(Dataset.open(ds).manifest, "image_id")
    free = preds.filter(pc.equal(preds.column("chest_tube"), 0))
    expected = auroc(free.column("score").to_numpy(), free.column("label").to_numpy())
    assert rows[("all", None, "auroc_before")]["value"] == pytest.approx(expected, abs=1e-12)


def test_probes_are_seeded_reproducible_and_up_to_date(cli, runs):
    run = runs / "uncorrelated"
    _probe(cli, run, "--insert", "ink", "--attribute", "none", "--seed", "3")
    path = RunLayout(run).probe("insert-ink-away")
    first, mtime = pq.read_table(path), path.stat().st_mtime_ns
    again = _probe(cli, run, "--insert", "ink", "--attribute", "none", "--seed", "3")
    assert "up to date" in again.stdout and path.stat().st_mtime_ns == mtime
    changed = cli(["probe", run, "--bootstrap", "200", "--insert", "ink", "--attribute", "none", "--seed", "4"], expect=4)
    assert "--force" in changed.output and "seed" in changed.output
    _probe(cli, run, "--insert", "ink", "--attribute", "none", "--seed", "3", "--force")
    assert pq.read_table(path).equals(first)


def test_attribution_shares_and_overlay(cli, runs, tmp_path):
    _probe(cli, runs / "seg", "--attribution", "--ig-steps", "4", "--max-images", "12", "--bootstrap", "50")
    rows = _rows(runs / "seg", "attribution")
    for map_ in ("probability", "integrated_gradients"):
        parts = [rows[("abnormality", map_, f"mass_{r}")]["value"] for r in ("abnormality", "spurious", "elsewhere")]
        assert sum(parts) == pytest.approx(1.0) and rows[("abnormality", map_, "mass_abnormality")]["n_images"] == 12
        assert 0 <= rows[("spurious", map_, "pointing_spurious")]["value"] <= 1
    overlay = np.zeros((8, 8, 4), np.uint8)
    overlay[2:6, 2:6] = (255, 255, 255, 255)
    Image.fromarray(overlay, "RGBA").save(tmp_path / "mark.png")
    result = _probe(cli, runs / "binary", "--insert", tmp_path / "mark.png", "--attribute", "none",
                    "--placement", "fixed", "--overlay-scale", "0.3")
    assert "insert-overlay-mark-" in result.stdout
    Image.fromarray(overlay[..., :3], "RGB").save(tmp_path / "opaque.png")
    bad = cli(["probe", runs / "binary", "--insert", tmp_path / "opaque.png", "--attribute", "none"], expect=2)
    assert "no alpha channel" in bad.output


def test_refusals(cli, runs, tmp_path):
    assert "name a probe" in cli(["probe", runs / "binary"], expect=2).output
    assert "feature 'tubes'" in cli(["probe", runs / "binary", "--insert", "tubes"], expect=2).output
    assert "no attribute 'dark_corner'" in cli(["probe", runs / "binary", "--insert", "vignette"], expect=2).output
    assert "no such run" in cli(["probe", tmp_path / "nope", "--remove"], expect=3).output
    from tiny_dataset import make

    make(tmp_path / "tiny", n=40, size=32)
    cli(["train", tmp_path / "tiny", "--granularity", "binary", "--out", tmp_path / "run", "--epochs", "1"])
    assert "not evaluated" in cli(["probe", tmp_path / "run", "--remove"], expect=3).output
    cli(["evaluate", tmp_path / "run", "--bootstrap", "0"])
    assert "does not record where" in cli(["probe", tmp_path / "run", "--remove"], expect=2).output
    # Not synthetic: the rendered chest tube, painted only where chest_tube = 0.
    cli(["probe", tmp_path / "run", "--insert", "tube", "--bootstrap", "0"])
    rows = _rows(tmp_path / "run", "insert-tube-away")
    assert rows[("all", None, "median_shift")]["n_images"] + rows[("all", None, "skipped_has_feature")]["n_images"] == 8


def test_synthetic_ingest_stores_the_spurious_region(cli, tmp_path):
    out = tmp_path / "ds"
    cli(["ingest", "synthetic", "--n", "24", "--size", "32", "--out", out])
    ds = Dataset.open(out)
    masks = np.load(ds.layout.spurious_masks)
    tube = np.asarray(ds.manifest.column("chest_tube").to_pylist())
    assert ds.info["spurious_region"]["attribute"] == "chest_tube"
    assert (masks.reshape(24, -1).any(1) == (tube == 1)).all()
    assert not (masks.astype(bool) & ds.masks().astype(bool)).any()  # S never overlaps Y
    # A dataset made before the masks were stored is rebuilt by the same command, byte for byte.
    manifest = ds.layout.manifest.read_bytes()
    ds.layout.spurious_masks.unlink()
    assert "up to date" not in cli(["ingest", "synthetic", "--n", "24", "--size", "32", "--out", out]).stdout
    assert ds.layout.spurious_masks.exists() and ds.layout.manifest.read_bytes() == manifest
    assert "up to date" in cli(["ingest", "synthetic", "--n", "24", "--size", "32", "--out", out]).stdout


PIPELINE = """
[study]
name = "probed"

[datasets.syn]
source = "synthetic"
n = 80
size = 32

[train]
granularities = ["binary"]
seeds = [0]
epochs = 1

[evaluate]
bootstrap = 20
n_saliency = 0

[probe]
insert = ["tube"]
remove = true
bootstrap = 20

[report]
title = "probed"
"""


def test_pipeline_probe_stage_and_report_section(cli, tmp_path):
    from spurspec.pipeline import plan, spec

    path = tmp_path / "p.toml"
    path.write_text(PIPELINE)
    jobs = plan.plan(spec.load(path, out=tmp_path / "study"))
    probe = next(j for j in jobs if j.stage == "probe")
    evaluate = next(j for j in jobs if j.stage == "evaluate")
    report = next(j for j in jobs if j.stage == "report")
    assert probe.deps == (evaluate.id,) and probe.id in report.deps
    without = tmp_path / "q.toml"
    without.write_text(PIPELINE.replace("[probe]\ninsert = [\"tube\"]\nremove = true\nbootstrap = 20\n", ""))
    plain = plan.plan(spec.load(without, out=tmp_path / "study"))
    assert not [j for j in plain if j.stage == "probe"] and next(j for j in plain if j.stage == "report").key != report.key
    cli(["run", path, "--out", tmp_path / "study"])
    run = next((tmp_path / "study" / "train").iterdir())
    assert RunLayout(run).probe("insert-tube-away").exists() and RunLayout(run).probe("remove").exists()
    md = (tmp_path / "study" / "report" / "report.md").read_text()
    assert "## Reliance probes" in md and "figures/probe_insert-tube-away.png" in md and "insert-tube-away: median shift" in md
    bad = cli(["run", path, "--out", tmp_path / "study2", "--set", "probe.placement=sideways"], expect=2)
    assert "placement 'sideways'" in bad.output
