"""Pretrained weights into a built model's encoder: `load_pretrained(model, source)` reads the
standard ImageNet file of the encoder (fetched once into the cache by `pretrained.load`) or a
local state dict, weights only, never code. Reads weight files; writes nothing."""

from __future__ import annotations

from pathlib import Path

import torch

from spurspec.errors import ArtefactError, ConfigError, InputError
from spurspec.training import models
from spurspec.training.checkpoint import torch_load
from spurspec.training.models import pretrained
from spurspec.training.models.choices import IMAGENET
from spurspec.training.models.networks import Net


def load_pretrained(model: Net, source: str | Path) -> int:
    """Fill the encoder from `source`: "imagenet" (the encoder's standard ImageNet weights, every
    tensor required) or a local state dict (weights_only: never runs code; keys may be the
    backbone's own or prefixed `encoder.net.`; the tensors that fit load). Returns the number of
    tensors loaded."""
    if str(source) == IMAGENET:
        name = model.encoder.imagenet
        if name is None:
            raise ConfigError("--pretrained imagenet: this model's encoder has no standard ImageNet weights "
                              f"(models with them: {', '.join(_imagenet_models())})")
        where = pretrained.cache_dir() / pretrained.SOURCES[name].file_name
        return _load_encoder(model, pretrained.load(name), where, complete=True)
    return _load_encoder(model, _read_state_dict(Path(source)), Path(source), complete=False)


def _imagenet_models() -> list[str]:
    return [n for n in models.MODELS.names() if models.has_imagenet(n)]


def _read_state_dict(path: Path) -> dict:
    state = torch_load(path, "pretrained weights file", InputError)  # weights only, never code
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    return state


def _load_encoder(model: Net, state: dict, where: Path, complete: bool) -> int:
    """Load the tensors of `state` that fit the encoder (a 3-channel first convolution is summed to
    fit 1-channel input). `complete`: every encoder tensor must be there (BatchNorm's batch counter
    aside, which old files lack)."""
    target = model.encoder.net.state_dict()
    matched = {}
    for key, value in state.items():
        name = key.removeprefix("encoder.net.").removeprefix("module.")
        if name not in target or not isinstance(value, torch.Tensor):
            continue
        want = target[name]
        if value.ndim == 4 and want.ndim == 4 and value.shape[1] != want.shape[1] and want.shape[1] == 1:
            value = value.sum(dim=1, keepdim=True)
        if value.shape == want.shape:
            matched[name] = value
    if not matched:
        raise ArtefactError(f"{where}: no tensor matches the encoder of this model; is it the right architecture?")
    missing = [k for k in target if k not in matched and not k.endswith("num_batches_tracked")]
    if complete and missing:
        raise ArtefactError(f"{where}: {len(missing)} encoder tensor(s) missing or of another shape, "
                            f"e.g. {', '.join(missing[:3])}; is it the right file?")
    model.encoder.net.load_state_dict(matched, strict=False)
    return len(matched)
