"""`predict_split(run_dir, split)`: reads a run's config.toml and a checkpoint (weights_only) and
the dataset it trained on; returns image scores in the PREDICTIONS schema (long format: one row
per image per summarising function for pixel models, summary="image" for binary) and saliency maps
(probability maps, or Grad-CAM for binary) of a few images from the robust cells. Writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from spurspec.artefacts import io, schemas
from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.layout import RunLayout
from spurspec.errors import ArtefactError, ConfigError
from spurspec.training import checkpoint as ckpt
from spurspec.training import data, distributed, granularity, models, summaries
from spurspec.training.trainer import saved_config


@dataclass
class PredictOutput:
    predictions: pa.Table  # PREDICTIONS schema
    # image_id -> (image (S,S) or (C,S,S) uint8, map (S,S) float32 in [0, 1])
    saliency: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def robust_rows(ds: Dataset, rows: np.ndarray, n: int) -> np.ndarray:
    """Up to n rows from the cells where the first spurious attribute points the wrong way
    (label 1 without it, label 0 with it), alternating the two cells, in row order."""
    labels = np.asarray(ds.manifest.column("label").to_numpy(zero_copy_only=False))
    if not ds.spurious:
        return rows[labels[rows] == 1][:n]
    attr = np.asarray(ds.manifest.column(ds.spurious[0]).fill_null(-1).to_numpy(zero_copy_only=False))
    a = rows[(labels[rows] == 1) & (attr[rows] == 0)]
    b = rows[(labels[rows] == 0) & (attr[rows] == 1)]
    picked = [x for pair in zip(a, b, strict=False) for x in pair]
    picked += list(a[len(b):]) + list(b[len(a):])
    return np.asarray(picked[:n], dtype=np.int64)


def predict_split(run_dir: Path, split: str = "test", checkpoint: str = "best",
                  device: str | torch.device | None = None, n_saliency: int = 8) -> PredictOutput:
    layout = RunLayout(Path(run_dir))
    if not layout.config.exists():
        raise ArtefactError(f"{layout.root}: not a spurspec run (no config.toml); run `spurspec train` first")
    if split not in schemas.SPLITS:
        raise ConfigError(f"split {split!r} is not one of: {', '.join(schemas.SPLITS)}")
    if checkpoint not in ("best", "last"):
        raise ConfigError(f"checkpoint {checkpoint!r} is not one of: best, last")
    cfg = saved_config(layout)
    gran = granularity.parse(cfg.granularity)
    ds = Dataset.open(cfg.dataset)
    state = ckpt.load(layout.checkpoint(checkpoint))
    dev = device if isinstance(device, torch.device) else distributed.choose_device(device or "auto")
    model = models.build(cfg.model, ds.channels, gran.pixel)
    model.load_state_dict(state["model"])
    model.to(dev).eval()

    split_col = np.asarray(ds.manifest.column("split").to_pylist())
    rows = np.flatnonzero(split_col == split)
    if len(rows) == 0:
        raise ArtefactError(f"{ds.layout.manifest}: split {split!r} has no images")
    labels = np.asarray(ds.manifest.column("label").to_numpy(zero_copy_only=False))
    names = list(summaries.PREDICT_SUMMARIES)
    if gran.pixel and cfg.summary not in names:
        names.append(cfg.summary)
    fns = {n: summaries.get(n) for n in names}
    show = set(robust_rows(ds, rows, n_saliency).tolist()) if n_saliency > 0 else set()
    maps: dict[int, np.ndarray] = {}
    scores: dict[str, list[float]] = {n: [] for n in (names if gran.pixel else ["image"])}
    order: list[int] = []
    dataset = data.RowsDataset(ds.root, labels, None, "none", cfg.seed)
    loader = data.loader(dataset, rows.tolist(), cfg.batch_size, 0, dev)
    with torch.no_grad():
        for batch in loader:
            logits = model(batch["image"].to(dev)).float()
            prob = torch.sigmoid(logits)
            batch_rows = batch["row"].tolist()
            order += batch_rows
            if gran.pixel:
                for n, fn in fns.items():
                    scores[n] += fn(prob).double().cpu().tolist()
                for i, r in enumerate(batch_rows):
                    if r in show:
                        maps[r] = prob[i].cpu().numpy().astype(np.float32)
            else:
                scores["image"] += prob.double().cpu().tolist()
    if not gran.pixel and show:
        maps = grad_cam(model, dataset, sorted(show), dev)

    ids = ds.manifest.column("image_id").to_pylist()
    n = len(order)
    table = pa.table({
        "image_id": [ids[r] for _ in scores for r in order],
        "split": [split] * (n * len(scores)),
        "summary": [s for s in scores for _ in order],
        "score": [v for s in scores for v in scores[s]],
        "run_id": [layout.root.resolve().name] * (n * len(scores)),
        "granularity": [gran.name] * (n * len(scores)),
        "method": [cfg.method] * (n * len(scores)),
        "model": [cfg.model] * (n * len(scores)),
        "seed": pa.array([cfg.seed] * (n * len(scores)), pa.int64()),
        "checkpoint": [checkpoint] * (n * len(scores)),
    })
    images = ds.images()
    saliency = {}
    for r in sorted(maps):
        img = np.asarray(images[r])
        saliency[ids[r]] = (img[0] if img.shape[0] == 1 else img, maps[r])
    return PredictOutput(predictions=io.conform(table, schemas.PREDICTIONS), saliency=saliency)


class _Logit2d(torch.nn.Module):
    """MONAI's Grad-CAM wants (B, classes) logits; a binary Net gives (B,)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, None]


def grad_cam(model, dataset: data.RowsDataset, rows: list[int], device: torch.device) -> dict[int, np.ndarray]:
    """Grad-CAM of the positive logit on the encoder's last block, normalised to [0, 1]."""
    from monai.visualize import GradCAM

    cam = GradCAM(nn_module=_Logit2d(model), target_layers=f"net.{model.encoder.last_block}")
    x = torch.stack([dataset[r]["image"] for r in rows]).to(device)
    with torch.enable_grad():
        out = cam(x, class_idx=0)
    out = torch.as_tensor(out).float().cpu().numpy()[:, 0]
    return {r: np.nan_to_num(out[i]).clip(0, 1).astype(np.float32) for i, r in enumerate(rows)}
