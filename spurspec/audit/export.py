"""`spurspec export RUN --onnx FILE`: a spurspec run's model as an ONNX file with its card, so it
can be deployed, or audited beside outside models. The graph takes the network's input as
training fed it ((image/255 - 0.5) / 0.5, the card's mean and std) and returns the score evaluate
writes: a binary run's image score (P(label 1), or the class-1 logit under binary_score = logit),
a pixel run's probability map P(positive region) (N, S, S), which the card's summary (the run's
own) makes one score. The card goes into the file's metadata (`spurspec.card`) and beside it as
FILE.card.toml. Reads the run (config, the checkpoint evaluate scored, the dataset's shape);
writes FILE and FILE.card.toml, each atomically, and nothing on failure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spurspec.artefacts import io
from spurspec.audit.card import METADATA_KEY, Card
from spurspec.errors import ConfigError, ExistsError
from spurspec.training.models import summaries

# The input normalisation of every spurspec network (training.data.rows: (x/255 - 0.5) / 0.5).
MEAN, STD = (0.5,), (0.5,)
OPSET = 18


@dataclass
class ExportResult:
    onnx: Path
    card_file: Path
    card: Card


def card_path(onnx: Path) -> Path:
    return onnx.with_name(onnx.name + ".card.toml")


def export(run: Path, onnx: Path, checkpoint: str = "best", force: bool = False) -> ExportResult:
    import torch

    from spurspec.training import predict

    onnx = Path(onnx)
    if onnx.suffix.lower() != ".onnx":
        raise ConfigError(f"{onnx}: name the file .onnx")
    for path in (onnx, card_path(onnx)):
        if path.exists() and not force:
            raise ExistsError(f"{path}: already exists; pass --force to replace it")
    from spurspec.artefacts.run import RunRecord

    RunRecord.open(Path(run)).refuse_audit("export")
    loaded = predict._load(Path(run), "test", checkpoint, "cpu")
    card = _card(loaded)
    wrapper = _Scored(loaded).eval()
    size, channels = loaded.ds.size, loaded.ds.channels
    example = torch.zeros(2, channels, size, size)
    data = _with_card(_to_onnx(wrapper, example), card)
    with io.atomic_path(onnx, suffix=".onnx") as tmp:
        Path(tmp).write_bytes(data)
    try:
        io.write_text(card_path(onnx), card.to_toml())
    except BaseException:
        onnx.unlink(missing_ok=True)  # never a model without its card beside it
        raise
    return ExportResult(onnx, card_path(onnx), card)


def _card(loaded) -> Card:
    ds = loaded.ds
    if loaded.gran.pixel:
        summary = loaded.cfg.summary or summaries.DEFAULT
        return Card(ds.size, ds.channels, MEAN, STD, "pixel", 0, summary)
    output = "logit" if loaded.binary.score_by == "logit" else "probability"
    return Card(ds.size, ds.channels, MEAN, STD, output, 0)


def _to_onnx(wrapper, example):
    """The wrapper as an ONNX ModelProto (torch.onnx's exporter), batch size left free."""
    import torch

    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(wrapper, (example,), input_names=["image"], output_names=["score"],
                                dynamic_shapes={"x": {0: batch}}, opset_version=OPSET, dynamo=True, verbose=False)
    return program.model_proto


def _with_card(proto, card: Card) -> bytes:
    """The model's bytes with the card in its metadata (replacing any earlier card)."""
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    for key, value in [*kept, (METADATA_KEY, card.to_toml())]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def _scored_module():
    import torch

    class Scored(torch.nn.Module):
        """The run's network with its head: input -> evaluate's score (binary) or P(region) map."""

        def __init__(self, loaded) -> None:
            super().__init__()
            self.net, self.binary, self.head = loaded.model, loaded.binary, loaded.head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = self.net(x).float()
            if self.head is None:
                return self.binary.score(logits)
            return self.head.prob(logits)

    return Scored


def _Scored(loaded):  # noqa: N802 -- a class built lazily, so torch loads only when exporting
    return _scored_module()(loaded)

