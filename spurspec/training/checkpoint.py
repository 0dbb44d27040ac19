"""Checkpoints RUN/checkpoints/{last,best}.pt, written atomically. last.pt is what a resume needs:
model, optimiser, scheduler, grad scaler, every RNG state, epoch, early-stopping state, the train
log so far and the method's own state (`method`: e.g. Seg-SSL's teacher, Seg-SPL's projection
head; empty for ERM; the model itself never includes it, so predict loads `model` strictly).
best.pt is what scoring needs: the model, its epoch, the selection state and the log, without the
training state (Adam's two moments make a full checkpoint three times the model: 415 MB rather
than 140 MB for the study's network). Everything is
stored as tensors, numbers, strings, lists and dicts, so loading uses torch.load(weights_only=True)
and never runs code from the file."""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spurspec.artefacts.io import atomic_path
from spurspec.errors import ArtefactError, SpurspecError

FORMAT = 1


def rng_states() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(path: Path, *, model: torch.nn.Module, optimizer, scheduler, scaler, epoch: int,
         best: float | None, best_epoch: int, log: list[dict[str, Any]], meta: dict[str, Any],
         method: dict[str, Any] | None = None, resumable: bool = True) -> None:
    """`epoch` is the last finished epoch (0-based); training resumes at epoch + 1. A checkpoint
    that is not `resumable` (best.pt) leaves out the optimiser, scheduler, scaler, RNG and method
    state."""
    state = {
        "format": FORMAT,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": epoch,
        "best": best,
        "best_epoch": best_epoch,
        "log": log,
        "meta": meta,
    }
    if resumable:
        state |= {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                  "scaler": scaler.state_dict(), "rng": rng_states(), "method": method or {}}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def replace_model(path: Path, model: torch.nn.Module) -> None:
    """Rewrite a checkpoint with `model`'s weights, everything else as it was (atomically)."""
    state = load(path)
    state["model"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def torch_load(path: Path, what: str, error: type[SpurspecError] = ArtefactError,
               map_location: str | torch.device = "cpu") -> Any:
    """torch.load(weights_only=True): tensors and plain data only, never code. A file holding
    anything else is refused with spurspec's message; torch's own advice to retry with
    weights_only=False is dropped, since following it would run the file's code."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except Exception as exc:  # torch raises several types for a damaged or unsafe file
        # torch's message: its advice to retry with weights_only=False, then what it found.
        lines = [line.strip() for line in str(exc).splitlines()
                 if line.strip() and "weights_only" not in line and "torch.load" not in line]
        globals_ = [line for line in lines if "global" in line.lower()]
        if isinstance(exc, pickle.UnpicklingError) and globals_:
            raise error(f"{path}: refused: the {what} holds objects other than tensors and plain data "
                        f"({globals_[0]}); spurspec loads weights only and never runs code from a file") from None
        detail = " ".join(" ".join(lines).split())[:300] or type(exc).__name__
        raise error(f"{path}: unreadable {what} ({detail})") from None


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if not Path(path).exists():
        raise ArtefactError(f"{path}: checkpoint not found")
    state = torch_load(path, "checkpoint", ArtefactError, map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ArtefactError(f"{path}: not a spurspec checkpoint (format {FORMAT})")
    return state
