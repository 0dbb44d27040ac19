"""What every benchmark writes beside the figures it prints: one JSON file (`--json PATH`) holding
the command, the results, and the machine they came from: CPU model, cores (all, and those this
process may use), memory, Python / torch / numpy versions, the date, and how busy other
processes kept the cores while it ran (so a reader knows whether to trust the rates or only the
side-by-side ratios). tests/benchmarks/render.py turns these files into docs/benchmarks.md's tables and figures.
Reads /proc (Linux; elsewhere the load fields are null); writes the JSON file."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from spurspec import runtime


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * page / 2**30, 1)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _busy_seconds() -> float | None:
    """CPU-seconds every process on the machine has run since boot (/proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU-seconds of this process and its waited-for children (worker pools, subprocesses)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Run:
    """Start it before the work and `write` after: the load other processes put on the cores
    in between is their CPU-seconds (machine total less this process tree's) over the wall time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = dt.datetime.now(dt.UTC)
        self.t0, self.busy0, self.own0 = time.perf_counter(), _busy_seconds(), _own_seconds()

    def machine(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        busy = _busy_seconds()
        others = None
        if busy is not None and self.busy0 is not None and wall > 0:
            others = max(0.0, (busy - self.busy0) - (_own_seconds() - self.own0)) / wall
        return {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "usable_cores": runtime.allowed_cores(),
            "memory_gib": _memory_gib(),
            "python": platform.python_version(),
            "torch": _version("torch"),
            "numpy": _version("numpy"),
            "platform": platform.platform(),
            "date": self.started.strftime("%Y-%m-%d %H:%M UTC"),
            "seconds": round(wall, 1),
            # Cores kept busy by other processes while this ran, on average (0 = a quiet machine).
            "other_load": None if others is None else round(others, 2),
        }

    def write(self, path: Path | None, config: dict[str, Any], results: dict[str, Any]) -> None:
        """Write the JSON file when a path was given (`make bench` gives one; ad-hoc runs print only)."""
        if path is None:
            return
        argv = list(sys.argv)
        if "--json" in argv:  # where the file went is not part of what was measured
            del argv[argv.index("--json") : argv.index("--json") + 2]
        payload = {"benchmark": self.name, "command": " ".join([".venv/bin/python", *argv]),
                   "machine": self.machine(), "config": config, "results": results}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path}")
