"""Training augmentation, per image (the `standard-cpu` fallback in data.py) and on the batch
(augment.py): image and pixel target move together, each (seed, epoch, row) gets its own draw,
and the same key gives the same result in any process, batch or device (workers, resumed runs)."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
import torch

from spurspec.artefacts.dataset import Dataset, DatasetWriter
from spurspec.training import loop
from spurspec.training.config import AUGMENTS
from spurspec.training.data import augment, granularity
from spurspec.training.data.rows import PER_IMAGE_AUGMENTS, RowsDataset

S = 32


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("aug") / "ds"
    n = 4
    with DatasetWriter(out, n=n, size=S, channels=1) as w:
        for i in range(n):
            mask = np.zeros((S, S), np.uint8)
            mask[4 + i : 14 + i, 6:20] = 1  # an off-centre rectangle, so flips and rotations show
            w.put(i, (20 + 200 * mask)[None].astype(np.uint8), mask)
        manifest = pa.table({
            "image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)],
            "split": ["train"] * n, "label": pa.array([1] * n, pa.int8()), "has_mask": [True] * n,
            "source": ["t"] * n, "orig_height": pa.array([S] * n, pa.int32()), "orig_width": pa.array([S] * n, pa.int32()),
        })
        w.finish(manifest, spurious=[], info={"name": "aug"}, settings={}, inputs={})
    return Dataset.open(out)


def _rows(dataset: Dataset, seed: int = 0) -> RowsDataset:
    targets = granularity.Targets(dataset, granularity.parse("seg"))
    return RowsDataset(dataset.root, np.ones(4), targets, "standard-cpu", seed)


def test_image_and_target_move_together(dataset):
    rows = _rows(dataset)
    changed = 0
    for epoch in range(6):
        for row in range(4):
            item = rows[(row, epoch)]
            bright = item["image"][0] > 0.0  # the rectangle was 220/255 on a 20/255 background
            target = item["target"] > 0.5
            inter, union = (bright & target).sum().item(), (bright | target).sum().item()
            assert union > 0 and inter / union > 0.7, (row, epoch, inter, union)
            changed += not torch.equal(target, torch.from_numpy(dataset.masks()[row].astype(bool)))
    assert changed >= 12  # most draws flip or warp the pair


def test_same_key_same_draw_in_any_process_and_new_epoch_new_draw(dataset):
    a, b = _rows(dataset), copy.deepcopy(_rows(dataset))  # state as a spawned loader worker gets it (__getstate__)
    for row in range(4):
        assert torch.equal(a[(row, 3)]["image"], b[(row, 3)]["image"])
        assert torch.equal(a[(row, 3)]["target"], b[(row, 3)]["target"])
    assert any(not torch.equal(a[(r, 1)]["image"], a[(r, 2)]["image"]) for r in range(4))
    other_seed = _rows(dataset, seed=1)
    assert any(not torch.equal(a[(r, 1)]["image"], other_seed[(r, 1)]["image"]) for r in range(4))


def test_evaluation_items_are_not_augmented(dataset):
    rows = _rows(dataset)
    item = rows[(2, -1)]
    expected = (torch.from_numpy(dataset.images()[2].astype(np.float32)) / 255.0 - 0.5) / 0.5
    assert torch.equal(item["image"], expected)


def test_batch_recipes_leave_items_alone_and_items_carry_their_epoch(dataset):
    targets = granularity.Targets(dataset, granularity.parse("seg"))
    item = RowsDataset(dataset.root, np.ones(4), targets, "standard", 0)[(2, 3)]
    expected = (torch.from_numpy(dataset.images()[2].astype(np.float32)) / 255.0 - 0.5) / 0.5
    assert torch.equal(item["image"], expected) and int(item["epoch"]) == 3


# --- on the batch -----------------------------------------------------------------------------

B = 24


def _blobs(rows: list[int], size: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, a fixed image: an off-centre bright rectangle and disc (the target) on a textured
    background, so every geometric op shows and a threshold at 0 recovers the target."""
    images, targets = [], []
    yy, xx = np.mgrid[:size, :size]
    for row in rows:
        rng = np.random.default_rng(row)
        y0, x0 = rng.integers(size // 8, size // 2, 2)
        mask = (yy >= y0) & (yy < y0 + size // 3) & (xx >= x0) & (xx < x0 + size // 5)
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= (size // 8) ** 2
        images.append(np.where(mask, 0.7, -0.7) + rng.uniform(-0.2, 0.2, (size, size)))
        targets.append(mask)
    return torch.tensor(np.array(images), dtype=torch.float32)[:, None], torch.tensor(np.array(targets), dtype=torch.float32)


def _batch(rows: list[int], epoch: int = 0, target: bool = True) -> dict[str, torch.Tensor]:
    image, mask = _blobs(rows)
    out = {"image": image, "row": torch.tensor(rows), "epoch": torch.full((len(rows),), epoch), "label": torch.ones(len(rows))}
    return out | ({"target": mask} if target else {})


# Geometry only, every sample moved: the study's warps all drawn, the standard affine always on.
GEOMETRY = {
    "standard": replace(augment.Standard(), affine=1.0, gain_p=0.0, offset_p=0.0, gamma_p=0.0),
    "study": replace(augment.Study(), intensity=0.0, distort=1.0, affine=1.0),
}
OFF = {
    "standard": replace(augment.Standard(), flip=0.0, affine=0.0, gain_p=0.0, offset_p=0.0, gamma_p=0.0),
    "study": replace(augment.Study(), flip=0.0, intensity=0.0, distort=0.0, affine=0.0),
}


def test_every_augment_name_has_one_home():
    assert set(augment.RECIPES) | set(PER_IMAGE_AUGMENTS) | {"none"} == set(AUGMENTS)
    assert augment.batch_augment("none", 0, "cpu") is None and augment.batch_augment("standard-cpu", 0, "cpu") is None
    assert isinstance(augment.batch_augment("study", 0, "cpu"), augment.BatchAugment)


@pytest.mark.parametrize("name", ["standard", "study"])
def test_image_and_target_move_together_on_the_batch(name):
    aug = augment.BatchAugment(GEOMETRY[name], seed=0, device="cpu")
    batch = _batch(list(range(B)))
    if name == "study":  # these rows draw every kind of warp, so each is checked below
        assert set(aug.draws(batch["row"].numpy(), batch["epoch"].numpy(), 48, 48).warp) == {0, 1, 2}
    out = aug(batch)
    for i in range(B):
        bright, target = out["image"][i, 0] > 0, out["target"][i] > 0.5
        inter, union = (bright & target).sum().item(), (bright | target).sum().item()
        assert union > 0 and inter / union > 0.85, (name, i, inter, union)
        assert not torch.equal(out["target"][i], batch["target"][i])
        assert set(out["target"][i].unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name", ["standard", "study"])
def test_a_row_draws_the_same_whatever_its_batch_and_a_new_epoch_draws_anew(name):
    aug = augment.batch_augment(name, 7, "cpu")
    whole = aug(_batch(list(range(12)), epoch=4))
    again = aug(_batch(list(range(12)), epoch=4))
    other = aug(_batch([9, 3, 40, 0, 41], epoch=4))
    assert torch.equal(whole["image"], again["image"]) and torch.equal(whole["target"], again["target"])
    for pos, row in ((0, 9), (1, 3), (3, 0)):
        torch.testing.assert_close(other["image"][pos], whole["image"][row], atol=1e-5, rtol=0)
        assert torch.equal(other["target"][pos], whole["target"][row])
    later = aug(_batch(list(range(12)), epoch=5))
    reseeded = augment.batch_augment(name, 8, "cpu")(_batch(list(range(12)), epoch=4))
    assert not torch.equal(later["image"], whole["image"]) and not torch.equal(reseeded["image"], whole["image"])


@pytest.mark.parametrize("name", ["standard", "study"])
def test_zero_probabilities_are_the_identity(name):
    batch = _batch(list(range(B)))
    out = augment.BatchAugment(OFF[name], seed=0, device="cpu")(batch)
    assert torch.equal(out["image"], batch["image"]) and torch.equal(out["target"], batch["target"])


def _extreme_shift(name: str) -> augment.Draws:
    """One draw with the largest rightward shift and nothing else (u = 0.99 turns an op off)."""
    recipe = OFF[name]
    u = np.full((1, recipe.uniforms), 0.5)
    if name == "standard":
        recipe, (u[0, 1], u[0, 4]) = replace(recipe, affine=1.0), (0.0, 1.0)
    else:
        recipe, (u[0, 9], u[0, 12]) = replace(recipe, affine=1.0), (0.0, 1.0)
    return recipe.draw(u, np.zeros(1, np.uint64), S, S)


@pytest.mark.parametrize("name", ["standard", "study"])
def test_translation_reaches_a_sixteenth_of_the_image(name):
    image = torch.full((1, 1, S, S), -1.0)
    image[0, 0, 12:20, 12:20] = 1.0  # a centred square, away from the borders
    out, _ = augment.apply(OFF[name], _extreme_shift(name), image, None)
    weight = (out[0, 0] + 1).clamp_min(0)
    xs = torch.arange(S, dtype=torch.float32)
    cx, cy = (weight.sum(0) * xs).sum() / weight.sum(), (weight.sum(1) * xs).sum() / weight.sum()
    assert abs(abs(cx.item() - 15.5) - 0.0625 * S) < 0.3 and abs(cy.item() - 15.5) < 0.3


@pytest.mark.parametrize("name", ["standard", "study"])
def test_outputs_are_finite_and_in_the_recipes_range(name):
    batch = _batch(list(range(64)))
    batch["image"] = batch["image"].clamp(-1, 1)
    batch["image"][::4] = torch.rand(16, 1, 48, 48) * 2 - 1  # noise images reach both ends
    out = augment.batch_augment(name, 0, "cpu")(batch)
    # study clips as uint8 pixels do; standard (MONAI's terms) reaches x·1.2 + 0.1 in [0, 1] units
    low, high = (-1.0, 1.0) if name == "study" else (-1.2, 1.6)
    assert torch.isfinite(out["image"]).all()
    assert low - 1e-5 <= out["image"].min().item() and out["image"].max().item() <= high + 1e-5
    assert set(out["target"].unique().tolist()) <= {0.0, 1.0}


def test_elastic_field_is_scipys_gaussian_filter():
    from scipy.ndimage import gaussian_filter

    noise = np.random.default_rng(0).uniform(-1, 1, (2, 40, 56))
    ours = augment._gaussian(torch.tensor(noise, dtype=torch.float32), 6.0).numpy()
    for c in range(2):
        np.testing.assert_allclose(ours[c], gaussian_filter(noise[c], 6.0), atol=1e-6)
    # alpha 120, sigma 6: displacements of about 3.3 px a side, as albumentations' at that size
    big = np.random.default_rng(1).uniform(-1, 1, (1, 256, 256))
    assert 2.8 < 120 * augment._gaussian(torch.tensor(big, dtype=torch.float32), 6.0).std().item() < 3.8


def test_grid_distortion_axis_is_albumentations():
    np.testing.assert_allclose(augment.grid_axis(10, 5, np.ones(6)), [0, 2, 2, 4, 4, 6, 6, 8, 8, 10])
    np.testing.assert_allclose(augment.grid_axis(11, 5, np.full(6, 1.3)), [0, 2.6, 2.6, 5.2, 5.2, 7.8, 7.8, 10.4, 10.4, 13, 13])  # linspace(13, 11, 1) = [13]


def test_optical_distortion_without_k_or_shift_is_the_identity():
    study = OFF["study"]
    # albumentations rounds the principal-point shift U(-0.5, 0.5) to whole pixels: always 0
    assert study._warp_args("optical", np.array([0.5, 0.999, 0.0]), np.uint64(0), S, S) == (0.0, S / 2, S / 2)
    d = augment.Draws.identity(1)
    d.warp[0], d.warp_args[0] = augment.WARPS.index("optical"), (0.0, S / 2, S / 2)
    image, mask = _blobs([0], size=S)
    out, target = augment.apply(study, d, image, mask)
    torch.testing.assert_close(out, image, atol=1e-5, rtol=0)
    assert torch.equal(target, mask)


def test_train_epoch_feeds_the_model_the_augmented_batch():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.Flatten(1), torch.nn.LazyLinear(1), torch.nn.Flatten(0))
    model(torch.zeros(1, 1, 48, 48))
    seen, calls = [], []
    model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    aug = augment.batch_augment("standard", 0, "cpu")

    def recording(batch):
        calls.append(aug(batch))
        return calls[-1]

    step = loop.Step(model, torch.optim.SGD(model.parameters(), lr=0.0), torch.amp.GradScaler("cpu", enabled=False),
                     torch.device("cpu"), None, False, "bce", 1.0, False, augment=recording)
    batches = [_batch(list(range(8)), target=False), _batch(list(range(8, 16)), target=False)]
    loop.train_epoch(step, batches, lambda n, loss: None)
    assert len(calls) == 2 and all(torch.equal(x, c["image"]) for x, c in zip(seen, calls, strict=True))
    assert not torch.equal(seen[0], batches[0]["image"])


@pytest.mark.parametrize("warp", [False, True])
def test_flip_then_shift_with_reflected_borders_matches_a_direct_computation(warp):
    """albumentations' order (flip, then shift-scale-rotate reading reflect-101 borders), with and
    without an identity warp (optical, k = 0) in between: the composed grid must give the same."""
    image, mask = _blobs([5], size=S)
    d = augment.Draws.identity(1)
    d.flip[0], d.affined[0] = True, True
    d.affine = augment.ssr_affine(np.zeros(1), np.ones(1), np.array([0.25]), np.array([0.125]), S, S)  # 8 px, 4 px
    if warp:
        d.warp[0], d.warp_args[0] = augment.WARPS.index("optical"), (0.0, S / 2, S / 2)
    out, target = augment.apply(OFF["study"], d, image, mask)
    # output (x, y) reads the flipped image at (x - 8, y - 4), reflected without repeating the edge
    expect = np.pad(image[0, 0].numpy()[:, ::-1], ((4, 0), (8, 0)), mode="reflect")[:S, :S]
    np.testing.assert_allclose(out[0, 0].numpy(), expect, atol=1e-4)
    np.testing.assert_array_equal(target[0].numpy(), np.pad(mask[0].numpy()[:, ::-1], ((4, 0), (8, 0)), mode="reflect")[:S, :S])


def test_intensity_ops_follow_albumentations_and_monai_in_unit_range():
    x01 = np.random.default_rng(3).uniform(0, 1, (3, 1, 8, 8))
    image = torch.tensor(x01 * 2 - 1, dtype=torch.float32)
    d = augment.Draws.identity(3)
    d.gain[0], d.gamma[1], d.offset[2] = 1.2, 0.8, 0.2  # study: contrast, gamma, brightness
    out, _ = augment.apply(OFF["study"], d, image, None)
    expect = np.stack([np.clip(x01[0] * 1.2, 0, 1), x01[1] ** 0.8, np.clip(x01[2] + 0.2, 0, 1)])
    np.testing.assert_allclose((out.numpy() + 1) / 2, expect, atol=1e-6)
    d.gain[:], d.offset[:], d.gamma[:] = 1.2, 0.1, 1.25  # standard: scale, shift, min-max gamma, unclipped
    out, _ = augment.apply(OFF["standard"], d, image, None)
    y = x01 * 1.2 + 0.1
    low, span = y.min(axis=(1, 2, 3), keepdims=True), np.ptp(y, axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose((out.numpy() + 1) / 2, ((y - low) / span) ** 1.25 * span + low, atol=1e-5)


def test_elastic_affine_step_follows_the_studys_saved_config():
    from spurspec.training.data.augment import Study, elastic_affine_inverse

    assert Study().elastic_affine == 3.6  # alpha_affine in the study's train_transform.json
    assert np.allclose(elastic_affine_inverse(np.zeros((3, 2)), 64, 64), [[1, 0, 0], [0, 1, 0]])
    jitter = np.array([[1.0, -2.0], [0.5, 3.0], [-3.5, 0.0]])
    inv = elastic_affine_inverse(jitter, 64, 64)
    src = np.array([[53.0, 53.0], [53.0, 11.0], [11.0, 11.0]])  # centre 32 ± 64 // 3
    back = (inv @ np.c_[src + jitter, np.ones(3)].T).T
    assert np.allclose(back, src)


def test_study_warps_are_converted_to_the_size_they_are_applied_at():
    """The study warped at 1024 px: at the training size its lengths scale by s = size / 1024 and
    elastic alpha by s² (same fraction of the image; tests/conformance/test_augmentation.py
    measures it), other parameters stay; a draw at 64 px jitters the elastic affine's points by at
    most 3.6 s pixels, as its own size's recipe says."""
    study = augment.Study()
    assert study.applied_at == augment.STUDY_SIZE == 1024 and study.at(1024) == study
    half = study.at(512)
    assert (half.elastic_alpha, half.elastic_sigma, half.elastic_affine, half.optical_shift) == (30.0, 3.0, 1.8, 0.25)
    assert study.at(256).at(512) == half and half.applied_at == 512
    assert (half.grid_limit, half.optical_k, half.shift, half.scale, half.rotate) == (0.3, 2.0, 0.0625, 0.1, 45.0)
    recipe = replace(study, distort=1.0)
    n = 200
    u = augment.uniforms(augment.keys(0, np.zeros(n, np.int64), np.arange(n)), recipe.uniforms)
    u[:, 5] = 0.1  # the elastic warp
    d = recipe.draw(u, augment.keys(0, np.zeros(n, np.int64), np.arange(n)), 64, 64)
    src = np.array([[53.0, 53.0], [53.0, 11.0], [11.0, 11.0]])  # centre 32 ± 64 // 3
    jitter = np.stack([(np.linalg.inv(np.vstack([d.warp_args[i][1], [0, 0, 1]]))[:2] @ np.c_[src, np.ones(3)].T).T - src
                       for i in range(n)])
    limit = 3.6 * 64 / 1024
    assert np.abs(jitter).max() <= limit + 1e-9 and np.abs(jitter).max() > 0.95 * limit
