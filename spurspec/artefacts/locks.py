"""One writer per output. Every stage holds an exclusive lock on the directory it writes (a
dataset, a run, a report, a theory folder, a pipeline's study) from before its first check of
what is there until its last write, so a second `spurspec` process aimed at the same output exits
4 naming the holder instead of interleaving its files with the first one's.

Reads and writes one file beside the output: `PARENT/.NAME.lock`, a small JSON record of the
holder (pid, host, start time, stage, a random token). Beside rather than inside, so it exists
before the output does and survives a staging directory being swapped in.

Why O_EXCL and not flock/fcntl: `os.open(O_CREAT | O_EXCL)` is atomic on local filesystems and
on NFS v3+, where flock is emulated (or silently local to one client) and so cannot stop two
Slurm nodes writing one run. An O_EXCL lock outlives a killed holder, so a lock is stale, and
taken over, when:
  - its host is this host and its pid is gone (or was reused by a process started later);
  - its host is another one and the file has not been refreshed for EXPIRY_S seconds. A live
    holder touches the file every HEARTBEAT_S seconds (a daemon thread), so only a dead or
    unreachable holder expires. Hosts compare the file's mtime with their own clock: keep clocks
    within a minute or so (NTP), well inside EXPIRY_S.
A takeover happens under a second O_EXCL file (`.NAME.lock.takeover`), which re-reads the lock
and removes it only if it is still the same stale record, so two processes finding one stale
lock cannot both win, and a fresh lock is never removed. Only the holder removes its own lock."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spurspec.artefacts import io
from spurspec.errors import ConfigError, ExistsError

HEARTBEAT_S = 30.0  # a holder refreshes its lock file's mtime this often
EXPIRY_S = 300.0  # another host's lock unrefreshed this long belongs to a dead or cut-off process
GRACE_S = 10.0  # an unreadable lock younger than this is being written; older, it is a crash's
TAKEOVER_EXPIRY_S = 60.0  # a takeover takes milliseconds; one this old was left by a crash


def lock_path(out: Path) -> Path:
    """The lock file of the output directory `out` (resolved, so two spellings share one lock)."""
    target = Path(os.path.realpath(out))
    return target.parent / f".{target.name}.lock"


@dataclass
class OutputLock:
    """A held lock. `notes`: what was cleaned up on taking it (a killed writer's leftovers)."""

    out: Path
    path: Path
    record: dict[str, Any]
    created_dirs: list[Path]
    notes: list[str] = field(default_factory=list)
    depth: int = 1
    _stop: threading.Event = field(default_factory=threading.Event)


_HELD: dict[str, OutputLock] = {}  # lock path -> lock held by this process (re-entrant)


@contextlib.contextmanager
def hold(out: Path, stage: str, say: Callable[[str], None] | None = None) -> Iterator[OutputLock]:
    """Hold the lock on `out` for the block. A stage already holding it in this process nests.
    `say` hears about leftovers of a killed writer that were removed."""
    lock = acquire(out, stage)
    try:
        if say is not None:
            for note in lock.notes:
                say(note)
        yield lock
    finally:
        release(lock)


def acquire(out: Path, stage: str) -> OutputLock:
    out = Path(out)
    target = Path(os.path.realpath(_usable_output(out)))
    path = target.parent / f".{target.name}.lock"
    held = _HELD.get(str(path))
    if held is not None and held.record["pid"] == os.getpid():
        held.depth += 1
        return held
    created = _make_parent(out, target.parent)
    record = _record(stage)
    try:
        for _ in range(5):
            if _create(path, record):
                lock = OutputLock(out, path, record, created)
                lock.notes = [f"removed {p}, left by an interrupted writer of {out}" for p in io.remove_leftovers(target)]
                _HELD[str(path)] = lock
                _start_heartbeat(lock)
                return lock
            current, age = _read(path)
            if current is not None or age is not None:
                reason = _stale(current, age)
                if reason is None:
                    raise ExistsError(f"{out}: {_describe(current, age)}")
                _take_over(path, current)
        raise ExistsError(f"{out}: could not take the lock {path}; another process keeps taking it")
    except BaseException:
        _remove_dirs(created)
        raise


def release(lock: OutputLock) -> None:
    if lock.record["pid"] != os.getpid():  # a forked child never owns its parent's lock
        return
    lock.depth -= 1
    if lock.depth > 0:
        return
    lock._stop.set()
    _HELD.pop(str(lock.path), None)
    current, _ = _read(lock.path)
    if current is not None and current.get("token") == lock.record["token"]:
        with contextlib.suppress(FileNotFoundError):
            lock.path.unlink()
    _remove_dirs(lock.created_dirs)


def _usable_output(out: Path) -> Path:
    """`out` must be a directory or not exist yet, with no file in the way of creating it."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; an output must be a directory")
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{out}: cannot be created: {parent} is a file, not a directory")
            break
    return out


def _make_parent(out: Path, parent: Path) -> list[Path]:
    """Create the output's parent folders; return those created (removed again if still empty
    when the lock is released, so a stage that fails its checks leaves no trace)."""
    missing = []
    for p in [parent, *parent.parents]:
        if p.exists():
            break
        missing.append(p)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot create its folder {parent} ({exc.strerror or exc})") from None
    return missing


def _remove_dirs(dirs: list[Path]) -> None:
    for d in dirs:  # deepest first
        try:
            d.rmdir()
        except OSError:
            return  # not empty (the stage wrote there) or gone: keep the rest


def _record(stage: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "stage": stage,
        "argv": sys.argv[:8],
        "token": secrets.token_hex(8),
        "proc_start": _proc_start(os.getpid()),
    }


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the name before ')' may hold spaces


def _create(path: Path, record: dict[str, Any]) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise ConfigError(f"{path.parent}: cannot create the lock file {path.name} ({exc.strerror or exc})") from None
    try:
        os.write(fd, json.dumps(record).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _read(path: Path) -> tuple[dict[str, Any] | None, float | None]:
    """(record or None if unreadable, seconds since last refreshed or None if there is no file)."""
    try:
        age = time.time() - path.stat().st_mtime
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError):
        return None, age
    return (record if isinstance(record, dict) and "pid" in record else None), age


def _stale(record: dict[str, Any] | None, age: float | None) -> str | None:
    """Why the lock is stale, or None while its holder may be alive."""
    if record is None:
        return "unreadable" if (age or 0) > GRACE_S else None
    if record.get("host") != socket.gethostname():
        return "expired" if (age or 0) > EXPIRY_S else None
    pid = int(record.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "holder gone"
    except PermissionError:
        pass  # alive, another user's
    except (OverflowError, ValueError):
        return "bad pid"
    recorded, now = record.get("proc_start"), _proc_start(pid)
    if recorded is not None and now is not None and recorded != now:
        return "pid reused"
    return None


def _describe(record: dict[str, Any] | None, age: float | None) -> str:
    if record is None:
        return "another spurspec process is creating its lock here; try again in a few seconds"
    holder = (f"in use by spurspec {record.get('stage', '?')} (pid {record.get('pid')} on {record.get('host')}, "
              f"started {record.get('started')})")
    if record.get("host") != socket.gethostname():
        return (f"{holder}; wait for it to finish (its lock, refreshed {age or 0:.0f} s ago, is taken over "
                f"once unrefreshed for {EXPIRY_S:.0f} s)")
    return f"{holder}; wait for it to finish"


def _take_over(path: Path, stale: dict[str, Any] | None) -> None:
    """Remove the stale lock `stale` if it is still the one at `path` (under the takeover file)."""
    guard = path.with_name(path.name + ".takeover")
    if not _create(guard, _record("takeover")):
        _, age = _read(guard)
        if age is not None and age > TAKEOVER_EXPIRY_S:
            with contextlib.suppress(FileNotFoundError):
                guard.unlink()
        time.sleep(0.05)
        return
    try:
        current, age = _read(path)
        same = (current is None and stale is None) or (current is not None and stale is not None
                                                        and current.get("token") == stale.get("token"))
        if age is not None and same and _stale(current, age) is not None:
            path.unlink()
    finally:
        with contextlib.suppress(FileNotFoundError):
            guard.unlink()


def _start_heartbeat(lock: OutputLock) -> None:
    """Refresh the lock's mtime every HEARTBEAT_S seconds until it is released (another host
    judges the lock by it)."""

    def beat() -> None:
        while not lock._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(lock.path)

    threading.Thread(target=beat, name=f"spurspec-lock-{lock.path.name}", daemon=True).start()
