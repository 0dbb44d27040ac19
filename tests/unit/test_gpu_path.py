"""The GPU path's branches run on a CPU through the same code (issue 17): the trainer chooses bf16
autocast (fp16 with the scaler where bf16 is missing) and channels_last on CUDA only; a training
step and a prediction under bf16 autocast with channels_last inputs (what a CUDA run does) give
finite fp32 losses that fall, for the binary and the pixel model, and stay close to fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spurspec.errors import ConfigError
from spurspec.training import loop, models
from spurspec.training.config import TrainConfig
from spurspec.training.models.heads import PixelHead
from spurspec.training.trainer import accelerator_options, check

CPU = torch.device("cpu")
S = 32


def test_accelerator_options_choose_the_gpu_path_on_cuda_only():
    cuda = torch.device("cuda", 0)
    assert accelerator_options(cuda, amp=True, bf16=True) == (torch.bfloat16, True)
    assert accelerator_options(cuda, amp=True, bf16=False) == (torch.float16, True)
    assert accelerator_options(cuda, amp=False, bf16=True) == (None, True)
    assert accelerator_options(CPU, amp=True) == (None, False)


def _batch(pixel: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(8, 1, S, S, generator=g) * 0.4 - 0.8
    target = torch.zeros(8, S, S)
    target[1::2, 8:20, 8:20] = 1
    image[:, 0] += target
    batch = {"image": image, "label": (torch.arange(8) % 2).float(), "row": torch.arange(8),
             "epoch": torch.zeros(8, dtype=torch.long)}
    return {**batch, "target": target, "labelled": torch.ones(8, dtype=torch.bool)} if pixel else batch


def _step(pixel: bool, amp_dtype, channels_last: bool) -> loop.Step:
    torch.manual_seed(0)
    model = models.build("small", 1, pixel=pixel)
    model = model.to(CPU, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return loop.Step(model, optimizer, scaler, CPU, amp_dtype, pixel, "ce+dice", 1.0, channels_last,
                     head=PixelHead(2) if pixel else None)


@pytest.mark.parametrize("pixel", [False, True])
def test_bf16_autocast_and_channels_last_train_and_predict_like_fp32(pixel):
    batch = _batch(pixel)
    gpu_like, fp32 = _step(pixel, torch.bfloat16, True), _step(pixel, None, False)
    assert gpu_like.inputs(batch).is_contiguous(memory_format=torch.channels_last)
    with gpu_like.autocast():
        assert gpu_like.model(gpu_like.inputs(batch)).dtype == torch.bfloat16  # autocast is really on
    losses = {}
    for name, step in (("gpu", gpu_like), ("fp32", fp32)):
        losses[name] = [loop.train_epoch(step, [batch], lambda n, loss: None)["loss_sum"] / 8 for _ in range(12)]
    assert all(np.isfinite(losses["gpu"])) and np.mean(losses["gpu"][-3:]) < 0.8 * np.mean(losses["gpu"][:3])
    assert abs(losses["gpu"][0] - losses["fp32"][0]) < 0.05 * losses["fp32"][0]  # bf16 keeps ~3 digits
    out = loop.predict(gpu_like, [batch], (lambda p: p.flatten(1).mean(1)) if pixel else None)
    assert out["score"].dtype == np.float64 and np.isfinite(out["loss"]).all()


def test_compile_is_refused_for_pixel_models_before_anything_runs():
    with pytest.raises(ConfigError, match="--compile applies to binary models only"):
        check(TrainConfig(granularity="seg", compile=True))
    check(TrainConfig(granularity="binary", compile=True))
