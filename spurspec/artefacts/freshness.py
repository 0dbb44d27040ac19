"""Is an output up to date with its inputs? The one answer every stage gives (ingest,
derive-boxes, evaluate, probe, report, theory), so their messages read alike.

A stage records the settings and input fingerprints an output was made with in a provenance file
(provenance.py). `check` compares that record with the current settings and fingerprints and
answers fresh (nothing to redo), stale (what changed, each setting and input by name, an input's
file where the stage names it) or missing (no readable record). The stage decides what each
answer means for it: an existing output made another way is refused with `Freshness.error()`
(exit 4: the user did not ask to replace it), an interrupted one without a record is simply
redone, and derive-boxes redoes its derived data saying what changed (`Freshness.redone`).
Reads the provenance file; writes nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spurspec.artefacts import io
from spurspec.errors import ExistsError

FRESH, STALE, MISSING = "fresh", "stale", "missing"
SHOWN = 3  # changes a message lists before "and N more"


def up_to_date(where: Path | str, what: str) -> str:
    """The line a stage prints when its output is fresh and nothing was recomputed."""
    return f"{where}: up to date ({what} made with the same settings and inputs); nothing recomputed, --force redoes it"


@dataclass(frozen=True)
class Freshness:
    """The answer for one output. `changes`: what differs (stale) or why there is no record
    (missing), each one short phrase naming the setting, input or file."""

    state: str
    where: str
    what: str
    changes: tuple[str, ...] = ()

    @property
    def fresh(self) -> bool:
        return self.state == FRESH

    @property
    def stale(self) -> bool:
        return self.state == STALE

    @property
    def missing(self) -> bool:
        return self.state == MISSING

    def listed(self) -> str:
        """The changes, the first SHOWN of them, joined for a one-line message."""
        more = len(self.changes) - SHOWN
        return "; ".join(self.changes[:SHOWN]) + (f"; and {more} more" if more > 0 else "")

    @property
    def message(self) -> str:
        if self.fresh:
            return up_to_date(self.where, self.what)
        if self.stale:
            return (f"{self.where}: already holds {self.what} made with other settings or inputs "
                    f"({self.listed()}); pass --force to replace it")
        return (f"{self.where}: already holds {self.what} without a readable record of its settings and inputs "
                f"({self.listed()}); pass --force to replace it")

    @property
    def redone(self) -> str:
        """The note of a stage that redoes a stale output of its own accord (derived data)."""
        return f"{self.where}: held {self.what} made with other settings or inputs ({self.listed()}); redone"

    def error(self) -> ExistsError:
        """The refusal of a stale or unrecorded output the user did not ask to replace (exit 4)."""
        return ExistsError(self.message)


def check(record: Path, settings: Mapping[str, Any], inputs: Mapping[str, str], *, where: Path | str, what: str,
          paths: Mapping[str, Path] | None = None, locations: tuple[str, ...] = ()) -> Freshness:
    """Compare the provenance file `record` with these settings and input fingerprints.
    `where` and `what` name the output in messages ("runs/r1", "metrics"); `paths` names the
    file behind an input fingerprint, so a message says which file changed. `locations`: settings
    that say where the output or its inputs live (an ingest's `out`, evaluate's `run`); not
    compared, so an output moved with its inputs stays fresh (their content is in `inputs`), also
    against records of older spurspec versions that still hold them."""
    old = _read(Path(record))
    if isinstance(old, str):
        return Freshness(MISSING, str(where), what, (old,))
    old = {**old, "settings": {k: v for k, v in (old.get("settings") or {}).items() if k not in locations}}
    settings = {k: v for k, v in settings.items() if k not in locations}
    changes = _changes(old, settings, inputs, paths or {})
    return Freshness(STALE if changes else FRESH, str(where), what, tuple(changes))


def _read(record: Path) -> dict[str, Any] | str:
    """The recorded provenance, or why there is none."""
    if not record.exists():
        return f"{record} not found"
    try:
        old = io.read_json(record)
    except (OSError, ValueError):
        return f"{record} unreadable"
    return old if isinstance(old, dict) else f"{record} unreadable"


def _changes(old: dict[str, Any], settings: Mapping[str, Any], inputs: Mapping[str, str],
             paths: Mapping[str, Path]) -> list[str]:
    """One phrase per setting or input that differs from the record, settings first, by name."""
    # Round-trip through JSON so tuples and paths compare equal to what was recorded.
    now = json.loads(json.dumps({"s": dict(settings), "i": dict(inputs)}, sort_keys=True, default=str))
    out = []
    before = old.get("settings") or {}
    for key in sorted(set(now["s"]) | set(before)):
        if now["s"].get(key) != before.get(key):
            out.append(f"setting {key}: {_short(before.get(key))} -> {_short(now['s'].get(key))}")
    before = old.get("inputs") or {}
    for key in sorted(set(now["i"]) | set(before)):
        if now["i"].get(key) == before.get(key):
            continue
        name = f"input {key} ({paths[key]})" if key in paths else f"input {key}"
        out.append(f"{name} {'added' if key not in before else 'removed' if key not in now['i'] else 'changed'}")
    return out


def _short(value: Any) -> str:
    text = "absent" if value is None else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
