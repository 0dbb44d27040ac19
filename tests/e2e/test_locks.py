"""One writer per output (spurspec.artefacts.locks): a live holder is named and refused, a dead
one's lock is taken over (same host: its pid is gone or reused; another host: its lock stopped
being refreshed), exactly one of several racing processes takes a stale lock over, and two real
`spurspec` processes started into one --out end with one exit 4 naming the other and a whole,
consistent output of the survivor."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spurspec.artefacts import locks
from spurspec.errors import ExistsError

pytestmark = pytest.mark.e2e
SPURSPEC = [sys.executable, "-m", "spurspec.cli.main"]


def _lock_file(out: Path, **record) -> Path:
    path = out.parent / f".{out.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"started": "2030-01-01T00:00:00+00:00", "stage": "train", "token": "old", **record}))
    return path


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_dead_holder_on_this_host_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _lock_file(tmp_path / "out", pid=int(dead.stdout), host=socket.gethostname())
    with locks.hold(tmp_path / "out", "ingest") as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not lock.path.exists()


def test_a_reused_pid_is_a_dead_holder(tmp_path):
    """The pid is alive (this process) but started at another time: not the holder. The lock
    taken over is this process's own record, the one a later process judges it by."""
    path = _lock_file(tmp_path / "out", pid=os.getpid(), host=socket.gethostname(), proc_start="1")
    with locks.hold(tmp_path / "out", "ingest") as lock:
        record = json.loads(path.read_text())
        assert record == lock.record
        assert set(record) == {"pid", "host", "started", "stage", "argv", "token", "proc_start"}
        assert (record["pid"], record["host"], record["stage"]) == (os.getpid(), socket.gethostname(), "ingest")
        assert record["argv"] == sys.argv[:8]
        assert record["proc_start"] == Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
        assert re.fullmatch(r"[0-9a-f]{16}", record["token"])  # a fresh token, not the dead holder's "old"
        started = datetime.fromisoformat(record["started"])
        assert abs((datetime.now(UTC) - started).total_seconds()) < 60
    assert not path.exists()


def test_another_hosts_lock_holds_until_it_expires(tmp_path):
    path = _lock_file(tmp_path / "out", pid=4242, host="node17.cluster", stage="train")
    with pytest.raises(ExistsError, match=r"in use by spurspec train \(pid 4242 on node17\.cluster, started 2030-.*taken over once unrefreshed"):
        locks.acquire(tmp_path / "out", "train")
    _age(path, locks.EXPIRY_S + 5)
    with locks.hold(tmp_path / "out", "train") as lock:
        assert json.loads(lock.path.read_text())["host"] == socket.gethostname()


def test_an_unreadable_lock_is_young_or_a_crash(tmp_path):
    path = tmp_path / ".out.lock"
    path.write_text("")  # a writer killed between creating and filling its lock
    with pytest.raises(ExistsError, match="creating its lock"):
        locks.acquire(tmp_path / "out", "ingest")
    _age(path, locks.GRACE_S + 1)
    with locks.hold(tmp_path / "out", "ingest"):
        pass


def test_nesting_heartbeat_and_release(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.05)
    out = tmp_path / "a" / "b" / "out"
    with locks.hold(out, "train") as lock:
        with locks.hold(out, "derive-boxes") as inner:  # the same process nests
            assert inner is lock and lock.depth == 2
        assert lock.path.exists()
        _age(lock.path, 100)
        time.sleep(0.3)
        assert time.time() - lock.path.stat().st_mtime < 5  # refreshed by the heartbeat
    assert not (tmp_path / "a").exists()  # parents it made are removed when nothing was written
    with locks.hold(out, "train") as lock:
        lock.path.write_text(json.dumps({"pid": 1, "token": "someone else"}))
    assert lock.path.exists()  # only the holder removes a lock, by its token


def test_leftovers_of_a_killed_writer_are_removed_with_a_message(tmp_path, cli):
    cli(["ingest", "synthetic", "--out", tmp_path / "ds", "--n", 16, "--size", 32])
    staging = tmp_path / ".ds.staging-k1ll3d"
    (staging / "grids").mkdir(parents=True)
    partial = tmp_path / "ds" / ".manifest.parquet.x1.parquet.tmp"
    partial.write_bytes(b"half")
    res = cli(["ingest", "synthetic", "--out", tmp_path / "ds", "--n", 16, "--size", 32])
    assert f"removed {staging}, left by an interrupted writer" in res.stdout
    assert "up to date" in res.stdout and not staging.exists() and not partial.exists()


_RACER = """
import sys, time
from spurspec.artefacts import locks
from spurspec.errors import ExistsError
try:
    with locks.hold(sys.argv[1], "race"):
        print("won", flush=True)
        time.sleep(1.5)
except ExistsError as exc:
    print("lost", exc)
"""


def test_one_of_several_racers_takes_a_stale_lock_over(tmp_path):
    _lock_file(tmp_path / "out", pid=4242, host="node17.cluster")
    _age(tmp_path / ".out.lock", locks.EXPIRY_S + 5)
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, str(tmp_path / "out")], stdout=subprocess.PIPE, text=True)
              for _ in range(4)]
    results = [p.communicate(timeout=120)[0] for p in racers]
    assert sum(r.startswith("won") for r in results) == 1, results
    assert all(r.startswith(("won", "lost")) for r in results), results


def _race(argvs: list[list], tmp_path: Path) -> list[tuple[subprocess.Popen, str, str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    procs = [subprocess.Popen([*SPURSPEC, *map(str, a)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=tmp_path) for a in argvs]
    return [(p, *p.communicate(timeout=600)) for p in procs]


@pytest.mark.slow
def test_two_ingests_into_one_out(tmp_path):
    from spurspec.artefacts.dataset import Dataset

    out = tmp_path / "ds"
    runs = _race([["ingest", "synthetic", "--out", out, "--n", 1200, "--size", 64, "--seed", s] for s in (1, 2)], tmp_path)
    codes = sorted(p.returncode for p, _, _ in runs)
    assert codes == [0, 4], [(p.returncode, err) for p, _, err in runs]
    winner = next(p for p, _, _ in runs if p.returncode == 0)
    loser_err = next(err for p, _, err in runs if p.returncode == 4).strip().splitlines()
    assert len(loser_err) == 1 and f"in use by spurspec ingest (pid {winner.pid} on {socket.gethostname()}" in loser_err[0]
    seed = 1 if runs[0][0] is winner else 2
    ds = Dataset.open(out)
    assert ds.manifest.num_rows == 1200
    assert json.loads(ds.layout.provenance("ingest").read_text())["settings"]["seed"] == seed
    assert not list(tmp_path.glob(".ds.*"))


@pytest.mark.slow
def test_two_trains_into_one_out(tmp_path):
    """The run is whole and one run's: its config, log and checkpoints all say the same epochs."""
    import torch

    from spurspec.artefacts.layout import RunLayout

    fast = ["--batch-size", "8", "--workers", "0", "--device", "cpu", "--patience", "0"]
    subprocess.run([*SPURSPEC, "ingest", "synthetic", "--out", str(tmp_path / "ds"), "--n", "64", "--size", "32"],
                   check=True, capture_output=True)
    runs = _race([["train", tmp_path / "ds", "--out", tmp_path / "run", "--epochs", e, "--seed", e, *fast]
                  for e in (6, 7)], tmp_path)
    assert sorted(p.returncode for p, _, _ in runs) == [0, 4], [(p.returncode, err[-500:]) for p, _, err in runs]
    winner = next(p for p, _, _ in runs if p.returncode == 0)
    loser_err = next(err for p, _, err in runs if p.returncode == 4).strip().splitlines()
    assert len(loser_err) == 1 and f"in use by spurspec train (pid {winner.pid}" in loser_err[0], loser_err
    epochs = 6 if runs[0][0] is winner else 7
    layout = RunLayout(tmp_path / "run")
    config = layout.config.read_text()
    assert f"epochs = {epochs}\n" in config and f"seed = {epochs}\n" in config
    assert pq.read_table(layout.train_log).num_rows == epochs
    last = torch.load(layout.checkpoint("last"), weights_only=True)
    assert last["epoch"] == epochs - 1 and len(last["log"]) == epochs
    assert layout.done.exists() and not list(tmp_path.glob(".run.*"))
