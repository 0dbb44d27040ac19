"""Training methods (training/methods/: the registry, seg_ssl.py, seg_spl.py): Seg-SSL's pseudo masks obey the image
label, its teacher is a moving average and its strong view is keyed per row; Seg-SPL's
contrastive loss has exactly zero gradient when every sampled pixel shares a class and samples
only images with a target; each method's loss falls on a fixed batch; a method that cannot
apply is refused naming what is missing and what would apply."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
import torch
from method_context import build

from spurspec.artefacts import io, schemas
from spurspec.artefacts.dataset import DatasetWriter
from spurspec.errors import ConfigError
from spurspec.training import distributed, loop, models
from spurspec.training.config import TrainConfig
from spurspec.training.data import budget
from spurspec.training.data.rows import RowsDataset
from spurspec.training.methods import (
    METHODS,
    TRAIN_LOG,
    check_settings,
    log_columns,
    read_train_log,
    require,
)
from spurspec.training.methods import seg_spl as spl
from spurspec.training.methods import seg_ssl as ssl
from spurspec.training.models.heads import PixelHead

S = 32


def test_pseudo_labels_come_from_the_teachers_confidence_alone():
    """Positive where the teacher is confident of it, background where it is confident of that,
    left out elsewhere; the image label only vetoes (a negative image has no positive pixel).
    Nothing forces a positive image to hold positive pixels: issue 24's rule."""
    g = torch.Generator().manual_seed(0)
    prob = torch.stack([torch.rand(S, S, generator=g), torch.ones(S, S), torch.zeros(S, S),
                        torch.full((S, S), 0.5), torch.rand(S, S, generator=g), torch.ones(S, S)])
    label = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    target, weight = ssl.pseudo_masks(prob, label, threshold=0.9)
    confident_pos, confident_bg = prob >= 0.9, prob <= 0.1
    for i in range(4):  # positives: exactly the teacher's confident pixels, each way
        assert torch.equal(target[i].bool(), confident_pos[i])
        assert torch.equal(weight[i].bool(), confident_pos[i] | confident_bg[i])
    assert target[1].sum() == S * S  # a teacher sure of every pixel: no cap
    # a teacher sure of nothing positive: no forced pixels, all confident background
    assert target[2].sum() == 0 and weight[2].sum() == S * S
    assert weight[3].sum() == 0  # an unsure teacher teaches nothing
    for i in (4, 5):  # negatives: the veto, all background, every pixel counts, however sure the teacher
        assert target[i].sum() == 0 and bool((weight[i] == 1).all())
    assert not bool((target.bool() & (weight == 0)).any())  # a positive pixel always counts


def test_a_positive_image_label_never_makes_a_pixel_positive():
    """The rule before issue 24 forced a positive's top 0.5 % of pixels positive whatever the
    teacher thought (an image-label loss in disguise). Now flipping an image's label from 0 to 1
    can only lift the veto: the positive pixels are the teacher's confident ones, never more."""
    g = torch.Generator().manual_seed(1)
    prob = torch.rand(5, S, S, generator=g) * 0.8  # never confident of a positive
    for label in (torch.zeros(5), torch.ones(5)):
        target, _ = ssl.pseudo_masks(prob, label, threshold=0.95)
        assert target.sum() == 0
    prob[0, 3, 4] = 0.97
    target, _ = ssl.pseudo_masks(prob, torch.tensor([1.0, 0, 0, 0, 0]), threshold=0.95)
    assert target.sum() == 1 and target[0, 3, 4] == 1


def test_rampup_rises_to_one():
    values = [ssl.rampup(e, 5) for e in range(7)]
    assert values[0] == pytest.approx(np.exp(-5)) and values[5] == values[6] == 1.0
    assert all(a < b for a, b in zip(values[:5], values[1:6], strict=True))
    assert ssl.rampup(0, 0) == 1.0


def test_strong_view_is_keyed_per_row_not_per_batch():
    image = torch.zeros(3, 1, 8, 8)
    a = ssl.perturb(image, np.array([4, 5, 6]), np.array([1, 1, 1]), seed=0)
    b = ssl.perturb(image[1:], np.array([5, 6]), np.array([1, 1]), seed=0)
    assert torch.equal(a[1:], b)
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a, ssl.perturb(image, np.array([4, 5, 6]), np.array([2, 2, 2]), seed=0))


def test_contrastive_loss_of_one_class_is_zero_with_zero_gradient():
    z = torch.randn(40, 16, requires_grad=True)
    loss = spl.contrastive_loss(z, torch.ones(40, dtype=torch.long), temperature=0.1)
    loss.backward()
    assert loss.item() == 0.0 and bool((z.grad == 0).all())


def test_contrastive_loss_rewards_separated_classes():
    classes = torch.tensor([0] * 10 + [1] * 10)
    z = torch.randn(20, 8, requires_grad=True)
    mixed = spl.contrastive_loss(z, classes, temperature=0.1)
    mixed.backward()
    assert mixed.item() > 0 and z.grad.abs().sum() > 0
    separated = torch.zeros(20, 8)
    separated[:10, 0], separated[10:, 1] = 1.0, 1.0
    assert spl.contrastive_loss(separated, classes, 0.1).item() < 1e-3 < mixed.item()


def test_pixels_are_sampled_per_class_from_images_with_a_target():
    classes = torch.zeros(3, S, S, dtype=torch.long)
    classes[0, :4, :4] = 1
    classes[2, :, :] = 1  # an image without a target: never sampled
    usable = torch.tensor([True, True, False])
    at = spl.sample_pixels(classes, usable, per_class=8, generator=torch.Generator().manual_seed(0))
    picked = classes.flatten()[at]
    assert (picked == 0).sum() == 8 and (picked == 1).sum() == 8
    assert bool((at < 2 * S * S).all()) and len(set(at.tolist())) == 16
    again = spl.sample_pixels(classes, usable, 8, torch.Generator().manual_seed(0))
    assert torch.equal(at, again)
    few = spl.sample_pixels(classes, usable, per_class=100, generator=torch.Generator().manual_seed(0))
    assert (classes.flatten()[few] == 1).sum() == 16  # a class with fewer pixels gives all of them


def _batch(n: int = 8, unlabelled: tuple[int, ...] = ()) -> dict[str, torch.Tensor]:
    """Positives (odd rows) with a bright square at a per-image place; negatives plain noise."""
    g = torch.Generator().manual_seed(1)
    image = torch.rand(n, 1, S, S, generator=g) * 0.4 - 0.8
    target = torch.zeros(n, S, S)
    for i in range(1, n, 2):
        y, x = 4 + 3 * i % 20, 6 + 5 * i % 18
        target[i, y : y + 8, x : x + 8] = 1
    image[:, 0] += 1.2 * target
    labelled = torch.tensor([i not in unlabelled for i in range(n)])
    return {"image": image, "target": target * labelled[:, None, None], "label": (torch.arange(n) % 2).float(),
            "row": torch.arange(n), "epoch": torch.zeros(n, dtype=torch.long), "labelled": labelled}


@pytest.mark.parametrize("method", ["erm", "seg-ssl", "seg-spl"])
def test_each_methods_loss_falls_on_a_fixed_batch(method):
    torch.manual_seed(0)
    cfg = TrainConfig(method=method, ssl_rampup=0, spl_pixels=64)
    model = models.build("small", 1, pixel=True)
    head = PixelHead(2)
    objective = build(cfg, model, head=head)
    optimizer = torch.optim.Adam([*model.parameters(), *objective.parameters()], lr=3e-3)
    step = loop.Step(model, optimizer, torch.amp.GradScaler("cpu", enabled=False), torch.device("cpu"), None,
                     True, "ce+dice", 1.0, False, objective=objective, head=head)
    batch = _batch(unlabelled=(1, 3) if method == "seg-ssl" else ())
    losses, terms = [], []
    for _ in range(30):
        stats = loop.train_epoch(step, [batch], lambda n, loss: None)
        losses.append(stats["loss_sum"] / stats["n"])
        terms.append(objective.epoch_log(distributed.Dist()))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
    if method == "seg-spl":
        assert terms[-1]["spl_loss"] < terms[0]["spl_loss"]
    if method == "seg-ssl":
        assert terms[0]["ssl_weight"] == 1.0 and terms[-1]["ssl_loss"] is not None
        assert 0 <= terms[-1]["ssl_positive_share"] <= terms[-1]["ssl_confident_share"] <= 1  # a positive counts


def test_teacher_is_a_moving_average_of_the_student():
    torch.manual_seed(0)
    model = models.build("small", 1, pixel=True)
    method = build(TrainConfig(method="seg-ssl", ssl_teacher_decay=0.9), model, head=PixelHead(2))
    before = {k: v.clone() for k, v in method.teacher.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    method.after_step(None)  # step 1: a = min(0.9, 1 - 1/2) = 0.5
    name = next(k for k, v in before.items() if v.is_floating_point())
    assert torch.allclose(method.teacher.state_dict()[name], before[name] + 0.5)
    assert not any(p.requires_grad for p in method.teacher.parameters())
    fresh = build(TrainConfig(method="seg-ssl"), models.build("small", 1, pixel=True), head=PixelHead(2))
    fresh.load_state_dict(method.state_dict())
    assert fresh.steps == 1 and torch.equal(fresh.teacher.state_dict()[name], method.teacher.state_dict()[name])


def test_projection_head_is_not_part_of_the_model():
    model = models.build("small", 1, pixel=True)
    keys = set(model.state_dict())
    method = build(TrainConfig(method="seg-spl"), model, head=PixelHead(2))
    assert set(model.state_dict()) == keys
    assert method.parameters() and all(p.data_ptr() not in {q.data_ptr() for q in model.parameters()}
                                       for p in method.parameters())


def test_a_method_that_cannot_apply_is_refused_naming_what_would():
    with pytest.raises(ConfigError, match=rf"pixel granularity.*Methods that apply: {applying('pixel')}$"):
        require("seg-ssl", {"pixel": False, "binary": True})
    with pytest.raises(ConfigError, match=rf"without a kept mask.*--mask-budget.*Methods that apply: {applying('binary', 'unlabelled')}$"):
        require("seg-ssl", {"pixel": True, "binary": False, "unlabelled": False})
    with pytest.raises(ConfigError, match="seg-spl"):
        require("seg-spl", {"pixel": False})
    require("seg-ssl", {"pixel": True})  # a need the caller cannot judge yet counts as met
    for key, value in [("ssl_threshold", 0.4), ("spl_temperature", 0.0), ("ssl_teacher_decay", 1.0), ("spl_pixels", 1)]:
        with pytest.raises(ConfigError, match=key):
            check_settings(replace(TrainConfig(), **{key: value}))


def test_the_retired_ssl_shares_are_still_accepted():
    """ssl_min_share and ssl_max_share lost their meaning in issue 24 (nothing forces or caps a
    pseudo mask's share); a config.toml written before still loads and checks, whatever they hold."""
    check_settings(replace(TrainConfig(method="seg-ssl"), ssl_min_share=0.0, ssl_max_share=1.0))


def applying(*lacking: str) -> str:
    """The registered methods that need none of `lacking`, as a refusal lists them."""
    return ", ".join(m for m in METHODS.names() if not set(METHODS.get(m).needs) & set(lacking))


# train_log.parquet's columns as spurspec wrote them before methods were plug-ins (issue 23).
BEFORE_PLUGINS = [("epoch", pa.int32()), *[(c, pa.float64()) for c in (
    "train_loss", "val_loss", "val_auroc", "val_dice", "lr", "images_per_s", "data_wait_fraction", "epoch_seconds")],
    ("is_best", pa.bool_()), *[(c, pa.float64()) for c in (
        "ssl_loss", "ssl_weight", "ssl_positive_share", "ssl_confident_share", "spl_loss", "rrr_penalty",
        "cam_outside_share", "dro_max_weight")], ("dro_max_weight_group", pa.string()), ("jtt_errors", pa.int64())]


def test_train_log_schema_is_every_runs_columns_then_each_cards():
    assert TRAIN_LOG.names == [f.name for f in schemas.TRAIN_LOG_FIELDS] + log_columns()
    for card in METHODS:
        for column in METHODS.get(card).columns:
            field = TRAIN_LOG.field(column.name)
            assert field.type == column.type and field.nullable, column


def test_a_train_log_written_before_plugins_or_before_a_method_reads(tmp_path):
    row = {"epoch": 0, "train_loss": 0.5, "is_best": True, "ssl_loss": 0.25, "jtt_errors": 3}
    before = pa.schema([pa.field(n, t, nullable=n != "epoch") for n, t in BEFORE_PLUGINS],
                       metadata=schemas.train_log([]).metadata)
    io.write_table(tmp_path / "old.parquet", pa.Table.from_pylist([row], schema=before))
    old = read_train_log(tmp_path / "old.parquet")
    assert old.schema.equals(TRAIN_LOG, check_metadata=True)
    assert {k: old.column(k)[0].as_py() for k in row} == row
    # A log from before some method existed: that method's columns read as nulls.
    io.write_table(tmp_path / "base.parquet", pa.Table.from_pylist([{"epoch": 0}], schema=schemas.train_log([])))
    base = read_train_log(tmp_path / "base.parquet")
    assert base.schema.equals(TRAIN_LOG) and all(base.column(c).null_count == 1 for c in log_columns())


def test_unlabelled_rows_never_read_their_mask(tmp_path):
    n = 4
    with DatasetWriter(tmp_path / "ds", n=n, size=S, channels=1) as w:
        for i in range(n):
            mask = np.zeros((S, S), np.uint8)
            mask[2:10, 2:10] = i % 2
            w.put(i, (50 + 100 * mask)[None].astype(np.uint8), mask)
        w.finish(pa.table({
            "image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)],
            "split": ["train"] * n, "label": pa.array([i % 2 for i in range(n)], pa.int8()),
            "has_mask": [bool(i % 2) for i in range(n)], "source": ["t"] * n,
            "orig_height": pa.array([S] * n, pa.int32()), "orig_width": pa.array([S] * n, pa.int32()),
        }), spurious=[], info={"name": "t"}, settings={}, inputs={})
    labels = np.array([0, 1, 0, 1])
    rows = budget.unlabelled(labels, np.arange(n), np.array([0, 1, 2]))
    assert rows.tolist() == [3]

    class Targets:
        classes = 2

        def __call__(self, row):
            assert row != 3, "the mask of an unlabelled row was read"
            return np.ones((S, S), np.uint8)

    ds = RowsDataset(tmp_path / "ds", labels, Targets(), "none", 0, unlabelled=rows)
    assert bool(ds[1]["labelled"]) and ds[1]["target"].sum() == S * S
    assert not bool(ds[3]["labelled"]) and ds[3]["target"].sum() == 0
