"""Summarising functions: probability map (B, H, W) -> one score per image."""

import pytest
import torch

from spurspec.errors import ConfigError
from spurspec.training.models import summaries


def _maps() -> torch.Tensor:
    m = torch.zeros(2, 10, 10)
    m[0, :2, :5] = 1.0  # 10 hot pixels of 100
    m[1] = 0.25
    return m


def test_mean_and_max():
    m = _maps()
    assert summaries.get("mean")(m).tolist() == pytest.approx([0.10, 0.25])
    assert summaries.get("max")(m).tolist() == pytest.approx([1.0, 0.25])


def test_topk_is_mean_of_top_percent():
    m = _maps()
    assert summaries.get("topk:10")(m).tolist() == pytest.approx([1.0, 0.25])
    assert summaries.get("topk:20")(m).tolist() == pytest.approx([0.5, 0.25])
    # at least one pixel, and topk:100 is the mean
    assert summaries.get("topk:0.01")(m).tolist() == pytest.approx([1.0, 0.25])
    assert torch.allclose(summaries.get("topk:100")(m), summaries.get("mean")(m))


@pytest.mark.parametrize("bad", ["topk", "topk:x", "topk:0", "topk:150", "median"])
def test_bad_names_are_config_errors(bad):
    with pytest.raises(ConfigError):
        summaries.get(bad)


def test_predict_summaries_are_valid():
    assert summaries.PREDICT_SUMMARIES == ("mean", "max", "topk:1", "topk:5", "topk:10")
    for name in summaries.PREDICT_SUMMARIES:
        summaries.get(name)
    assert "topk:P" in summaries.names()
