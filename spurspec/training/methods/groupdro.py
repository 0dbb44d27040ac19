"""`groupdro` (`--method groupdro`): online group DRO (Sagawa, Koh, Hashimoto & Liang,
"Distributionally Robust Neural Networks for Group Shifts", ICLR 2020, Algorithm 1) over the
(label, attribute) groups of groups.py: group weights q_g <- q_g exp(eta * loss_g) from each
batch's group losses, normalised, then the loss sum_g q_g * loss_g. Without their group
adjustment C / sqrt(n_g) (spurspec's choice: one setting fewer; they tune it per dataset). Its
card is in methods/__init__.py. Reads the manifest's attribute; writes nothing."""

from __future__ import annotations

import torch

from spurspec.training.config import TrainConfig
from spurspec.training.distributed import Dist
from spurspec.training.loop import Step, loss_per_image
from spurspec.training.methods.base import Method, RunContext, RunData, Say
from spurspec.training.methods.groups import GROUPS, GroupData, attribute_groups, group_name


class GroupDRO(Method):
    @classmethod
    def prepare_data(cls, cfg: TrainConfig, data: RunData, dist: Dist, say: Say) -> GroupData:
        """The groups, and whether every training image has one (need "train_attribute")."""
        attribute, groups = attribute_groups(cfg, data)
        return GroupData(have={"train_attribute": bool((groups[data.train_rows] >= 0).all())},
                         attribute=attribute, groups=groups)

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        own = ctx.own_data(GroupData)
        self.step_size, self.dist, self.attribute = ctx.cfg.dro_step, ctx.dist, own.attribute
        self.groups = torch.as_tensor(own.groups, device=ctx.device)
        self.q = torch.full((GROUPS,), 1.0 / GROUPS, dtype=torch.float64, device=ctx.device)

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

    def epoch_log(self, dist: Dist) -> dict[str, float | str | None]:
        top = int(torch.argmax(self.q))
        return {"dro_max_weight": float(self.q[top]), "dro_max_weight_group": group_name(top, self.attribute)}
