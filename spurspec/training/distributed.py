"""torchrun support, driven by the environment torchrun sets (WORLD_SIZE, RANK, LOCAL_RANK):
process-group set-up (nccl on CUDA, gloo on CPU), the device of this rank, sums and gathers
across ranks, and "rank 0 first, then the others" for files one rank writes and all read.
Without torchrun everything is a no-op on one process."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from spurspec.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:  # only the main rank writes files and prints
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def rank0_first(self, work: Callable[[bool], T]) -> T:
        """`work(True)` on rank 0, then, after a barrier, `work(False)` on the other ranks: rank 0
        fetches or derives a missing file (and says so) before the others read it."""
        if self.main:
            result = work(True)
        self.barrier()
        if not self.main:
            result = work(False)
        return result

    def sum(self, values: list[float]) -> list[float]:
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        if dist.get_backend() == "nccl":  # nccl reduces device tensors only
            t = t.to(torch.device("cuda", self.local_rank))
        dist.all_reduce(t)
        return t.cpu().tolist()

    def gather(self, obj: Any) -> list[Any]:
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def choose_device(name: str) -> torch.device:
    """`auto` = cuda if available else cpu; chosen once, then passed everywhere."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def setup(device_name: str) -> tuple[Dist, torch.device]:
    """Initialise from torchrun's environment (if any) and pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = choose_device(device_name)
    if world <= 1:
        return Dist(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=rank, world=world, local_rank=local_rank), device
