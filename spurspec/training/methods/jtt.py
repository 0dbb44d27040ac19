"""`jtt` (`--method jtt`): "Just Train Twice" (Liu, Haghgoo, Chen, Raghunathan, Koh, Sagawa, Liang
& Finn, ICML 2021): an ERM identification model trained `jtt_epochs` from the run's initial
weights; its training errors (P(label 1) >= 0.5 against the label, whatever score the run ranks by) are weighted `jtt_upweight` in the
final training. Liu et al. upsample the error set; weighting each batch's errors instead
(weights normalised to mean 1 in the batch, so the learning rate keeps its meaning) is the same
objective in expectation without a longer epoch. Its card is in methods/__init__.py. Reads the
run's training images; writes nothing."""

from __future__ import annotations

import numpy as np
import torch

from spurspec.training.distributed import Dist
from spurspec.training.loop import Step, loss_per_image
from spurspec.training.methods.base import Method, RunContext, Stage


class JTT(Method):
    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.cfg, self.device = ctx.cfg, ctx.device
        self.is_error = torch.zeros(len(ctx.data.labels), dtype=torch.bool, device=ctx.device)

    def begin(self, stage: Stage) -> None:
        """Train the identification model and keep its training errors."""
        ident = stage.initial_model()
        stage.train(ident, self.cfg.jtt_epochs, "jtt: identification model")
        out = stage.predict(ident, stage.data.train_rows)
        wrong = (out["prob"] >= 0.5) != (out["label"] > 0.5)
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

    def epoch_log(self, dist: Dist) -> dict[str, float | str | None]:
        return {"jtt_errors": int(self.is_error.sum())}
