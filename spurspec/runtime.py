"""How many compute threads a stage uses: the cores this process may really use (its CPU affinity,
Slurm's allocation, a cgroup CPU quota) unless the user says (`--threads`, or OMP_NUM_THREADS in
the environment). Torch's default is every core of the machine, whatever the allocation. Reads
the environment and /sys/fs/cgroup; sets torch's thread count."""

from __future__ import annotations

import math
import os
from pathlib import Path


def allowed_cores() -> int:
    """Cores this process may run on: affinity, capped by Slurm's allocation and a cgroup quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm and slurm.isdigit():
        cores = min(cores, int(slurm))
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, quota)
    return max(1, cores)


def _cgroup_quota() -> int | None:
    """ceil(quota / period) of a cgroup v2 `cpu.max`, if the process runs under one."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except OSError:
        return None
    if len(text) != 2 or text[0] == "max":
        return None
    try:
        return max(1, math.ceil(int(text[0]) / int(text[1])))
    except ValueError:
        return None


def choose_threads(requested: int | None = None) -> int:
    """`requested`, else OMP_NUM_THREADS if the user set it, else the allowed cores. Not the free
    ones: a thread count that followed the machine's load would change results in their last
    bits from one run to the next (reductions split differently), and the same command must give
    the same artefacts. Waiting threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE, set in
    spurspec/__init__.py), which is what made two runs sharing the cores so slow."""
    if requested:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return allowed_cores()


def configure(requested: int | None = None) -> int:
    """Set torch's intra-op threads for this process; returns the number chosen."""
    import torch

    n = choose_threads(requested)
    torch.set_num_threads(n)
    return n
