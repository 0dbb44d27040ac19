"""Shipped pipelines never rot: every file in pipelines/ runs end to end (ingest, boxes, train,
evaluate, report) through the real CLI, `spurspec run FILE --set ...`, with its data paths and
sizes overridden to tiny data made here, one epoch and a few bootstrap replicates. Synthetic
datasets shrink; SIIM datasets get a SIIM-format folder around real label rows (skipped without
../shared/data); ISIC datasets get a made-up ISIC folder with trap sets. The study preset's
ImageNet weights come from a temporary torch cache of random weights under the real file names,
with every download made to fail, so the weights load offline as they would after a first fetch."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from imagenet_builder import write_study_weights
from isic_builder import HEADER, bias_rows, write_csv, write_trap_set
from isic_builder import write_folder as write_isic_folder
from siim_builder import pick_real
from siim_builder import write_folder as write_siim_folder

from spurspec.artefacts.layout import RunLayout, StudyLayout
from spurspec.pipeline import plan as planning
from spurspec.pipeline import run_record
from spurspec.pipeline import spec as specs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PIPELINES = sorted(p.name for p in (PROJECT_ROOT / "pipelines").glob("*.toml"))

# Every pipeline: one epoch in batches of 4, one seed, few bootstrap replicates and saliency maps.
TINY_RUN = {"train.epochs": 1, "train.batch_size": 4, "train.seeds": [0], "evaluate.bootstrap": 20,
            "evaluate.n_saliency": 2}
# The pixel classes each source must train with: ISIC's benign lesions have masks (three classes).
PIXEL_CLASSES = {"isic": 3, "siim": 2}
TRAP_SEEDS = range(1, 6)
STUDY_GRANULARITIES = ("binary", "seg")


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory) -> Path:
    """A torch cache holding the study model's ImageNet files (random numbers), written once."""
    home = tmp_path_factory.mktemp("torch")
    write_study_weights(home / "hub" / "checkpoints")
    return home


@pytest.fixture
def offline(torch_home, monkeypatch) -> list[str]:
    """TORCH_HOME at the cache above, and a network that is never reached: downloads fail."""
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    calls: list[str] = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return calls


@pytest.fixture(scope="session")
def siim_data(tmp_path_factory) -> dict[str, object]:
    """A SIIM-format folder (1024 px DICOMs, as the real RLE rows need) around real label rows:
    tube-labelled images of each label x tube cell for val and test, untubed ones for train."""
    from tests.conftest import real_data_dir

    real = real_data_dir()
    if not (real / "README.md").exists():
        pytest.skip(f"real label files not found at {real} (set SPURSPEC_REAL_DATA)")
    rows, tubes = pick_real(real, per_cell=3, untubed=19, multi_row=5)
    root = tmp_path_factory.mktemp("siim")
    write_siim_folder(root, rows, "stage1", size=1024)
    tube_csv = root / "tubes.csv"
    tube_csv.write_text("ImageId,chest_tube\n" + "".join(f"{k},{v}\n" for k, v in tubes.items()))
    return {"root": root, "tube_labels": tube_csv, "size": 32, "workers": 1}


@pytest.fixture(scope="session")
def isic_data(tmp_path_factory) -> dict[str, object]:
    """A made-up ISIC folder of 24 images (every one with a lesion mask), its artefact file and
    trap sets 1 to 5: 12 train, 4 val, 8 test images, both labels in each split."""
    root = tmp_path_factory.mktemp("isic")
    ids = [f"ISIC_{n:07d}" for n in range(24)]
    write_isic_folder(root / "images", ids)
    rows = bias_rows(ids)
    write_csv(root / "bias.csv", HEADER, rows, ";")
    for seed in TRAP_SEEDS:
        write_trap_set(root / "traps", seed, rows[:16], rows[12:16], rows[16:])
    return {"root": root / "images", "artefacts": root / "bias.csv", "trap_sets": root / "traps", "size": 32, "workers": 1}


# Per source: the fixture that makes its tiny data (the dataset options to set), or the options.
TINY_DATA = {"synthetic": {"n": 120, "size": 32}, "siim": "siim_data", "isic": "isic_data"}


def _overrides(spec: specs.PipelineSpec, request) -> dict[str, object]:
    """TINY_RUN, each dataset's tiny data, and at most two datasets trained (ISIC's five trap sets
    are five copies of one folder here; two still make trap sets an axis of the report). Under the
    study preset, a granularities matrix trains only `binary` and `seg`: the study's networks make
    checkpoints of 140 MB (best.pt) and 415 MB (last.pt) even at 32 px, and every other
    granularity runs the same code with another target (tested with the small model). Arms files
    (remedies) keep every arm: each method is its own code path."""
    values: dict[str, object] = dict(TINY_RUN)
    if len(spec.train_matrix["datasets"]) > 2:
        values["train.datasets"] = spec.train_matrix["datasets"][:2]
    if spec.train_options.get("preset") == "study" and "granularities" in spec.train_matrix:
        values["train.granularities"] = [g for g in spec.train_matrix["granularities"] if g in STUDY_GRANULARITIES]
    for ds in spec.datasets.values():
        if ds.source not in TINY_DATA:
            pytest.fail(f"{spec.path} [datasets.{ds.name}]: no tiny data for source {ds.source!r}; add it to TINY_DATA")
        options = TINY_DATA[ds.source]
        options = request.getfixturevalue(options) if isinstance(options, str) else options
        values |= {f"datasets.{ds.name}.{key}": value for key, value in options.items()}
    return values | _tiny_arms(spec)


# Train fractions on tiny synthetic data (72 training images): both classes in each, and no epoch
# of 4k + 1 images, whose last batch of one the small model's BatchNorm cannot train on at 32 px.
TINY_FRACTIONS = (0.35, 0.4, 0.6)


def _tiny_arms(spec: specs.PipelineSpec) -> dict[str, object]:
    """Arms that tiny data cannot serve as written. dfr refits the last layer on one half of val
    and selects on the other, each half holding every (label, attribute) group: tiny synthetic
    data gets there with a weaker correlation (0.9 leaves one image of each minority group in
    val); the made-up SIIM and ISIC folders' few val images (about 6 and 4) cannot, so their tiny
    runs leave the dfr arm out. A mask budget given as a count (30) is more masks than tiny data
    has: it becomes 2. A train fraction (0.05) would leave a tiny training split a class short:
    the file's fractions become TINY_FRACTIONS in order, still one arm each."""
    values: dict[str, object] = {}
    arms = [{k: v for k, v in dataclasses.asdict(arm).items() if v is not None} for arm in spec.train_arms]
    if any(arm.get("method") == "dfr" for arm in arms):
        if all(ds.source == "synthetic" for ds in spec.datasets.values()):
            values = {f"datasets.{ds.name}.correlation": 0.7 for ds in spec.datasets.values()}
        else:
            arms = [arm for arm in arms if arm.get("method") != "dfr"]
    fractions = sorted({arm["train_fraction"] for arm in arms if "train_fraction" in arm})
    tiny = [arm | ({"mask_budget": 2} if isinstance(arm.get("mask_budget"), int) else {})
            | ({"train_fraction": TINY_FRACTIONS[fractions.index(arm["train_fraction"])]} if "train_fraction" in arm else {})
            for arm in arms]
    changed = tiny != [{k: v for k, v in dataclasses.asdict(a).items() if v is not None} for a in spec.train_arms]
    return values | ({"train.arms": tiny} if changed else {})


def _toml(value: object) -> str:
    """A --set value as TOML: lists and inline tables as TOML writes them, the rest as is."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str | bool) else str(value)


def _set_args(values: dict[str, object]) -> list[str]:
    """`--set KEY=VALUE` as a user would type them: paths bare, lists (of tables too) as TOML."""
    args = []
    for key, value in values.items():
        text = _toml(value) if isinstance(value, list) else str(value)
        args += ["--set", f"{key}={text}"]
    return args


@pytest.mark.parametrize("name", PIPELINES)
def test_shipped_pipeline_runs_end_to_end_on_tiny_data(cli, tmp_path, request, offline, name):
    path = PROJECT_ROOT / "pipelines" / name
    values = _overrides(specs.load(path), request)
    study = tmp_path / "study"
    result = cli(["run", path, "--out", study, *_set_args(values)])

    jobs = planning.plan(specs.load(path, out=study, overrides=_set_args(values)[1::2]))
    table = pq.read_table(StudyLayout(study).jobs_table).to_pylist()
    assert sorted(r["job"] for r in table) == sorted(j.key for j in jobs)
    assert all(r["status"] == "done" for r in table), table
    assert {j.stage for j in jobs} >= {"ingest", "train", "evaluate", "report"}
    assert run_record(study)["overrides"] == {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}
    assert (study / "report" / "report.html").exists() and "results (test split)" in result.stdout

    source_of = {j.settings["out"]: j.settings["source"] for j in jobs if j.stage == "ingest"}
    train = [j for j in jobs if j.stage == "train"]
    preset = specs.load(path).train_options.get("preset")
    for job in train:
        metrics = pq.read_table(RunLayout(job.dir).metrics).to_pylist()
        assert any(m["metric"] == "auroc" and m["value"] is not None for m in metrics), job.id
        settings = json.loads((job.dir / "provenance" / "train.json").read_text())["settings"]
        assert settings["preset"] == preset
        expected = PIXEL_CLASSES.get(source_of[job.settings["dataset"]])
        if settings["pixel_classes"] is not None and expected is not None:
            assert settings["pixel_classes"] == expected, job.id
    if preset == "study":  # the preset's ImageNet weights, read from the cache for every run
        assert result.stdout.count("encoder tensors from imagenet") == len(train)
    assert offline == []
