"""The standard ImageNet weights behind `--pretrained imagenet`: where each file is published, the
name it has in torch's cache (`torch.hub.get_dir()/checkpoints`, i.e. $TORCH_HOME/hub/checkpoints),
how its tensor names map to spurspec's encoders, and the input normalisation of the ImageNet-shaped
models (the weights' own, or the study's per dataset).
Reads the cached file; fetches it there through torch.hub (hash-checked) only when it is missing,
so runs after the first are offline. Writes nothing else."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from spurspec.errors import ArtefactError, ConfigError
from spurspec.training.models.choices import NORMALISATIONS

# Normalisation on the [0, 1] image. RGB: ImageNet's per-channel statistics (what every weights
# file below was trained with). Grey images are replicated to 3 channels and normalised with the
# red channel's values on every channel, as the study did (mean 0.485, std 0.229).
RGB_MEAN, RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GREY_MEAN, GREY_STD = (0.485,) * 3, (0.229,) * 3
# The study's ISIC loader normalised with ISIC's own per-channel statistics, not ImageNet's.
ISIC_MEAN, ISIC_STD = (0.6046, 0.6081, 0.6079), (0.1858, 0.1864, 0.1963)


def input_stats(normalisation: str, source: str | None, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) on 3 channels of the [0, 1] image for a dataset from ingest source `source`:
    the one answer training, evaluation, probes and predictions all build their input stem from."""
    if normalisation not in NORMALISATIONS:
        raise ConfigError(f"normalisation {normalisation!r} is not one of: {', '.join(NORMALISATIONS)}")
    if channels == 1:
        return GREY_MEAN, GREY_STD
    if normalisation == "study" and source == "isic":
        return ISIC_MEAN, ISIC_STD
    return RGB_MEAN, RGB_STD


@dataclass(frozen=True)
class Weights:
    url: str
    publisher: str  # who publishes the file, for docs/training.md and error messages
    rename: Callable[[str, torch.Tensor], tuple[str, torch.Tensor]] | None = None  # file names -> encoder names

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _cadene_to_monai(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    """Cadene's pretrainedmodels SENet names (the file smp and MONAI both load) -> MONAI's SENet:
    convN/bnN of a block become convN.conv / convN.adn.N, downsample becomes project, and the
    squeeze-excitation 1x1 convolutions become linear layers (same numbers, 2-D weights)."""
    rules = (
        (r"^(layer[1-4]\.\d+\.)conv(\d)\.(\w+)$", r"\1conv\2.conv.\3"),
        (r"^(layer[1-4]\.\d+\.)bn(\d)\.(\w+)$", r"\1conv\2.adn.N.\3"),
        (r"^(layer[1-4]\.\d+\.)se_module\.fc1\.(\w+)$", r"\1se_layer.fc.0.\2"),
        (r"^(layer[1-4]\.\d+\.)se_module\.fc2\.(\w+)$", r"\1se_layer.fc.2.\2"),
        (r"^(layer[1-4]\.\d+\.)downsample\.0\.(\w+)$", r"\1project.conv.\2"),
        (r"^(layer[1-4]\.\d+\.)downsample\.1\.(\w+)$", r"\1project.adn.N.\2"),
    )
    for pattern, replacement in rules:
        if re.match(pattern, key):
            if ".se_module." in key and value.ndim == 4:
                value = value.flatten(1)
            return re.sub(pattern, replacement, key), value
    return key, value


# The file names carry the first hex digits of the file's SHA-256, which torch.hub checks on download.
# torchvision's IMAGENET1K_V1 files are what the study's code loaded through torchvision's model_urls
# (and what `pretrained=True` meant); the SE-ResNeXt-50 file is the one smp's
# `encoder_weights="imagenet"` fetched when the study ran (smp >= 0.5 serves the same tensors from
# the Hugging Face hub), and the one MONAI's SEResNext50(pretrained=True) fetches.
SOURCES: dict[str, Weights] = {
    "resnet18": Weights("https://download.pytorch.org/models/resnet18-f37072fd.pth",
                        "torchvision ResNet18_Weights.IMAGENET1K_V1"),
    "resnet50": Weights("https://download.pytorch.org/models/resnet50-0676ba61.pth",
                        "torchvision ResNet50_Weights.IMAGENET1K_V1"),
    "se_resnext50_32x4d": Weights("http://data.lip6.fr/cadene/pretrainedmodels/se_resnext50_32x4d-a260b3a4.pth",
                                  "Cadene pretrainedmodels, as used by smp and MONAI", _cadene_to_monai),
}


def cache_dir() -> Path:
    """Where torch keeps downloaded weights: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def load(name: str) -> dict[str, torch.Tensor]:
    """The state dict of SOURCES[name] with the encoder's tensor names: read from the cache, fetched
    into it first when missing. No file and no network: ConfigError naming the file, the folder to
    put it in and the URL. A cached file that does not load: ArtefactError naming it."""
    weights = SOURCES[name]
    folder = cache_dir()
    path = folder / weights.file_name
    cached = path.is_file()
    try:
        state = torch.hub.load_state_dict_from_url(weights.url, model_dir=str(folder), map_location="cpu",
                                                   progress=False, check_hash=True, weights_only=True)
    except Exception as exc:  # urllib, hash and unpickling errors have no common base worth naming
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        if cached:
            raise ArtefactError(f"{path}: cached ImageNet weights do not load ({reason}); delete the file "
                                f"to fetch it again") from None
        raise ConfigError(f"ImageNet weights {weights.file_name} are not in {folder} and could not be "
                          f"fetched ({reason}); download {weights.url} into {folder} "
                          f"(the folder follows $TORCH_HOME)") from None
    if not isinstance(state, dict):
        raise ArtefactError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    rename = weights.rename or (lambda key, value: (key, value))
    return dict(rename(k, v) for k, v in state.items() if isinstance(v, torch.Tensor))
