"""Pipeline files: validation errors name the key and where; job keys are stable hashes of the
settings, change only with what changed, and the matrix expands as declared."""

from __future__ import annotations

import re

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
        (("[evaluate]", "[evalute]"), r"unknown section \[evalute\]; did you mean \[evaluate\]\?"),
        (("[study]", "[study]\nnmae = 1"), r"\[study\]: unknown key 'nmae'; did you mean 'name'\?"),
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


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("train.epochs=2", 2),
        ("train.lr=5e-4", 5e-4),
        ("train.amp=false", False),
        ('train.granularities=["binary", "seg"]', ["binary", "seg"]),
        ('train.model="study"', "study"),
        ("train.model=study", "study"),  # not TOML: a plain string
        ("datasets.syn.root=/data/siim acr", "/data/siim acr"),  # paths need no quotes
        ("train.model=a\nb = 1", "a\nb = 1"),  # a line break cannot declare another key
    ],
)
def test_set_values_are_toml_else_plain_strings(text, value):
    override = specs.parse_override(text)
    assert override.value == value and override.dotted == text.split("=", 1)[0]


def test_set_overrides_reach_the_jobs_and_change_their_keys(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(BASE.format(out=tmp_path / "study"))
    plain = planning.plan(specs.load(path))
    sets = ["train.epochs=3", "datasets.syn.n=60", 'train.granularities=["seg"]', "evaluate.bootstrap=20",
            "resources.default.cpus=2"]
    spec = specs.load(path, overrides=sets)
    assert spec.overrides == {"train.epochs": 3, "datasets.syn.n": 60, "train.granularities": ["seg"],
                              "evaluate.bootstrap": 20, "resources.default.cpus": 2}
    jobs = planning.plan(spec)
    train = [j for j in jobs if j.stage == "train"]
    assert [j.settings["granularity"] for j in train] == ["seg", "seg"] and all(j.settings["epochs"] == 3 for j in train)
    assert next(j for j in jobs if j.stage == "ingest").settings["n"] == 60
    assert all(j.resources == {"cpus": 2} for j in jobs)
    assert not {j.id for j in jobs} & {j.id for j in plain}  # every job changed, so every key did


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train.epochs", r"--set 'train.epochs': expected KEY=VALUE"),
        ("train.epochs=", "expected KEY=VALUE"),
        ("train..epochs=2", "expected KEY=VALUE"),
        ("=2", "expected KEY=VALUE"),
        ("trian.epochs=2", r"--set trian.epochs=2: unknown section \[trian\]; did you mean \[train\]\? valid: study, datasets"),
        ("datasets.sin.n=3", r"declares no \[datasets.sin\]; declared: syn"),
        ("train.epochs.max=3", "train.epochs is a value, not a table"),
        ("train.epochz=3", None),  # the stage's own check names it when the job is validated
        ("resources.gpu.cpus=2", r"\[resources.gpu\]: unknown stage 'gpu'; valid: default, ingest"),
        ("train.seeds=3", "`seeds` must be a non-empty list"),
    ],
)
def test_bad_set_is_one_line_config_error(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(BASE.format(out=tmp_path / "study"))
    if message is None:
        from spurspec.pipeline.jobs import validate

        jobs = planning.plan(specs.load(path, overrides=[text]))
        with pytest.raises(ConfigError, match="unknown key 'epochz'; did you mean 'epochs'\\?"):
            validate(next(j for j in jobs if j.stage == "train"))
        return
    with pytest.raises(ConfigError, match=message) as err:
        specs.load(path, overrides=[text])
    assert "\n" not in str(err.value)


def test_resources_default_applies_to_every_stage_under_its_own(tmp_path):
    text = BASE + "\n[resources.default]\ncpus = 2\ntime_min = 30\n\n[resources.train]\ncpus = 8\n"
    jobs = planning.plan(_spec(tmp_path, text))
    assert {j.stage: j.resources for j in jobs}["train"] == {"cpus": 8, "time_min": 30}
    assert all(j.resources == {"cpus": 2, "time_min": 30} for j in jobs if j.stage != "train")


@pytest.mark.parametrize(
    ("train", "refused"),
    [
        ('pretrained = "imagenet"\nmodel = "study"', False),
        ('pretrained = "none"', False),
        ('preset = "study"', False),  # the preset's "imagenet" is a name, not a file
        ('preset = "study"\npretrained = "none"', False),
        ('pretrained = "/no/such/weights.pt"', True),
        ('preset = "study"\npretrained = "/no/such/weights.pt"', True),
    ],
)
def test_pretrained_is_checked_as_a_path_only_when_it_is_one(tmp_path, train, refused):
    spec = _spec(tmp_path, BASE.replace("epochs = 1", f"epochs = 1\n{train}"))
    if refused:
        with pytest.raises(ConfigError, match=r"\[train\]: pretrained = '/no/such/weights.pt' does not exist"):
            planning.check_inputs(spec)
    else:
        planning.check_inputs(spec)
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    planning.check_inputs(_spec(tmp_path, BASE.replace("epochs = 1", f"epochs = 1\npretrained = \"{weights}\"")))


def test_a_huge_matrix_states_its_size_and_needs_yes(tmp_path):
    from spurspec.errors import ConfigError
    from spurspec.pipeline import RunOptions, prepare

    path = tmp_path / "big.toml"
    path.write_text('[datasets.syn]\nsource = "synthetic"\n\n[train]\ngranularities = ["binary", "seg"]\n'
                    f"seeds = {list(range(300))}\n")
    with pytest.raises(ConfigError, match=r"plans 1202 jobs \(ingest 1, train 600, evaluate 600, report 1\).*--yes"):
        prepare(RunOptions(pipeline=path, out=tmp_path / "s"))
    prepared = prepare(RunOptions(pipeline=path, out=tmp_path / "s", yes=True))
    jobs = prepared.jobs
    assert len(jobs) == 1202


ARMS = BASE.replace('granularities = ["binary", "bbox", "grid:4"]\n', "").replace("[evaluate]", """[[train.arms]]
name = "reference"
granularity = "binary"

[[train.arms]]
granularity = "bbox"
method = "erm"

[[train.arms]]
granularity = "seg"
mask_budget = 5
method = "seg-spl"

[evaluate]""")


def _train(jobs):
    return [j for j in jobs if j.stage == "train"]


def test_arms_key_each_job_as_the_product_form_does(tmp_path):
    """An arm's job has the key and settings of the product form's job for the same cell, so a
    study moved to arms keeps its finished jobs."""
    arms = planning.plan(_spec(tmp_path, ARMS))
    crossed = {}
    for axes in ('["binary"]', '["bbox"]\nmethods = ["erm"]', '["seg"]\nmask_budgets = [5]\nmethods = ["seg-spl"]'):
        product = BASE.replace('["binary", "bbox", "grid:4"]', axes)
        crossed |= {j.key: j for j in _train(planning.plan(_spec(tmp_path, product)))}
    assert len(_train(arms)) == len(crossed) == 6
    for job in _train(arms):
        assert job.key in crossed, job.label
        assert job.settings == crossed[job.key].settings and job.deps == crossed[job.key].deps
    assert {j.id for j in arms if j.stage == "ingest"} == {j.id for j in planning.plan(_spec(tmp_path, BASE)) if j.stage == "ingest"}


def test_arms_run_datasets_by_seeds_by_arms_with_boxes_only_where_needed(tmp_path):
    jobs = planning.plan(_spec(tmp_path, ARMS))
    train = _train(jobs)
    assert [(j.settings["seed"], j.settings["granularity"]) for j in train] == \
        [(0, "binary"), (0, "bbox"), (0, "seg"), (1, "binary"), (1, "bbox"), (1, "seg")]
    assert train[0].label == "syn binary seed=0 (reference)" and "method" not in train[0].settings
    assert train[2].settings["mask_budget"] == 5 and train[2].settings["method"] == "seg-spl"
    boxes = [j for j in jobs if j.stage == "boxes"]
    assert len(boxes) == 1 and [j for j in train if boxes[0].id in j.deps] == [train[1], train[4]]
    binary_only = ARMS.split("[[train.arms]]")[0] + '[[train.arms]]\ngranularity = "binary"\n\n[evaluate]\nbootstrap = 50\n'
    assert not [j for j in planning.plan(_spec(tmp_path, binary_only)) if j.stage == "boxes"]


def test_set_seeds_narrows_an_arms_matrix(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(ARMS.format(out=tmp_path / "study"))
    train = _train(planning.plan(specs.load(path, overrides=["train.seeds=[0]"])))
    assert [j.settings["seed"] for j in train] == [0, 0, 0]
    inline = specs.load(path, overrides=['train.arms=[{granularity = "seg", mask_budget = 0.5}]'])
    assert inline.train_arms == (specs.Arm("seg", mask_budget=0.5),)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("seeds = [0, 1]", 'seeds = [0, 1]\ngranularities = ["seg"]'), r"p.toml \[train\]: `granularities` cannot stand beside `arms`"),
        (("seeds = [0, 1]", 'seeds = [0, 1]\nmethods = ["erm"]\nmask_budgets = [3]'),
         r"p.toml \[train\]: `mask_budgets`, `methods` cannot stand beside `arms`"),
        (('name = "reference"\n', 'name = "reference"\nmethdo = "erm"\n'), r"\[\[train.arms\]\] #1: unknown key 'methdo'; did you mean 'method'\?"),
        (('granularity = "bbox"\n', ""), r"\[\[train.arms\]\] #2: needs a `granularity`"),
        (("mask_budget = 5", 'mask_budget = "5"'), r"#3: `mask_budget` = '5' must be a number"),
        (("mask_budget = 5", "mask_budget = true"), r"#3: `mask_budget` = True must be a number"),
        (('granularity = "bbox"\nmethod = "erm"', 'granularity = "binary"'), r"#2: trains what arm #1 trains"),
        (('method = "erm"', 'method = "erm"\nname = "reference"'), r"#2: name 'reference' is taken"),
        (('name = "reference"', f'name = "{"x" * 40}"'), r"#1: `name` must be a short label"),
    ],
)
def test_bad_arms_are_named(tmp_path, edit, message):
    assert edit[0] in ARMS
    with pytest.raises(ConfigError, match=message):
        _spec(tmp_path, ARMS.replace(*edit, 1))


@pytest.mark.parametrize("value", ["[]", '["binary"]', '"binary"'])
def test_arms_must_be_a_list_of_tables(tmp_path, value):
    path = tmp_path / "p.toml"
    path.write_text(ARMS.format(out=tmp_path / "study"))
    with pytest.raises(ConfigError, match="`arms` must be a non-empty list of tables"):
        specs.load(path, overrides=[f"train.arms={value}"])


def test_mask_budget_study_keeps_its_jobs_with_arms():
    """pipelines/mask-budget.toml, moved from two product-form files to arms: its training jobs
    are the former file's (the reference file's settings with its former axes) and the reference
    file's, key for key."""
    from pathlib import Path

    pipelines = Path(__file__).resolve().parents[2] / "pipelines"
    jobs = _train(planning.plan(specs.load(pipelines / "mask-budget.toml")))
    arms = {j.key for j in jobs if "train_fraction" not in j.settings}
    references = {j.key for j in _train(planning.plan(specs.load(pipelines / "mask-budget-reference.toml")))}
    former = specs.load(pipelines / "mask-budget-reference.toml", overrides=[
        'train.granularities=["seg"]', "train.mask_budgets=[0.05, 0.1, 0.2]", 'train.methods=["erm", "seg-ssl", "seg-spl"]'])
    budgets = {j.key for j in _train(planning.plan(former))}
    assert len(references) == 6 and len(budgets) == 27 and arms == references | budgets
    # issue 24: the study's mode beside them, each fraction a job of its own
    study = [j for j in jobs if "train_fraction" in j.settings]
    assert len(study) == 27 and {j.settings["train_fraction"] for j in study} == {0.05, 0.1, 0.2}
    assert all("-f0." in j.key and "mask_budget" not in j.settings for j in study)


def _huge(tmp_path, seeds=1000):
    """5 granularities x `seeds` seeds: 10,003 jobs at 1,000 seeds (ingest, boxes, 5,000 training
    runs, 5,000 evaluations, the report)."""
    path = tmp_path / "huge.toml"
    path.write_text('[datasets.syn]\nsource = "synthetic"\nsize = 32\n\n[train]\n'
                    f'granularities = ["binary", "bbox", "seg", "grid:4", "grid:8"]\nseeds = {list(range(seeds))}\n')
    return path


def test_a_10000_job_study_is_planned_and_checked_without_running_anything(tmp_path, monkeypatch):
    """Every job is checked, each distinct config built once: the 10,003 jobs hold 9 configs apart
    from their seeds and own directories (ingest, boxes, 5 training, evaluate, report)."""
    from spurspec.pipeline import RunOptions, checks, prepare

    built, build = [], checks.config_of
    monkeypatch.setattr(checks, "config_of", lambda job: built.append(job.stage) or build(job))
    prepared = prepare(RunOptions(pipeline=_huge(tmp_path), out=tmp_path / "study", dry_run=True))
    jobs = prepared.jobs
    assert len(jobs) == 10_003 and len({j.id for j in jobs}) == 10_003
    assert {s: sum(j.stage == s for j in jobs) for s in ("ingest", "boxes", "train", "evaluate", "report")} == \
        {"ingest": 1, "boxes": 1, "train": 5000, "evaluate": 5000, "report": 1}
    assert sorted(built) == sorted(["ingest", "boxes", *["train"] * 5, "evaluate", "report"])
    assert not (tmp_path / "study").exists()


def test_every_seed_is_checked_though_configs_are_built_once(tmp_path):
    from spurspec.pipeline.checks import check_jobs

    path = _huge(tmp_path, seeds=3)
    text = path.read_text()
    for seeds, message in (("[0, 1, 4294967296]", "seed must be between 0 and 4294967295, got 4294967296"),
                           ("[0, 1.5]", "`seeds` must be whole numbers, got 1.5"),
                           ("[0, true]", "`seeds` must be whole numbers, got True")):
        path.write_text(text.replace("[0, 1, 2]", seeds))
        with pytest.raises(ConfigError, match=rf"huge.toml \[train\]: {re.escape(message)}"):
            spec = specs.load(path)
            check_jobs(spec, planning.plan(spec))


def test_check_errors_name_the_file_and_table_of_an_arm_and_a_dataset(tmp_path):
    from spurspec.errors import InputError
    from spurspec.pipeline.checks import check_jobs

    spec = _spec(tmp_path, ARMS.replace("mask_budget = 5", "mask_budget = 1.5"))
    with pytest.raises(ConfigError, match=r"p.toml \[train\]: mask budget 1.5: a fraction must be in \(0, 1\]"):
        check_jobs(spec, planning.plan(spec))
    spec = _spec(tmp_path, BASE.replace("n = 40", "n = 40\nsize = 48"))
    with pytest.raises(InputError, match=r"p.toml \[datasets.syn\]: images of 48 px cannot train a pixel model"):
        check_jobs(spec, planning.plan(spec))


def test_statuses_read_only_job_directories_that_exist(tmp_path):
    jobs = planning.plan(_spec(tmp_path))
    assert set(planning.statuses(jobs).values()) == {"to do"}
    train = [j for j in jobs if j.stage == "train"]
    train[0].dir.mkdir(parents=True)
    train[0].done_marker.write_text("x")
    (train[1].dir / "checkpoints").mkdir(parents=True)
    (train[1].dir / "checkpoints" / "last.pt").write_bytes(b"")
    statuses = planning.statuses(jobs)
    assert statuses == {j.id: planning.status(j) for j in jobs}
    assert [statuses[j.id] for j in train[:3]] == ["done", "resume", "to do"]
