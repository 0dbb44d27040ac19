"""`--pretrained imagenet` without network: weights written by the test under their real file names
into a temporary TORCH_HOME load into the encoder (torchvision names for ResNets, Cadene's SENet
names for SE-ResNeXt-50); a missing file with no network is a ConfigError naming the file, the
folder and the URL; a model without ImageNet weights is refused before anything runs."""

from __future__ import annotations

import re
import urllib.error

import pytest
import torch
from imagenet_builder import cadene_names, random_like

from spurspec.errors import ArtefactError, ConfigError
from spurspec.training import models
from spurspec.training.models import pretrained, weights

torch.set_num_threads(1)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty torch cache, and a network that is never reached: any download attempt fails."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    calls = []

    def offline(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder, calls


def test_resnet18_loads_torchvision_file_from_the_cache(cache):
    folder, calls = cache
    model = models.build("resnet18", 1, pixel=True)
    # torchvision's file: the encoder's names plus its classifier, no BatchNorm batch counters.
    state = {k: v for k, v in random_like(model.encoder.net.state_dict()).items() if not k.endswith("num_batches_tracked")}
    state |= {"fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)}
    torch.save(state, folder / "resnet18-f37072fd.pth")
    assert weights.load_pretrained(model, "imagenet") == len(state) - 2
    loaded = model.encoder.net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("fc."))
    assert calls == []  # read offline


def test_study_pixel_encoder_loads_the_se_resnext50_file_withcadene_names(cache):
    folder, calls = cache
    model = models.build("study", 3, pixel=True)
    ours = {k: v for k, v in random_like(model.encoder.net.state_dict()).items() if not k.endswith("num_batches_tracked")}
    state = dict(cadene_names(k, v) for k, v in ours.items())
    assert {"layer1.0.se_module.fc1.weight", "layer1.0.bn3.running_var", "layer1.0.downsample.0.weight",
            "layer0.conv1.weight"} <= set(state)
    assert state["layer1.0.se_module.fc1.weight"].shape == (16, 256, 1, 1)
    state |= {"last_linear.weight": torch.randn(1000, 2048), "last_linear.bias": torch.randn(1000)}
    torch.save(state, folder / "se_resnext50_32x4d-a260b3a4.pth")
    assert weights.load_pretrained(model, "imagenet") == len(ours)
    loaded = model.encoder.net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in ours.items())
    assert calls == []


def test_missing_file_without_network_names_file_folder_and_url(cache):
    folder, calls = cache
    with pytest.raises(ConfigError) as err:
        weights.load_pretrained(models.build("study", 1, pixel=False), "imagenet")
    message = str(err.value)
    assert "resnet50-0676ba61.pth" in message and str(folder) in message
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in message and "\n" not in message
    assert calls == ["https://download.pytorch.org/models/resnet50-0676ba61.pth"]


def test_broken_or_incomplete_cached_file_is_refused(cache):
    folder, _ = cache
    (folder / "resnet18-f37072fd.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ArtefactError, match="resnet18-f37072fd.pth: cached ImageNet weights do not load"):
        weights.load_pretrained(models.build("resnet18", 1, pixel=False), "imagenet")
    model = models.build("resnet18", 1, pixel=False)
    code = dict(model.encoder.net.state_dict()) | {"fc": torch.nn.Linear(2, 2)}  # pickled code, not tensors
    torch.save(code, folder / "resnet18-f37072fd.pth")
    with pytest.raises(ArtefactError, match="do not load"):
        weights.load_pretrained(model, "imagenet")
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, folder / "resnet18-f37072fd.pth")
    with pytest.raises(ArtefactError, match="missing or of another shape"):
        weights.load_pretrained(models.build("resnet18", 1, pixel=False), "imagenet")


def test_model_without_imagenet_weights_is_refused(cache):
    with pytest.raises(ConfigError, match="'small' has no standard ImageNet weights; models with them: resnet18, resnet50, study"):
        models.check("small", "imagenet")
    models.check("study", "imagenet")
    models.check("small", None)
    with pytest.raises(ConfigError, match="no standard ImageNet weights"):
        weights.load_pretrained(models.build("small", 1, pixel=False), "imagenet")


def test_every_imagenet_file_is_named_with_its_hash_prefix():
    """torch.hub checks the SHA-256 prefix in the name when it downloads; a name without one would
    skip the check."""
    for source in pretrained.SOURCES.values():
        assert re.search(r"-[0-9a-f]{8}\.pth$", source.file_name), source.file_name
