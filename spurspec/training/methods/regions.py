"""What the explanation-guided methods `rrr` (rrr.py) and `cam-loss` (cam_loss.py) share: they
train image-label (binary) classifiers and use the annotated regions the data already has (a
training positive's mask, or the box around it, while the mask budget keeps it) to penalise
evidence outside them. Their batch items carry the region as `target` (moved with the image by
the batch augmentation) and `labelled` (False where the budget keeps no region: no penalty
there). Negatives are never penalised: nothing says where a negative's evidence should lie.
Reads the dataset's masks or boxes (rank 0 derives missing boxes first); writes nothing."""

from __future__ import annotations

import torch

from spurspec.training import progress
from spurspec.training.config import TrainConfig
from spurspec.training.data import budget, granularity
from spurspec.training.distributed import Dist
from spurspec.training.methods.base import Method, MethodData, RunContext, RunData, Say


def regions(batch: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(region (B, H, W) float {0, 1}, penalised (B,) bool): the region of each image and whether
    the image is penalised (a positive whose region the budget keeps)."""
    region = (batch["target"].to(device) > 0).float()
    penalised = batch["labelled"].to(device).bool() & (batch["label"].to(device) > 0.5)
    return region, penalised


class RegionTerm(Method):
    """A per-image term on penalised images, logged as its mean in train_log column `column`."""

    column = ""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self._sums = torch.zeros(2, dtype=torch.float64, device=ctx.device)  # term sum, penalised images

    @classmethod
    def prepare_data(cls, cfg: TrainConfig, data: RunData, dist: Dist, say: Say) -> MethodData:
        """The regions of the training positives the mask budget keeps (need "regions"); the other
        training positives are trained without a penalty."""
        train = data.rows["train"]
        kept, table = budget.choose(data.ds.manifest, train, cfg.mask_budget, cfg.seed)
        if not bool((data.labels[kept] == 1).any()):
            return MethodData(have={"regions": False}, budget=table)
        region = granularity.parse(cfg.region)
        targets = dist.rank0_first(lambda main: granularity.prepare(
            data.ds, region, cfg.box_mode, say=say if main else progress.Silent().say, head="two-class"))
        return MethodData(have={"regions": True}, targets=targets, budget=table,
                          unlabelled=budget.unlabelled(data.labels, train, kept))

    def _add(self, term: torch.Tensor, penalised: torch.Tensor) -> None:
        with torch.no_grad():
            self._sums += torch.stack([term.detach().double().sum(), penalised.double().sum()])

    def epoch_log(self, dist: Dist) -> dict[str, float | str | None]:
        total, n = dist.sum(self._sums.cpu().tolist())
        self._sums.zero_()
        return {self.column: total / n if n else None}

