"""Row "precision": the study trained in fp32. Under `--preset study` a CUDA run computes in fp32
(no autocast, no gradient scaler) unless the user asks for autocast, by flag or in a config file;
spurspec's default autocasts on CUDA. A run recorded with `amp = true` resumes with it."""

from __future__ import annotations

import pytest
import torch

import spurspec.training
from spurspec.config import build, resolve
from spurspec.training.config import TrainConfig
from spurspec.training.trainer import accelerator_options

CUDA = torch.device("cuda", 0)  # accelerator_options only reads the device's type: no GPU needed


def dtype_on_cuda(cfg: TrainConfig) -> torch.dtype | None:
    return accelerator_options(CUDA, cfg.amp, bf16=True)[0]


def test_the_preset_trains_in_fp32_and_the_default_autocasts():
    assert dtype_on_cuda(build(TrainConfig, {"preset": "study"})) is None  # the study's fp32
    assert dtype_on_cuda(TrainConfig()) == torch.bfloat16


def test_the_user_asks_for_autocast_by_flag_or_config(tmp_path):
    assert resolve(TrainConfig, None, {"preset": "study", "amp": True}).amp is True
    toml = tmp_path / "c.toml"
    toml.write_text('preset = "study"\namp = true\n')
    assert resolve(TrainConfig, toml, {"amp": None}).amp is True  # also a study run recorded before
    assert resolve(TrainConfig, toml, {"amp": False}).amp is False


class Captured(Exception):
    pass


@pytest.mark.parametrize(("flags", "amp"), [([], False), (["--amp"], True), (["--no-amp"], False)])
def test_the_command_line_leaves_the_preset_alone_unless_asked(cli, monkeypatch, tmp_path, flags, amp):
    seen: list[TrainConfig] = []

    def fake_train(cfg, **kwargs):
        seen.append(cfg)
        raise Captured

    monkeypatch.setattr(spurspec.training, "train", fake_train)
    result = cli(["train", tmp_path, "--granularity", "seg", "--out", tmp_path / "run", "--preset", "study", *flags],
                 expect=None)
    assert isinstance(result.exception, Captured)
    assert seen[0].amp is amp
