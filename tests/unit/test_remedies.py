"""Remedies beside spatial supervision (training/methods/: rrr, cam_loss, groupdro, jtt, dfr and
their shared regions and groups): rrr's penalty is
zero when the input gradient lies inside the region and positive otherwise; cam-loss measures the
map's share outside; groupdro's weights move toward the worst group and weigh groups as q says;
jtt upweights exactly the identification model's errors; dfr balances groups and keeps patients
in one half; each method's loss falls on a fixed batch; a method the data cannot serve is refused."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
import torch
from method_context import build

from spurspec.errors import ConfigError
from spurspec.training import distributed, loop, models
from spurspec.training.config import TrainConfig
from spurspec.training.methods import (
    METHODS,
    cam_loss,
    check_settings,
    dfr,
    groups,
    needs_kind,
    require,
    rrr,
)
from spurspec.training.methods.groups import GroupData

S = 16
CPU = torch.device("cpu")


def _groups(group) -> GroupData:
    return GroupData(attribute="tube", groups=np.asarray(group))


def _step(model, objective=None, lr=1e-3) -> loop.Step:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr) if lr else None
    return loop.Step(model, optimizer, torch.amp.GradScaler("cpu", enabled=False), CPU, None, False, "ce", 1.0,
                     False, objective=objective)


def _batch(n: int = 8) -> dict[str, torch.Tensor]:
    """Positives (odd rows) with a bright square inside their region, and a 'tube' stripe along the
    left edge on rows 0, 1, 4, 5 (outside every region)."""
    g = torch.Generator().manual_seed(3)
    image = torch.rand(n, 1, S, S, generator=g) * 0.2 - 0.9
    target = torch.zeros(n, S, S)
    for i in range(1, n, 2):
        target[i, 6:12, 6:12] = 1
    image[:, 0] += target
    for i in (0, 1, 4, 5):
        image[i, 0, :, :2] = 0.9
    return {"image": image, "target": target, "label": (torch.arange(n) % 2).float(), "row": torch.arange(n),
            "epoch": torch.zeros(n, dtype=torch.long), "labelled": torch.ones(n, dtype=torch.bool)}


class _Box(torch.nn.Module):
    """A logit that reads only the pixels of one box: its input gradient is zero elsewhere."""

    def __init__(self, box: tuple[slice, slice]) -> None:
        super().__init__()
        self.w = torch.zeros(1, S, S)
        self.w[0][box] = 1.0
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.scale * (x * self.w).flatten(1).mean(1)


def test_rrr_penalty_is_zero_inside_the_region_and_positive_outside():
    batch = _batch()
    rrr = build(TrainConfig(method="rrr", rrr_weight=1.0), torch.nn.Identity())
    inside = _Box((slice(6, 12), slice(6, 12)))
    step = _step(inside, rrr, lr=0)
    prepared = rrr.prepare(step, batch)
    erm = loop.loss_per_image(step, inside(prepared["image"]), batch, True)
    total = rrr(step, inside(prepared["image"]), prepared, True)
    assert torch.equal(total, erm)  # gradient inside every region: exactly no penalty
    outside = _Box((slice(0, S), slice(0, 3)))
    step = _step(outside, rrr, lr=0)
    prepared = rrr.prepare(step, batch)
    excess = rrr(step, outside(prepared["image"]), prepared, True) - loop.loss_per_image(step, outside(prepared["image"]), batch, True)
    positives = batch["label"] > 0
    assert bool((excess[positives] > 0).all()) and bool((excess[~positives] == 0).all())  # negatives never penalised


def test_rrr_penalty_counts_only_pixels_outside():
    grads = torch.zeros(2, 1, 4, 4)
    grads[:, 0, 0, 0], grads[:, 0, 3, 3] = 2.0, 3.0
    region = torch.zeros(2, 4, 4)
    region[0, 0, 0] = 1
    assert rrr.rrr_penalty(grads, region).tolist() == [9.0, 13.0]


def test_cam_outside_share():
    cam = torch.tensor([[[1.0, 3.0], [0.0, -5.0]]])
    region = torch.zeros(1, 4, 4)
    region[0, :2, :2] = 1  # the top-left cell
    assert cam_loss.outside_share(cam, region).item() == pytest.approx(0.75)  # negative evidence is not mass
    region[0, 0, 3] = 1  # one pixel of the top-right cell puts that cell inside
    assert cam_loss.outside_share(cam, region).item() == 0.0
    assert cam_loss.outside_share(torch.zeros(1, 2, 2), region).item() == 0.0


def test_groupdro_weights_move_toward_the_worst_group():
    dro = build(TrainConfig(method="groupdro", dro_step=0.5), torch.nn.Identity(), labels=[0, 0, 1, 1],
                own=_groups([0, 1, 2, 3]))
    present = torch.tensor([True, True, True, False])
    for _ in range(20):
        dro.update(torch.tensor([0.1, 0.2, 2.0, 9.0]), present)
    assert int(torch.argmax(dro.q)) == 2 and dro.q[2] > 0.9
    assert dro.q[3] < dro.q[2] and float(dro.q.sum()) == pytest.approx(1.0)  # an absent group's loss is not counted


def test_groupdro_loss_is_the_q_weighted_sum_of_group_means():
    labels = [0, 0, 0, 1, 1, 1]
    dro = build(TrainConfig(method="groupdro", dro_step=0.0), torch.nn.Identity(), labels=labels,
                own=_groups([0, 0, 1, 2, 3, 3]))
    dro.q = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    batch = {"label": torch.tensor(labels, dtype=torch.float32), "row": torch.arange(6)}
    logits = torch.tensor([0.3, -1.0, 2.0, 0.5, -0.2, 1.5])
    step = _step(torch.nn.Identity(), dro, lr=0)
    per_image = loop.loss_per_image(step, logits, batch, True)
    want = (0.1 * per_image[:2].mean() + 0.2 * per_image[2] + 0.3 * per_image[3] + 0.4 * per_image[4:].mean())
    assert dro(step, logits, batch, True).mean().item() == pytest.approx(want.item(), rel=1e-6)
    assert dro.epoch_log(distributed.Dist()) == {"dro_max_weight": pytest.approx(0.4), "dro_max_weight_group": "label=1,tube=1"}


class _Stage:
    """A stage whose identification model predicts given scores."""

    def __init__(self, scores: np.ndarray, labels: np.ndarray) -> None:
        self.scores, self.labels = scores, labels
        self.data = SimpleNamespace(train_rows=np.arange(len(labels)))
        self.trained: list[int] = []

    def initial_model(self):
        return torch.nn.Identity()

    def train(self, model, epochs, label):
        self.trained.append(epochs)

    def predict(self, model, rows):
        # Probability scores: P(label 1) is the score (JTT's 0.5 cut reads `prob`).
        return {"row": rows, "score": self.scores[rows], "prob": self.scores[rows], "label": self.labels[rows].astype(float)}

    said: list[str]

    def say(self, text):
        self.said = [*getattr(self, "said", []), text]


def test_jtt_upweights_exactly_the_first_models_errors():
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.2, 0.7, 0.9, 0.1, 0.5, 0.5])  # wrong: rows 1, 3, 4 (0.5 counts as positive)
    jtt = build(TrainConfig(method="jtt", jtt_epochs=3, jtt_upweight=7.0), torch.nn.Identity(), labels=labels)
    stage = _Stage(scores, labels)
    jtt.begin(stage)
    assert stage.trained == [3]
    assert torch.nonzero(jtt.is_error).flatten().tolist() == [1, 3, 4]
    w = jtt.weights(torch.arange(6))
    assert w.mean().item() == pytest.approx(1.0)
    assert torch.allclose(w[[1, 3, 4]], 7.0 * w[0]) and torch.allclose(w[[0, 2, 5]], w[0].expand(3))
    fresh = build(TrainConfig(method="jtt"), torch.nn.Identity(), labels=labels)
    fresh.load_state_dict(jtt.state_dict())
    assert torch.equal(fresh.is_error, jtt.is_error)


@pytest.mark.parametrize(("scores", "warned"), [
    ([0.1, 0.2, 0.3, 0.4, 0.2, 0.1], "label 1"),  # every score below 0.5: the errors are the positives
    ([0.6, 0.9, 0.7, 0.8, 0.9, 0.6], "label 0"),
    ([0.2, 0.7, 0.9, 0.1, 0.5, 0.5], None),  # errors in both classes: a real error set
    ([0.2, 0.1, 0.9, 0.8, 0.3, 0.7], None),  # no errors at all
])
def test_jtt_warns_when_its_errors_are_a_whole_class(scores, warned):
    labels = np.array([0, 0, 1, 1, 0, 1])
    jtt = build(TrainConfig(method="jtt", jtt_epochs=2), torch.nn.Identity(), labels=labels)
    stage = _Stage(np.array(scores), labels)
    jtt.begin(stage)
    warnings = [t for t in stage.said if "warning" in t]
    if warned is None:
        assert not warnings
    else:
        assert len(warnings) == 1 and f"exactly the training images of {warned}" in warnings[0]
        assert "jtt_epochs, now 2" in warnings[0]


def test_dfr_halves_keep_patients_together_and_subsamples_are_balanced():
    rows = np.arange(40)
    patients = np.array([f"p{i // 3}" for i in rows])
    a, b = dfr.patient_halves(rows, patients, seed=0)
    assert not set(patients[a]) & set(patients[b]) and len(a) + len(b) == 40
    assert np.array_equal(dfr.patient_halves(rows, patients, seed=0)[0], a)
    g = np.array([0] * 10 + [1] * 3 + [2] * 5 + [3] * 7)
    idx = dfr.balanced_subsample(g, np.random.default_rng(0))
    assert np.bincount(g[idx]).tolist() == [3, 3, 3, 3]


def test_group_ids_and_attribute_choice():
    manifest = pa.table({"tube": pa.array([0, 1, None, 1], pa.int8())},
                        metadata={"spurspec.spurious": '["tube"]'})
    assert groups.group_ids(np.array([0, 0, 1, 1]), manifest, "tube").tolist() == [0, 1, -1, 3]
    assert groups.attribute_name(None, manifest, "m") == "tube"
    with pytest.raises(ConfigError, match="not a spurious attribute of m; it has: tube"):
        groups.attribute_name("marker", manifest, "m")
    two = manifest.replace_schema_metadata({"spurspec.spurious": '["tube", "marker"]'})
    with pytest.raises(ConfigError, match="several spurious attributes.*--attribute"):
        groups.attribute_name(None, two, "m")


@pytest.mark.parametrize(("size", "cells", "coarse"), [(64, 2, True), (128, 4, False)])
def test_cam_loss_tells_its_map_size_once(size, cells, coarse):
    model = models.build("small", 1, pixel=False)
    cam = build(TrainConfig(method="cam-loss"), model)
    stage = _Stage(np.zeros(2), np.zeros(2))
    cam.begin(stage)
    step = _step(model, cam, lr=0)
    batch = {**_batch(), "image": torch.zeros(8, 1, size, size), "target": torch.zeros(8, size, size)}
    for _ in range(2):
        cam(step, model(batch["image"]), batch, False)
    assert len(stage.said) == 1 and f"map is {cells}x{cells} at {size} px" in stage.said[0]
    assert ("cannot tell a lesion" in stage.said[0]) == coarse


@pytest.mark.parametrize("method", ["rrr", "cam-loss", "groupdro", "jtt"])
def test_each_remedys_loss_falls_on_a_fixed_batch(method):
    torch.manual_seed(0)
    cfg = TrainConfig(method=method)
    model = models.build("small", 1, pixel=False)
    objective = build(cfg, model, labels=[i % 2 for i in range(8)],
                      own=_groups([2 * (i % 2) + (i in (0, 1, 4, 5)) for i in range(8)]))
    if method == "jtt":
        objective.set_errors(np.array([1, 4]))
    step = _step(model, objective, lr=3e-3)
    losses = []
    for _ in range(25):
        stats = loop.train_epoch(step, [_batch()], lambda n, loss: None)
        losses.append(stats["loss_sum"] / stats["n"])
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses


def test_remedies_declare_what_they_need():
    assert needs_kind("erm") == "nothing" and needs_kind("jtt") == "nothing"
    assert needs_kind("rrr") == needs_kind("cam-loss") == needs_kind("erm", granularity_pixel=True) == "masks"
    assert needs_kind("groupdro") == needs_kind("dfr") == "attribute labels"
    fits = ", ".join(m for m in METHODS.names() if "binary" not in METHODS.get(m).needs)
    with pytest.raises(ConfigError, match=rf"method 'rrr'.*image-label granularity.*Methods that apply: {fits}$"):
        require("rrr", {"binary": False, "pixel": True})
    with pytest.raises(ConfigError, match=r"method 'groupdro'.*known on every training image.*Methods that apply: .*jtt"):
        require("groupdro", {"binary": True, "pixel": False, "train_attribute": False, "heldout_attribute": True})
    with pytest.raises(ConfigError, match=r"method 'dfr'.*validation images of every.*not torchrun"):
        require("dfr", {"binary": True, "heldout_attribute": False, "one_process": False})


def test_dfr_never_chooses_a_constant_head():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(4), 30)
    y = g // 2
    # A weak label signal in the fit half (the strongest L1 penalties zero it), reversed in the
    # select half: every real fit has robust AUROC below 0.5 there, the constant score exactly 0.5.
    x_fit = (0.4 * y + rng.normal(size=120))[:, None]
    x_sel = (-2.0 * y + 0.1 * rng.normal(size=120))[:, None]
    chosen = dfr.refit(x_fit, y, g, x_sel, y, g, subsamples=3, seed=0)
    assert np.any(chosen["weight"] != 0) and chosen["select_robust_auroc"] < 0.5
    assert chosen["C"] in dfr.DFR_C_GRID


@pytest.mark.parametrize("key, value", [("rrr_weight", -1.0), ("cam_weight", -0.1), ("dro_step", -0.01),
                                        ("jtt_epochs", 0), ("jtt_upweight", 0.5), ("dfr_subsamples", 0)])
def test_remedy_settings_out_of_range_are_refused(key, value):
    from dataclasses import replace

    with pytest.raises(ConfigError, match=key):
        check_settings(replace(TrainConfig(), **{key: value}))
