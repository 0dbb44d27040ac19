"""A pixel model on images whose side is not a multiple of 32 is refused before anything is
written, with one line naming the dataset and the sizes that work (it stopped with a torch
RuntimeError traceback mid-step: the U-Net's skip connections no longer line up). Binary models
take any size."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_a_pixel_model_refuses_a_size_its_unet_cannot_take(cli, tmp_path):
    ds = tmp_path / "ds"
    cli(["ingest", "synthetic", "--out", ds, "--n", 60, "--size", 48])
    res = cli(["train", ds, "--granularity", "seg", "--epochs", 1, "--out", tmp_path / "seg"], expect=2)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {ds}: images of 48 px cannot train a pixel model: its U-Net halves the image 5 times, "
                     "so the size must be a multiple of 32 (e.g. 32 or 64); re-ingest with --size 64"], res.stderr
    assert not (tmp_path / "seg").exists()
    cli(["train", ds, "--granularity", "binary", "--epochs", 1, "--batch-size", 16, "--out", tmp_path / "binary"])
