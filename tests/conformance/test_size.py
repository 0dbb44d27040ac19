"""Row "size": the study trained at 512 px. Both study pipelines ingest every dataset at 512 and
train under the preset; spurspec's own ingest default is smaller, as the row says."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from spurspec.datasets.siim import Config

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


@pytest.mark.parametrize("name", ["siim-study.toml", "isic-study.toml"])
def test_the_study_pipelines_ingest_at_512_under_the_preset(name):
    study = tomllib.loads((PIPELINES / name).read_text(encoding="utf-8"))
    assert study["datasets"] and {d["size"] for d in study["datasets"].values()} == {512}
    assert study["train"]["preset"] == "study"


def test_the_default_is_smaller():
    assert Config(root=Path("."), out=Path(".")).size == 256
