"""`dfr` (`--method dfr`): deep feature reweighting (Kirichenko, Izmailov & Wilson, "Last Layer
Re-Training is Sufficient for Robustness to Spurious Correlations", ICLR 2023; DFR^Tr_Val): ERM
training, then only the last layer is refit on the best checkpoint's pooled features of a
group-balanced half of the validation split (halves by patient, seeded; groups of groups.py), by
L1 logistic regression on standardised features averaged over `dfr_subsamples` balanced
subsamples, with the inverse regularisation C chosen from their grid by robust AUROC on the other
half (they choose by worst-group accuracy; spurspec's measure is robust AUROC). Test images are
never read. Its card is in methods/__init__.py. Reads the manifest and the run's best
checkpoint; writes RUN/dfr.parquet and the refit head into RUN/checkpoints/best.pt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from spurspec.artefacts import schemas
from spurspec.errors import InputError
from spurspec.metrics.auroc import auroc
from spurspec.metrics.cells import robust_mask
from spurspec.training.config import TrainConfig
from spurspec.training.distributed import Dist
from spurspec.training.methods.base import Method, RunContext, RunData, Say, Stage
from spurspec.training.methods.groups import GROUPS, GroupData, attribute_groups, groups_meet

DFR_C_GRID = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)  # Kirichenko et al.'s grid


@dataclass(frozen=True)
class DFRData(GroupData):
    patients: np.ndarray = field(default_factory=lambda: np.zeros(0, object))  # per row, the patient id (the halves)


class DFR(Method):
    @classmethod
    def prepare_data(cls, cfg: TrainConfig, data: RunData, dist: Dist, say: Say) -> DFRData:
        """The groups and patients, and whether both validation halves hold every group (need
        "heldout_attribute")."""
        attribute, groups = attribute_groups(cfg, data)
        patients = np.asarray(data.ds.manifest.column("patient_id").to_pylist())
        meet = all(groups_meet(groups, half) for half in patient_halves(data.rows["val"], patients, cfg.seed))
        return DFRData(have={"heldout_attribute": meet}, attribute=attribute, groups=groups, patients=patients)

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.cfg, self.own = ctx.cfg, ctx.own_data(DFRData)
        self.chosen: dict[str, Any] = {}

    def end(self, stage: Stage) -> None:
        """Refit the best model's head on half of val, choose C on the other half, save it."""
        model = stage.best_model()
        fit_rows, select_rows = patient_halves(stage.data.rows["val"], self.own.patients, self.cfg.seed)
        features = stage.features(model, np.concatenate([fit_rows, select_rows]))
        x_fit, x_sel = features[: len(fit_rows)], features[len(fit_rows):]
        groups, labels = self.own.groups, stage.data.labels
        choice = refit(x_fit, labels[fit_rows], groups[fit_rows], x_sel, labels[select_rows],
                       groups[select_rows], self.cfg.dfr_subsamples, self.cfg.seed)
        stage.step.binary.set_log_odds(model.head, torch.as_tensor(choice["weight"]), choice["bias"])
        ids = stage.data.ds.manifest.column("image_id").to_pylist()
        rows = np.concatenate([fit_rows, select_rows])
        stage.write_table(stage.layout.dfr, pa.table({
            "row": pa.array(rows.astype(np.int32)), "image_id": pa.array([ids[r] for r in rows]),
            "half": pa.array(["fit"] * len(fit_rows) + ["select"] * len(select_rows))}), schemas.DFR_HALVES)
        stage.replace_best(model)
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
