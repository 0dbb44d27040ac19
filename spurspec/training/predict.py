"""`predict_split(run_dir, split)`: reads a run (RunRecord: config.toml, a checkpoint loaded with
weights_only, the dataset it trained on); returns image scores in the PREDICTIONS schema (long
format: one row per image per summarising function for pixel models, summary IMAGE_SCORE for
binary, scored as the run's `binary_score` says: P(label 1) or the raw class-1 logit) and saliency
maps of a few images from the robust cells: a pixel model's probability map P(positive region), a
binary model's integrated gradients of its score evidence at the image's resolution, smoothed and
normalised per image (models.attribution). The network is built as training built it
(models.build with the run's heads and input normalisation). Grad-CAM (`grad_cam`) is here for the
probes. Writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from spurspec.artefacts import io, schemas
from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.run import RunRecord
from spurspec.errors import ArtefactError, ConfigError
from spurspec.metrics.cells import ROBUST_CELLS
from spurspec.training import checkpoint as ckpt
from spurspec.training import distributed, models
from spurspec.training.config import CHECKPOINTS, TrainConfig
from spurspec.training.data import granularity
from spurspec.training.data import rows as data
from spurspec.training.models import attribution, summaries
from spurspec.training.models.heads import BinaryHead, PixelHead, dataset_classes


@dataclass
class PredictOutput:
    predictions: pa.Table  # PREDICTIONS schema
    # image_id -> (image (S,S) or (C,S,S) uint8, map (S,S) float32 in [0, 1])
    saliency: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # What the maps are, as the probes name map kinds: "probability" (P(positive region), a
    # fixed 0-1 scale) or "integrated_gradients" (normalised per image).
    saliency_kind: str = "probability"


def robust_rows(ds: Dataset, rows: np.ndarray, n: int) -> np.ndarray:
    """Up to n rows from the robust cells of the first spurious attribute (cells.ROBUST_CELLS):
    positives without the feature and negatives with it, taking the cells in turn (so each gets
    half where both can), each in row order, so every run of a dataset keeps the same images;
    positives when the dataset has no attribute."""
    labels = np.asarray(ds.manifest.column("label").to_numpy(zero_copy_only=False))
    if not ds.spurious:
        return rows[labels[rows] == 1][:n]
    attr = np.asarray(ds.manifest.column(ds.spurious[0]).fill_null(-1).to_numpy(zero_copy_only=False))
    per_cell = [rows[(labels[rows] == y) & (attr[rows] == a)] for y, a in ROBUST_CELLS]
    picked = [int(cell[k]) for k in range(max(map(len, per_cell))) for cell in per_cell if k < len(cell)]
    return np.asarray(picked[:n], dtype=np.int64)


@dataclass
class _Loaded:
    """A run's model in eval mode with what scoring it needs."""

    record: RunRecord
    cfg: TrainConfig
    gran: granularity.Granularity
    ds: Dataset
    model: torch.nn.Module
    device: torch.device
    head: PixelHead | None  # pixel models: how logits become P(region of a positive image)
    binary: BinaryHead  # binary models: one logit or two, and the image score


def _load(run_dir: Path, split: str, which: str, device: str | torch.device | None) -> _Loaded:
    if split not in schemas.SPLITS:
        raise ConfigError(f"split {split!r} is not one of: {', '.join(schemas.SPLITS)}")
    if which not in CHECKPOINTS:
        raise ConfigError(f"checkpoint {which!r} is not one of: {', '.join(CHECKPOINTS)}")
    record = RunRecord.open(run_dir)
    cfg = record.settings(TrainConfig)
    gran = granularity.parse(cfg.granularity)
    ds = Dataset.open(record.dataset)
    state = ckpt.load(record.checkpoint(which))
    dev = device if isinstance(device, torch.device) else distributed.choose_device(device or "auto")
    head = PixelHead(dataset_classes(cfg.head, ds)) if gran.pixel else None
    binary = BinaryHead(cfg.binary_head, cfg.binary_score)
    model = models.build(cfg.model, ds.channels, gran.pixel, head.out_channels if head else binary.out_features,
                         cfg.normalisation, ds.info.get("name"))
    model.load_state_dict(state["model"])
    model.to(dev).eval()
    return _Loaded(record, cfg, gran, ds, model, dev, head, binary)


def _summary_names(run: _Loaded) -> list[str]:
    """The summarising functions scored: every PREDICT_SUMMARIES one plus the run's own, or the
    single image score of a binary model."""
    if not run.gran.pixel:
        return [summaries.IMAGE_SCORE]
    names = list(summaries.PREDICT_SUMMARIES)
    return names if run.cfg.summary in names else [*names, run.cfg.summary]


def _score(run: _Loaded, dataset: data.RowsDataset, rows: np.ndarray, show: set[int]):
    """Scores per summary name in row order, the rows scored, and the kept maps of `show` rows."""
    names = _summary_names(run)
    fns = {n: summaries.get(n) for n in names} if run.gran.pixel else {}
    scores: dict[str, list[float]] = {n: [] for n in names}
    maps: dict[int, np.ndarray] = {}
    order: list[int] = []
    with torch.no_grad():
        for batch in data.loader(dataset, rows.tolist(), run.cfg.batch_size, 0, run.device):
            logits = run.model(batch["image"].to(run.device)).float()
            batch_rows = batch["row"].tolist()
            order += batch_rows
            if run.head is None:
                scores[summaries.IMAGE_SCORE] += run.binary.score(logits).double().cpu().tolist()
                continue
            prob = run.head.prob(logits)
            for n, fn in fns.items():
                scores[n] += fn(prob).double().cpu().tolist()
            maps.update({r: prob[i].cpu().numpy().astype(np.float32) for i, r in enumerate(batch_rows) if r in show})
    if not run.gran.pixel and show:
        maps = _ig_maps(run, dataset, sorted(show))
    return scores, order, maps


def _ig_maps(run: _Loaded, dataset: data.RowsDataset, rows: list[int]) -> dict[int, np.ndarray]:
    """A binary model's display maps (attribution.display_maps) of its score evidence, in batches."""
    def evidence(x: torch.Tensor) -> torch.Tensor:
        return run.binary.evidence(run.model(x).float())

    out: dict[int, np.ndarray] = {}
    step = max(1, run.cfg.batch_size)
    for start in range(0, len(rows), step):
        batch = rows[start:start + step]
        x = torch.stack([dataset[r]["image"] for r in batch]).to(run.device)
        out.update(zip(batch, attribution.display_maps(evidence, x), strict=True))
    return out


def _table(run: _Loaded, split: str, which: str, scores: dict[str, list[float]], order: list[int]) -> pa.Table:
    ids = run.ds.manifest.column("image_id").to_pylist()
    total = len(order) * len(scores)
    table = pa.table({
        "image_id": [ids[r] for _ in scores for r in order],
        "split": [split] * total,
        "summary": [s for s in scores for _ in order],
        "score": [v for s in scores for v in scores[s]],
        "run_id": [run.record.root.resolve().name] * total,
        "granularity": [run.gran.name] * total,
        "method": [run.cfg.method] * total,
        "model": [run.cfg.model] * total,
        "seed": pa.array([run.cfg.seed] * total, pa.int64()),
        "checkpoint": [which] * total,
    })
    return io.conform(table, schemas.PREDICTIONS)


def predict_split(run_dir: Path, split: str = "test", checkpoint: str = "best",
                  device: str | torch.device | None = None, n_saliency: int = 8) -> PredictOutput:
    run = _load(Path(run_dir), split, checkpoint, device)
    split_col = np.asarray(run.ds.manifest.column("split").to_pylist())
    rows = np.flatnonzero(split_col == split)
    if len(rows) == 0:
        raise ArtefactError(f"{run.ds.layout.manifest}: split {split!r} has no images")
    labels = np.asarray(run.ds.manifest.column("label").to_numpy(zero_copy_only=False))
    show = set(robust_rows(run.ds, rows, n_saliency).tolist()) if n_saliency > 0 else set()
    dataset = data.RowsDataset(run.ds.root, labels, None, "none", run.cfg.seed)
    scores, order, maps = _score(run, dataset, rows, show)
    ids = run.ds.manifest.column("image_id").to_pylist()
    images = run.ds.images()
    saliency = {}
    for r in sorted(maps):
        img = np.asarray(images[r])
        saliency[ids[r]] = (img[0] if img.shape[0] == 1 else img, maps[r])
    kind = "probability" if run.gran.pixel else "integrated_gradients"
    return PredictOutput(_table(run, split, checkpoint, scores, order), saliency, kind)


class _Logit2d(torch.nn.Module):
    """MONAI's Grad-CAM wants (B, classes) logits: a binary Net's score evidence as (B, 1)."""

    def __init__(self, net: torch.nn.Module, binary: BinaryHead) -> None:
        super().__init__()
        self.net, self.binary = net, binary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.binary.evidence(self.net(x))[:, None]


def grad_cam(model, dataset: data.RowsDataset, rows: list[int], device: torch.device,
             binary: BinaryHead | None = None) -> dict[int, np.ndarray]:
    """Grad-CAM of the binary score's evidence (the positive logit; heads.BinaryHead.evidence) on
    the encoder's last block, normalised to [0, 1]."""
    from monai.visualize import GradCAM

    # The wrapper takes the model's mode: MONAI restores the wrapper's mode after each call, and a
    # new module is in training mode, which would leave the model in training mode (BatchNorm).
    wrapper = _Logit2d(model, binary or BinaryHead()).train(model.training)
    cam = GradCAM(nn_module=wrapper, target_layers=f"net.{model.encoder.last_block}")
    x = torch.stack([dataset[r]["image"] for r in rows]).to(device)
    with torch.enable_grad():
        out = cam(x, class_idx=0)
    out = torch.as_tensor(out).float().cpu().numpy()[:, 0]
    return {r: np.nan_to_num(out[i]).clip(0, 1).astype(np.float32) for i, r in enumerate(rows)}
