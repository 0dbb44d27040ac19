"""Training data from a dataset directory's memory-mapped arrays: a torch Dataset whose items are
(row, epoch) keys; the per-image fallback augmentation (`standard-cpu`: MONAI dictionary transforms
that move image and target together, seeded per (seed, epoch, row) so augmentation is identical
whatever the worker count, rank or resumption; the default recipes run on the batch, in
augment.py); and the per-epoch sampler (class balance, shuffling, sharding across ranks)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Sampler

from spurspec.artefacts.layout import DatasetLayout
from spurspec.training.data.granularity import Targets

# Recipes RowsDataset applies per image on the CPU (a fallback); the others run on the batch.
PER_IMAGE_AUGMENTS = ("standard-cpu",)


def transforms(pixel: bool, size: int):
    """spurspec's `standard` recipe per image in MONAI terms: horizontal flip, affine (rotation,
    scale, translation by 6.25 % of the size: MONAI reads translate_range in pixels), intensity
    scale/shift/contrast-gamma. Geometry applies to image and target alike (nearest for target)."""
    from monai import transforms as T

    keys = ["image", "target"] if pixel else ["image"]
    modes = ["bilinear", "nearest"] if pixel else ["bilinear"]
    return T.Compose([
        T.RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
        T.RandAffined(
            keys=keys, prob=0.5, rotate_range=math.pi / 4, scale_range=0.1, translate_range=0.0625 * size,
            mode=modes, padding_mode="zeros",
        ),
        T.RandScaleIntensityd(keys="image", factors=0.2, prob=0.5),
        T.RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        T.RandAdjustContrastd(keys="image", gamma=(0.8, 1.25), prob=0.5),
    ])


def item_seed(seed: int, epoch: int, row: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, row]).generate_state(1)[0])


class RowsDataset(torch.utils.data.Dataset):
    """Items are keyed (row, epoch); epoch < 0 means no augmentation (validation, prediction).
    Returns image float32 (C, S, S) scaled to [-1, 1], label, row, epoch (the batch augmentation's
    key) and, for pixel models, the target float32 (S, S) with `labelled` (bool): False for the
    `unlabelled` rows (Seg-SSL's images without a kept mask), whose target is all zeros and never
    read, so a mask outside the budget cannot leak into training. Augments per item only for the
    per-image recipes (PER_IMAGE_AUGMENTS)."""

    def __init__(self, root: Path, labels: np.ndarray, targets: Targets | None, augment: str, seed: int,
                 unlabelled: np.ndarray | None = None) -> None:
        self.root, self.labels, self.targets, self.seed = Path(root), labels, targets, seed
        self.augment = augment
        self.unlabelled = frozenset(np.asarray(unlabelled if unlabelled is not None else [], dtype=np.int64).tolist())
        self._images: np.ndarray | None = None
        self._transform = None

    def __len__(self) -> int:
        return len(self.labels)

    def _open(self) -> None:
        self._images = np.load(DatasetLayout(self.root).images, mmap_mode="r")
        if self.augment in PER_IMAGE_AUGMENTS:
            from monai.data import set_track_meta

            set_track_meta(False)  # plain tensors: metadata tracking costs time and is unused here
            self._transform = transforms(self.targets is not None, self._images.shape[-1])
            # One generator shared by every random transform, reseeded per item. Compose's own
            # set_random_state builds a generator per transform per call: 0.86 ms of a 1.5 ms item.
            self._rng = np.random.RandomState()
            for t in self._transform.transforms:
                if hasattr(t, "set_random_state"):
                    t.set_random_state(state=self._rng)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        row, epoch = key if isinstance(key, tuple) else (key, -1)
        if self._images is None:
            self._open()
        image = torch.from_numpy(np.asarray(self._images[row], dtype=np.float32)) / 255.0
        item = {"image": image}
        labelled = row not in self.unlabelled
        if self.targets is not None:
            target = self.targets(row) if labelled else np.zeros(image.shape[-2:], np.uint8)
            item["target"] = torch.from_numpy(target.astype(np.float32))[None]
        if epoch >= 0 and self._transform is not None:
            self._rng.seed(item_seed(self.seed, epoch, row))
            item = self._transform(item)
        out = {
            "image": (torch.as_tensor(item["image"]).float() - 0.5) / 0.5,
            "label": torch.tensor(float(self.labels[row])),
            "row": torch.tensor(row),
            "epoch": torch.tensor(epoch),
        }
        if self.targets is not None:
            out["target"] = torch.as_tensor(item["target"]).float()[0]
            out["labelled"] = torch.tensor(labelled)
        return out

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_images": None, "_transform": None, "_rng": None}  # workers re-open the memmap


def epoch_rows(rows: np.ndarray, labels: np.ndarray, balance: str, seed: int, epoch: int) -> np.ndarray:
    """The training rows of one epoch: all of them, or (balance=subsample) every image of the
    minority class plus a fresh seeded draw of as many majority images. Deterministic in
    (seed, epoch), so a resumed run sees the same epochs."""
    if balance != "subsample":
        return rows
    pos, neg = rows[labels[rows] == 1], rows[labels[rows] == 0]
    small, large = (pos, neg) if len(pos) <= len(neg) else (neg, pos)
    rng = np.random.default_rng([seed, epoch, 7])
    keep = rng.choice(large, size=len(small), replace=False)
    return np.sort(np.concatenate([small, keep]))


class EpochSampler(Sampler):
    """Shuffles an epoch's rows (seeded by seed + epoch, like DistributedSampler) and gives each
    rank an equal share, padding by repetition as DistributedSampler does; yields (row, epoch)."""

    def __init__(self, rows: np.ndarray, epoch: int, seed: int, rank: int = 0, world: int = 1, shuffle: bool = True) -> None:
        self.rows, self.epoch, self.seed = rows, epoch, seed
        self.rank, self.world, self.shuffle = rank, world, shuffle
        self.per_rank = math.ceil(len(rows) / world)

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = np.arange(len(self.rows))
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(self.rows), generator=g).numpy()
        total = self.per_rank * self.world
        if total > len(order):
            order = np.concatenate([order, order[: total - len(order)]])
        for i in order[self.rank : total : self.world]:
            yield int(self.rows[i]), self.epoch


def shard(rows: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Evaluation rows of one rank: a plain stride, no padding (results are gathered)."""
    return rows[rank::world]


def default_workers(device: torch.device) -> int:
    """Loader processes when the user sets none. On a CPU device torch's compute threads already
    use every core, and a loader process only competes with them (measured on 2 cores: 656 vs
    393 images/s without augmentation, 308 vs 225 with it), so loading stays in-process. With an
    accelerator the cores are free for decoding and augmentation."""
    if device.type == "cpu":
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


class EpochBatches(Sampler):
    """The batches of a training epoch (an EpochSampler's items, in order), leaving out a last
    batch of one image: BatchNorm cannot train on a single image whose deepest feature map is
    1 x 1 (a binary model at 32 px: torch raises), and one image's batch statistics are noise.
    Every rank holds the same number of items, so every rank leaves out the same step."""

    def __init__(self, sampler: EpochSampler, batch_size: int) -> None:
        self.sampler, self.batch_size = sampler, batch_size

    def __len__(self) -> int:
        full, rest = divmod(len(self.sampler), self.batch_size)
        return full + (rest > 1)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batch: list[tuple[int, int]] = []
        for item in self.sampler:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if len(batch) > 1:
            yield batch


def loader(dataset: RowsDataset, sampler, batch_size: int, workers: int, device: torch.device) -> torch.utils.data.DataLoader:
    """Batches of `sampler`'s items: a training epoch (EpochSampler) through EpochBatches, any
    other rows (validation, prediction) every one of them."""
    common = dict(num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=False,
                  prefetch_factor=4 if workers > 0 else None)
    if isinstance(sampler, EpochSampler):
        return torch.utils.data.DataLoader(dataset, batch_sampler=EpochBatches(sampler, batch_size), **common)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=False, **common)


def keep_negatives_once(rows: np.ndarray, labels: np.ndarray, keep: float, seed: int) -> np.ndarray:
    """The study's chest-film balance: each negative training row kept once, with probability
    `keep`, by a draw seeded by `seed` alone (the same rows every epoch and on resume)."""
    rng = np.random.default_rng([seed, 33])
    negative = labels[rows] == 0
    kept = ~negative | (rng.random(len(rows)) < keep)
    return rows[kept]
