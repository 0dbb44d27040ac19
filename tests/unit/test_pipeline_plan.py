"""Pipeline files: validation errors name the key and where; job keys are stable hashes of the
settings, change only with what changed, and the matrix expands as declared."""

from __future__ import annotations

import pytest

from spurspec.errors import ConfigError
from spurspec.pipeline import plan as planning
from spurspec.pipeline import spec as specs

BASE = """
[study]
name = "t"
out = "{out}"

[datasets.syn]
source = "synthetic"
n = 40

[train]
granularities = ["binary", "bbox", "grid:4"]
seeds = [0, 1]
epochs = 1

[evaluate]
bootstrap = 50
"""


def _spec(tmp_path, text=BASE):
    path = tmp_path / "p.toml"
    path.write_text(text.format(out=tmp_path / "study"))
    return specs.load(path)


def test_matrix_expands_with_boxes_and_grids(tmp_path):
    jobs = planning.plan(_spec(tmp_path))
    stages = [j.stage for j in jobs]
    assert stages.count("ingest") == 1 and stages.count("boxes") == 1
    assert stages.count("train") == 6 and stages.count("evaluate") == 6 and stages.count("report") == 1
    boxes = next(j for j in jobs if j.stage == "boxes")
    assert boxes.settings["grids"] == [4]
    binary = next(j for j in jobs if j.stage == "train" and j.settings["granularity"] == "binary")
    assert binary.deps == (jobs[0].id,)  # binary does not wait for boxes
    bbox = next(j for j in jobs if j.stage == "train" and j.settings["granularity"] == "bbox")
    assert boxes.id in bbox.deps
    assert all(j.dir.parent.parent == tmp_path / "study" for j in jobs)


def test_keys_are_stable_and_change_only_downstream_of_a_change(tmp_path):
    a = {j.id for j in planning.plan(_spec(tmp_path))}
    assert a == {j.id for j in planning.plan(_spec(tmp_path))}
    changed = {j.id for j in planning.plan(_spec(tmp_path, BASE.replace("epochs = 1", "epochs = 2")))}
    same = a & changed
    assert {j.split("/")[0] for j in same} == {"ingest", "boxes"}
    assert all(j.split("/")[0] in ("ingest", "boxes") for j in same)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("[evaluate]", "[evalute]"), r"unknown section\(s\) \[evalute\]"),
        (("[study]", "[study]\nnmae = 1"), r"\[study\]: unknown key\(s\) nmae"),
        (('granularities = ["binary", "bbox", "grid:4"]', 'granularities = "binary"'), "must be a non-empty list"),
        (("seeds = [0, 1]", 'seeds = [0]\ndatasets = ["nope"]'), "dataset 'nope' is not declared"),
        (('source = "synthetic"\n', ""), r"\[datasets.syn\]: needs a `source`"),
    ],
)
def test_bad_pipeline_files_are_named(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message):
        _spec(tmp_path, BASE.replace(*edit))


def test_missing_dataset_root_is_caught_before_running(tmp_path):
    text = BASE.replace('source = "synthetic"\nn = 40', 'source = "siim"\nroot = "/no/such/siim"')
    spec = _spec(tmp_path, text)
    with pytest.raises(ConfigError, match="root = '/no/such/siim' does not exist"):
        planning.check_inputs(spec)


def test_status_reads_done_marker_and_checkpoint(tmp_path):
    jobs = planning.plan(_spec(tmp_path))
    train = next(j for j in jobs if j.stage == "train")
    assert planning.status(train) == "to do"
    ckpt = train.dir / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    assert planning.status(train) == "resume"
    train.done_marker.write_text("x")
    assert planning.status(train) == "done"


def test_methods_axis_reaches_training_settings(tmp_path):
    jobs = planning.plan(_spec(tmp_path, BASE.replace("seeds = [0, 1]", 'seeds = [0]\nmethods = ["erm"]')))
    train = [j for j in jobs if j.stage == "train"]
    assert train and all(j.settings["method"] == "erm" and "-erm-" in j.key for j in train)


def test_only_box_and_grid_runs_wait_for_boxes(tmp_path):
    text = BASE.replace('granularities = ["binary", "bbox", "grid:4"]', 'granularities = ["seg", "grid:8", "bbox"]')
    jobs = planning.plan(_spec(tmp_path, text))
    boxes = next(j for j in jobs if j.stage == "boxes")
    assert boxes.settings["grids"] == [8]
    deps = {j.settings["granularity"]: j.deps for j in jobs if j.stage == "train" and j.settings["seed"] == 0}
    assert deps["seg"] == (jobs[0].id,)  # masks come from ingest
    assert boxes.id in deps["grid:8"] and boxes.id in deps["bbox"]
