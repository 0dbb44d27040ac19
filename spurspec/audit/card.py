"""A model card: what an outside model expects and returns, so spurspec can feed it a dataset's
images and read one score per image. The card is TOML (`--card FILE`), the ONNX file's own
metadata (`metadata_props["spurspec.card"]`, which `spurspec export` writes), or flags; flags
override the file, the file overrides the model's metadata, and the input size and channels
default to the ONNX graph's fixed input shape.

  size, channels   the input is (N, channels, size, size) float32
  mean, std        per-channel normalisation of images scaled to [0, 1]: x = (image/255 - mean) / std
  output           "logit" or "probability": an image output (N,) or (N, K), read at `index`;
                   "pixel": a map (N, H, W) or (N, K, H, W), read at `index`, made one score by
                   `summary` (spurspec.training.models.summaries: mean, max, topk:P)
  index            the positive class's index in the output's class axis (ignored without one)

Pure data: reads a TOML file or text, writes TOML text; no model is opened here."""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from spurspec.errors import ConfigError, InputError
from spurspec.training.models import summaries

OUTPUTS = ("logit", "probability", "pixel")
METADATA_KEY = "spurspec.card"  # the ONNX metadata_props key that holds a card's TOML
CARD_BYTES = 64 * 1024  # a card is a few lines; a larger file is not a card


@dataclass(frozen=True)
class Card:
    size: int | None = None  # None: the model's input shape says
    channels: int | None = None
    mean: tuple[float, ...] = (0.5,)  # one value, or one per channel
    std: tuple[float, ...] = (0.5,)
    output: str = "logit"
    index: int = 0
    summary: str = summaries.DEFAULT  # pixel outputs only

    @property
    def pixel(self) -> bool:
        return self.output == "pixel"

    def check(self, where: str) -> Card:
        """Every value checked; the card with its size and channels known (or a ConfigError)."""
        if self.output not in OUTPUTS:
            raise ConfigError(f"{where}: output {self.output!r}: use one of {', '.join(OUTPUTS)}")
        if self.size is None or self.channels is None:
            raise ConfigError(f"{where}: the model's input shape does not fix its size and channels; "
                              "give size and channels in a card (--card FILE) or with --size and --channels")
        if self.size < 1 or self.channels < 1 or self.index < 0:
            raise ConfigError(f"{where}: size and channels must be >= 1 and index >= 0")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, self.channels) or not all(math.isfinite(v) for v in values):
                raise ConfigError(f"{where}: {name} must hold 1 or {self.channels} finite numbers, got {list(values)}")
        if any(v <= 0 for v in self.std):
            raise ConfigError(f"{where}: std must be > 0, got {list(self.std)}")
        if self.pixel:
            summaries.get(self.summary)
        return self

    def to_toml(self) -> str:
        from spurspec.config import dumps_toml

        data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v is not None}
        if not self.pixel:
            data.pop("summary")
        return dumps_toml(data)

    def record(self) -> dict[str, Any]:
        """What an audit's config.toml keeps of the card."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def parse(text: str, where: str) -> dict[str, Any]:
    """A card's TOML as checked values (only the keys it gives); unknown keys are refused."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: not a valid card (TOML: {exc})") from None
    known = {f.name for f in fields(Card)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{where}: unknown card key(s) {', '.join(unknown)} (a card holds {', '.join(sorted(known))})")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("mean", "std"):
            value = value if isinstance(value, list) else [value]
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
                raise InputError(f"{where}: {key} must be a number or a list of numbers")
            out[key] = tuple(float(v) for v in value)
        elif key in ("size", "channels", "index"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"{where}: {key} must be a whole number, got {value!r}")
            out[key] = value
        elif not isinstance(value, str):
            raise InputError(f"{where}: {key} must be text, got {value!r}")
        else:
            out[key] = value
    return out


def read(path: Path) -> dict[str, Any]:
    """A card file's values (`parse`); a missing, large or undecodable file is exit 2."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: card file not found")
    if path.stat().st_size > CARD_BYTES:
        raise InputError(f"{path}: too large for a card ({path.stat().st_size} bytes)")
    try:
        return parse(path.read_text(encoding="utf-8"), str(path))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file") from None


def combine(*layers: dict[str, Any]) -> Card:
    """A card from value layers, later ones winning (model defaults, card file, flags); None in a
    layer leaves the earlier value."""
    card = Card()
    for layer in layers:
        card = replace(card, **{k: v for k, v in layer.items() if v is not None})
    return card
