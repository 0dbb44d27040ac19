"""A training epoch's batches (training/data/rows.py EpochBatches): every item in order, except a
last batch of one image, which BatchNorm cannot train on at small sizes (a binary model at 32 px
raised a ValueError traceback when the epoch's images were one more than a multiple of the batch
size). Validation and prediction keep every row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spurspec.training.data.rows import EpochBatches, EpochSampler, loader


@pytest.mark.parametrize(("n", "batch", "sizes"), [
    (15, 7, [7, 7]),  # one left over: left out
    (16, 7, [7, 7, 2]),  # two left over: kept
    (14, 7, [7, 7]),
    (1, 4, []),
    (5, 1, [1, 1, 1, 1, 1]),  # a batch size of one trains on every image
])
def test_a_last_batch_of_one_is_left_out(n, batch, sizes):
    sampler = EpochSampler(np.arange(100, 100 + n), epoch=3, seed=0)
    batches = list(EpochBatches(sampler, batch))
    assert [len(b) for b in batches] == sizes and len(EpochBatches(sampler, batch)) == len(sizes)
    items = [item for b in batches for item in b]
    assert items == list(sampler)[: len(items)]  # the sampler's order, its seeded shuffle kept


def test_training_loaders_use_it_and_other_rows_keep_every_one():
    class Items(torch.utils.data.Dataset):
        def __getitem__(self, item):
            return torch.tensor(item[0] if isinstance(item, tuple) else item)

        def __len__(self):
            return 100

    cpu = torch.device("cpu")
    epoch = loader(Items(), EpochSampler(np.arange(15), 0, 0), 7, 0, cpu)
    assert sum(len(b) for b in epoch) == 14
    rows = loader(Items(), list(range(15)), 7, 0, cpu)
    assert sum(len(b) for b in rows) == 15
