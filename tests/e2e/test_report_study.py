"""The report compares like with like and draws the study's figures: reference values only on the
study's own data sources, ISIC trap sets as their own axis with trap-test AUROC as the headline,
robust AUROC against the number of masks, and each artefact's overlap with the lesion."""

import json

import numpy as np
import pyarrow as pa
import pytest
from metrics_data import fake_run, study_like

from spurspec.artefacts import io, schemas
from spurspec.artefacts.layout import DatasetLayout


def _retag(ds, **info):
    path = DatasetLayout(ds).info
    path.write_text(json.dumps({**json.loads(path.read_text()), **info}))


def _budget(run, manifest, kept: int):
    ids = manifest.column("image_id").to_pylist()
    pos = [i for i, (y, s) in enumerate(zip(manifest.column("label").to_pylist(), manifest.column("split").to_pylist(),
                                            strict=True)) if y == 1 and s == "train"]
    table = pa.table({"row": pa.array(pos, pa.int32()), "image_id": [ids[i] for i in pos],
                      "label": pa.array([1] * len(pos), pa.int8()), "kept": [k < kept for k in range(len(pos))]})
    io.write_table(run / "mask_budget.parquet", table, schemas.MASK_BUDGET)


@pytest.mark.e2e
def test_synthetic_data_gets_no_reference_even_with_a_chest_tube_column(tmp_path, cli):
    m = study_like(tmp_path / "ds", n=200, name="synthetic")
    for g in ("binary", "seg"):
        fake_run(tmp_path / "runs" / g, tmp_path / "ds", m, g, 0, 0.5,
                 summaries=("image",) if g == "binary" else ("mean",))
    cli(["report", tmp_path / "runs", "--out", tmp_path / "rep"])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "study (reference)" not in md and "0.460" not in md


@pytest.mark.e2e
def test_isic_trap_sets_are_an_axis_and_the_headline_is_trap_test_auroc(tmp_path, cli):
    for k in (1, 2, 3):
        m = study_like(tmp_path / f"trap{k}", n=200, seed=k, name="isic")
        _retag(tmp_path / f"trap{k}", trap_seed=k)
        for g in ("binary", "seg"):
            fake_run(tmp_path / "runs" / f"{g}-t{k}", tmp_path / f"trap{k}", m, g, 0, 0.5,
                     summaries=("image",) if g == "binary" else ("mean",))
    cli(["report", tmp_path / "runs", "--out", tmp_path / "rep"])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Mean ± sd over trap sets" in md and "trap-test AUROC (the study's robust AUROC)" in md
    assert "ours is overall AUROC on the trap test set" in md and "0.360" in md and "0.730" in md
    assert "trap set 2 seed 0" in md
    # The lesion-overlap row: study_like's masks are 3x3 boxes on 8 px images (14%), never over half.
    assert "lesion overlap (test)" in md and "0% (n=" in md


@pytest.mark.e2e
def test_mask_budget_figure(tmp_path, cli):
    m = study_like(tmp_path / "ds", n=300)
    fake_run(tmp_path / "runs" / "binary", tmp_path / "ds", m, "binary", 0, 0.7)
    for kept in (5, 20, 40):
        run = fake_run(tmp_path / "runs" / f"seg-{kept}", tmp_path / "ds", m, "seg", 0, 0.7 - kept / 100,
                       summaries=("mean",))
        text = (run / "config.toml").read_text() + f"mask_budget = {kept}\n"
        (run / "config.toml").write_text(text)
        _budget(run, m, kept)
    cli(["report", tmp_path / "runs", "--out", tmp_path / "rep"])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "AUROC against the number of training masks" in md
    assert (tmp_path / "rep" / "figures" / "mask_budget.png").exists()
    assert "| seg masks=20 |" in md or "seg masks=20" in md


def test_specificity_follows_granularity():
    from spurspec.training.data.granularity import parse

    assert parse("binary").specificity(64) == 1
    assert parse("grid:4").specificity(64) == 16
    assert parse("seg").specificity(64) == 64 * 64
    assert parse("bbox").specificity(64) is None
    assert [g for g in sorted(["seg", "grid:8", "binary", "grid:2", "bbox"], key=lambda n: parse(n).order)] == \
        ["binary", "bbox", "grid:2", "grid:8", "seg"]
    assert np.isfinite(parse("grid:2").specificity(8))
