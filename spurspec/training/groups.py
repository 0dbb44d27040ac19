"""Group-robust training: `groupdro`, `jtt` and `dfr`, and the (label, attribute) groups they use.
A group is 2 * label + attribute value (0: negatives without the spurious feature, 1: negatives
with it, 2: positives without it, 3: positives with it); -1 where the attribute is unknown. Reads
the dataset's manifest and the run's best checkpoint; DFR writes RUN/dfr.parquet and the refit
head into RUN/checkpoints/best.pt.

- `groupdro`: online group DRO (Sagawa, Koh, Hashimoto & Liang, "Distributionally Robust Neural
  Networks for Group Shifts", ICLR 2020, Algorithm 1): group weights q_g <- q_g exp(eta * loss_g)
  from each batch's group losses, normalised, then the loss sum_g q_g * loss_g. Without their
  group adjustment C / sqrt(n_g) (spurspec's choice: one setting fewer; they tune it per dataset).
- `jtt`: "Just Train Twice" (Liu, Haghgoo, Chen, Raghunathan, Koh, Sagawa, Liang & Finn, ICML
  2021): an ERM identification model trained `jtt_epochs` from the run's initial weights; its
  training errors (score >= 0.5 against the label) are weighted `jtt_upweight` in the final
  training. Liu et al. upsample the error set; weighting each batch's errors instead (weights
  normalised to mean 1 in the batch, so the learning rate keeps its meaning) is the same
  objective in expectation without a longer epoch.
- `dfr`: deep feature reweighting (Kirichenko, Izmailov & Wilson, "Last Layer Re-Training is
  Sufficient for Robustness to Spurious Correlations", ICLR 2023; DFR^Tr_Val): ERM training,
  then only the last layer is refit on the best checkpoint's pooled features of a group-balanced
  half of the validation split (halves by patient, seeded), by L1 logistic regression on
  standardised features averaged over `dfr_subsamples` balanced subsamples, with the inverse
  regularisation C chosen from their grid by robust AUROC on the other half (they choose by worst-
  group accuracy; spurspec's measure is robust AUROC). Test images are never read."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

from spurspec.artefacts import schemas
from spurspec.errors import ConfigError, InputError
from spurspec.metrics.auroc import auroc
from spurspec.metrics.cells import robust_mask
from spurspec.training.loop import Objective, Step, loss_per_image

GROUPS = 4
DFR_C_GRID = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)  # Kirichenko et al.'s grid


def attribute_name(requested: str | None, manifest: pa.Table, where: str) -> str | None:
    """The spurious attribute group methods use: `requested`, or the dataset's only one; None
    when the dataset has none."""
    names = schemas.spurious_attributes(manifest)
    if requested is not None:
        if requested not in names:
            raise ConfigError(f"attribute {requested!r} is not a spurious attribute of {where}; "
                              f"it has: {', '.join(names) or 'none'}")
        return requested
    if len(names) > 1:
        raise ConfigError(f"{where} has several spurious attributes ({', '.join(names)}); choose one with --attribute")
    return names[0] if names else None


def group_ids(labels: np.ndarray, manifest: pa.Table, attribute: str | None) -> np.ndarray:
    """Per manifest row, 2 * label + attribute, or -1 where the attribute is unknown (or absent)."""
    labels = np.asarray(labels, dtype=np.int64)
    if attribute is None:
        return np.full(len(labels), -1, np.int64)
    values = manifest.column(attribute).to_pylist()
    known = np.array([v is not None and v >= 0 for v in values])
    value = np.array([v if k else 0 for v, k in zip(values, known, strict=True)], dtype=np.int64)
    return np.where(known, 2 * labels + value, -1)


def group_name(group: int, attribute: str) -> str:
    return f"label={group // 2},{attribute}={group % 2}"


class GroupDRO(Objective):
    columns = ("dro_max_weight", "dro_max_weight_group")

    def __init__(self, *, cfg: Any, device: torch.device, dist: Any, data: Any, **_: Any) -> None:
        self.step_size, self.dist, self.attribute = cfg.dro_step, dist, data.attribute
        self.groups = torch.as_tensor(data.groups, device=device)
        self.q = torch.full((GROUPS,), 1.0 / GROUPS, dtype=torch.float64, device=device)

    def update(self, group_loss: torch.Tensor, present: torch.Tensor) -> None:
        """q_g <- q_g exp(eta * loss_g) for the groups present in the batch, then normalise."""
        self.q *= torch.exp(self.step_size * group_loss.double() * present)
        self.q /= self.q.sum()

    def __call__(self, step: Step, logits: torch.Tensor, batch: dict[str, torch.Tensor], weighted: bool) -> torch.Tensor:
        loss = loss_per_image(step, logits, batch, weighted)
        g = self.groups[batch["row"].to(step.device)]
        counts = torch.zeros(GROUPS, device=step.device).scatter_add_(0, g, torch.ones_like(loss))
        sums = torch.zeros(GROUPS, device=step.device).scatter_add_(0, g, loss.detach())
        if self.dist.active:  # every rank moves q by the whole step's group losses
            both = torch.cat([sums, counts])
            torch.distributed.all_reduce(both)
            sums, counts_all = both[:GROUPS], both[GROUPS:]
        else:
            counts_all = counts
        self.update(sums / counts_all.clamp_min(1), counts_all > 0)
        # mean_i(w_i * loss_i) = sum_g q_g * mean_{i in g} loss_i with w_i = B q_g / n_g
        weight = self.q.float()[g] * len(loss) / counts[g]
        return loss * weight

    def state_dict(self) -> dict:
        return {"q": self.q.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.q = state["q"].to(self.q.device, torch.float64)

    def epoch_log(self, dist) -> dict[str, float | str | None]:
        top = int(torch.argmax(self.q))
        return {"dro_max_weight": float(self.q[top]), "dro_max_weight_group": group_name(top, self.attribute)}


class JTT(Objective):
    columns = ("jtt_errors",)

    def __init__(self, *, cfg: Any, device: torch.device, data: Any, **_: Any) -> None:
        self.cfg, self.device = cfg, device
        self.is_error = torch.zeros(len(data.labels), dtype=torch.bool, device=device)

    def begin(self, stage: Any) -> None:
        """Train the identification model and keep its training errors."""
        ident = stage.initial_model()
        stage.train(ident, self.cfg.jtt_epochs, "jtt: identification model")
        out = stage.predict(ident, stage.train_rows)
        wrong = (out["score"] >= 0.5) != (out["label"] > 0.5)
        self.set_errors(out["row"][wrong])
        stage.say(f"jtt: the identification model got {int(wrong.sum())} of {len(wrong)} training images "
                  f"wrong; they weigh {self.cfg.jtt_upweight:g} in the final training")
        positive = out["label"] > 0.5
        for label, members in ((1, positive), (0, ~positive)):
            if members.any() and np.array_equal(wrong, members):
                # Its "errors" are then a class, not the group the spurious rule fails on.
                stage.say(f"jtt: warning: those are exactly the training images of label {label}: the "
                          f"identification model put every image on one side of 0.5, so the upweighting "
                          f"reweights a class; train it longer (jtt_epochs, now {self.cfg.jtt_epochs})")

    def set_errors(self, rows: np.ndarray) -> None:
        self.is_error.zero_()
        self.is_error[torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.device)] = True

    def weights(self, rows: torch.Tensor) -> torch.Tensor:
        """(B,) the upweight on the batch's errors and 1 elsewhere, scaled to mean 1."""
        w = torch.where(self.is_error[rows.to(self.device)], self.cfg.jtt_upweight, 1.0)
        return w * len(w) / w.sum()

    def __call__(self, step: Step, logits: torch.Tensor, batch: dict[str, torch.Tensor], weighted: bool) -> torch.Tensor:
        return loss_per_image(step, logits, batch, weighted) * self.weights(batch["row"])

    def state_dict(self) -> dict:
        return {"jtt_errors": torch.nonzero(self.is_error).flatten().cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.set_errors(state["jtt_errors"].numpy())

    def epoch_log(self, dist) -> dict[str, float | None]:
        return {"jtt_errors": int(self.is_error.sum())}


class DFR(Objective):
    def __init__(self, *, cfg: Any, data: Any, **_: Any) -> None:
        self.cfg, self.data = cfg, data
        self.chosen: dict[str, Any] = {}

    def end(self, stage: Any) -> None:
        """Refit the best model's head on half of val, choose C on the other half, save it."""
        model = stage.best_model()
        val = stage.rows["val"]
        fit_rows, select_rows = patient_halves(val, stage.patients, self.cfg.seed)
        features = stage.features(model, np.concatenate([fit_rows, select_rows]))
        x_fit, x_sel = features[: len(fit_rows)], features[len(fit_rows):]
        groups, labels = self.data.groups, self.data.labels
        choice = refit(x_fit, labels[fit_rows], groups[fit_rows], x_sel, labels[select_rows],
                       groups[select_rows], self.cfg.dfr_subsamples, self.cfg.seed)
        with torch.no_grad():
            model.head.weight.copy_(torch.as_tensor(choice["weight"], dtype=model.head.weight.dtype)[None])
            model.head.bias.fill_(float(choice["bias"]))
        stage.save_best(model, {"row": np.concatenate([fit_rows, select_rows]),
                                "half": ["fit"] * len(fit_rows) + ["select"] * len(select_rows)})
        self.chosen = {k: v for k, v in choice.items() if k not in ("weight", "bias")}
        stage.say(f"dfr: last layer refit on {choice['fit_images']} group-balanced val images, "
                  f"C = {choice['C']:g} chosen by robust AUROC {choice['select_robust_auroc']:.3f} on the other half")

    def record(self) -> dict:
        return {"dfr": self.chosen}


def patient_halves(rows: np.ndarray, patients: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows split into two halves by patient (a patient's images stay together), seeded."""
    ids = np.unique(patients[rows])
    rng = np.random.default_rng([seed, 42])
    first = set(rng.permutation(ids)[: (len(ids) + 1) // 2].tolist())
    in_first = np.array([p in first for p in patients[rows]], dtype=bool)
    return rows[in_first], rows[~in_first]


def balanced_subsample(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of an equal number of items from each of the 4 groups (the smallest group's size)."""
    members = [np.flatnonzero(groups == g) for g in range(GROUPS)]
    n = min(len(m) for m in members)
    return np.sort(np.concatenate([rng.choice(m, n, replace=False) for m in members]))


def refit(x_fit, y_fit, g_fit, x_sel, y_sel, g_sel, subsamples: int, seed: int) -> dict[str, Any]:
    """Per C of DFR_C_GRID: L1 logistic regressions on standardised features of balanced
    subsamples of the fit half, weights averaged; the C with the highest robust AUROC on the
    select half (ties: the first in the grid). A C that zeroes every weight is skipped: its
    constant score has robust AUROC 0.5 exactly, which would beat every model that reads the
    spurious feature without being one. Returns the head in raw feature units."""
    from sklearn.linear_model import LogisticRegression

    mean, std = x_fit.mean(0), x_fit.std(0) + 1e-8
    z_fit, z_sel = (x_fit - mean) / std, (x_sel - mean) / std
    robust = robust_mask(y_sel, np.where(g_sel >= 0, g_sel % 2, -1))
    best: dict[str, Any] | None = None
    for c in DFR_C_GRID:
        rng = np.random.default_rng([seed, 43])
        coefs, intercepts = [], []
        for _ in range(subsamples):
            idx = balanced_subsample(g_fit, rng)
            lr = LogisticRegression(C=c, l1_ratio=1.0, solver="liblinear", random_state=seed).fit(z_fit[idx], y_fit[idx])
            coefs.append(lr.coef_[0])
            intercepts.append(lr.intercept_[0])
        coef, intercept = np.mean(coefs, 0), float(np.mean(intercepts))
        if not coef.any():  # every weight zeroed: a constant score, whose AUROC of 0.5 is no choice
            continue
        value = auroc((z_sel @ coef + intercept)[robust], y_sel[robust])
        value = -np.inf if value is None else value
        if best is None or value > best["select_robust_auroc"]:
            best = {"C": c, "select_robust_auroc": value, "coef": coef, "intercept": intercept, "fit_images": len(idx)}
    if best is None:
        raise InputError("dfr: the L1 logistic regression zeroed every feature weight at every C of its grid "
                         f"({', '.join(map(str, DFR_C_GRID))}); the validation half holds too few images to refit on")
    weight = best.pop("coef") / std
    best["weight"], best["bias"] = weight, best.pop("intercept") - float(weight @ mean)
    return best


def groups_meet(groups: np.ndarray, rows: np.ndarray) -> bool:
    """Whether `rows` hold an image of each of the 4 groups."""
    known = groups[rows][groups[rows] >= 0]
    return bool((np.bincount(known, minlength=GROUPS) > 0).all())


def dfr_halves_meet(groups: np.ndarray, val_rows: np.ndarray, patients: np.ndarray, seed: int) -> bool:
    """Whether both of DFR's validation halves hold every group (its need `heldout_attribute`)."""
    return all(groups_meet(groups, half) for half in patient_halves(val_rows, patients, seed))

