"""What every ingest shares: decoding items in parallel (a process pool whose workers write their
rows into the output arrays themselves and send back only the manifest facts, so memory stays
flat and the parent does almost nothing), the one collector of bad inputs (`--skip-bad`, or
stop naming the file or row), the count tables the CLI prints, and the decode-and-write step of
sources that list image files (`ingest folder`, `ingest isic`): Item, parse_binary,
assign_splits, write_dataset. Reads the listed files; writes through DatasetWriter."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from spurspec.artefacts import locks
from spurspec.artefacts.dataset import DatasetWriter, RowSink
from spurspec.artefacts.schemas import SPLITS
from spurspec.config import check_seed
from spurspec.datasets.splits import split_groups
from spurspec.errors import ConfigError, InputError
from spurspec.imaging import readers, rle
from spurspec.imaging.limits import input_fault
from spurspec.imaging.resize import AREA, MASK_RESIZES, resize_image, resize_mask


@dataclass(frozen=True)
class Decoded:
    """A worker's result for one item: the image (C, S, S) uint8, mask (S, S) {0,1} or None,
    and any per-item facts for the manifest (e.g. DICOM tags)."""

    image: np.ndarray
    mask: np.ndarray | None
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class IngestResult:
    out: Path
    n_images: int
    n_rejected: int
    up_to_date: bool
    counts: list[dict[str, Any]]  # the count table: rows of split, label, ..., n
    notes: list[str] = field(default_factory=list)


@dataclass
class Rejects:
    """The bad inputs of one ingest, each named by its file or row, in the order found. With
    `skip_bad` they are left out and written to rejects.parquet; without it the ingest stops
    at `stop()` (or at once, through `reject`) naming the first, before anything is written."""

    skip_bad: bool
    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, where: str, reason: str) -> None:
        """Record a bad input; a source that checks many rows at once stops later, at `stop`."""
        self.rows.append({"input": where, "reason": reason})

    def stop(self) -> None:
        """Without skip_bad, any bad input so far ends the ingest: one line naming the first."""
        if self.rows and not self.skip_bad:
            first = f"{self.rows[0]['input']}: {self.rows[0]['reason']}"
            if len(self.rows) == 1:
                raise InputError(f"{first} (use --skip-bad to leave it out)")
            raise InputError(f"{first} (and {len(self.rows) - 1} more problem(s)); use --skip-bad to leave them out")

    def reject(self, where: str, reason: str) -> None:
        """Record a bad input and stop at once unless skip_bad."""
        self.add(where, reason)
        self.stop()

    def table(self) -> pa.Table | None:
        """rejects.parquet's content, or None when every input was good."""
        if not self.rows:
            return None
        return pa.Table.from_pylist(self.rows, schema=pa.schema([("input", pa.string()), ("reason", pa.string())]))


# The largest training size any ingest writes: 8x the study's 512 px. images.npy holds N x C x S x S
# bytes, so beyond this a dataset outgrows disks and memory maps long before it trains.
MAX_SIZE = 4096


def check_size(size: int, min_size: int = 8) -> None:
    if not min_size <= size <= MAX_SIZE:
        raise ConfigError(f"size={size}: must be between {min_size} and {MAX_SIZE} pixels")


def check_basics(size: int, seed: int, workers: int, min_size: int = 8) -> None:
    """The settings every file-reading ingest shares: a usable training size, a seed numpy
    accepts, and a worker count (0 = automatic where a source supports it)."""
    check_size(size, min_size)
    check_seed(seed)
    if workers < 0:
        raise ConfigError(f"workers must be 0 or more, got {workers}")


def check_mask_resize(mode: str) -> None:
    if mode not in MASK_RESIZES:
        raise ConfigError(f"mask_resize must be one of {', '.join(MASK_RESIZES)}, got {mode!r}")


# Settings added after datasets were first made, each with the value that gives the output made
# before it existed: provenance records one only when set otherwise, so re-running an ingest made
# before it (with the default) still finds its dataset up to date.
ADDED_SETTINGS = {"mask_resize": AREA, "allow_outside_root": False}


def recorded_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` as an ingest's provenance records them (ADDED_SETTINGS at their default left out)."""
    return {k: v for k, v in settings.items() if k not in ADDED_SETTINGS or ADDED_SETTINGS[k] != v}


@contextlib.contextmanager
def reading_inputs() -> Iterator[None]:
    """Around finding, listing and fingerprinting a source's input files (nothing inside writes):
    an OSError that says an input is unusable as it stands (limits.INPUT_FAULTS: a symbolic link
    loop, no permission) is bad input, exit 2, one line naming the path. Any other OSError (an
    I/O error) stays the system's refusal, exit 1, as do the output's (a full disk)."""
    try:
        yield
    except OSError as exc:
        fault = input_fault(exc)
        if fault is None:
            raise
        raise fault from None


def locked_ingest(out: Path, run: Callable[[], IngestResult]) -> IngestResult:
    """Run an ingest holding the lock on its output directory (one writer per dataset, exit 4
    for a second one); leftovers of a killed ingest into the same output are removed first,
    and the result's notes say so."""
    with locks.hold(out, "ingest") as lock:
        result = run()
    result.notes = [*lock.notes, *result.notes]
    return result


Result = tuple[int, dict[str, Any] | None, bool, str | None]  # index, facts, mask has a region, error


def _call(fn: Callable[[Any], Decoded], sink: RowSink, index: int, payload: Any) -> Result:
    """Decode one item and write its row: (index, facts, region, None), or (index, None, False,
    reason)."""
    try:
        decoded = fn(payload)
    except InputError as exc:
        return index, None, False, str(exc)
    region = sink.put(index, decoded.image, decoded.mask)
    return index, decoded.facts, region, None


# Items per task sent to a worker: enough that the pool's per-task round trip is paid rarely, few
# enough that two workers stay evenly loaded to the end of a small ingest.
CHUNK = 4

# A worker process's own handle on the arrays being written (set once by _open_sink), or the
# error that opening it raised.
_WORKER_SINK: RowSink | OSError | None = None


def _open_sink(sink: RowSink) -> None:
    global _WORKER_SINK
    try:
        _WORKER_SINK = sink.reopened()
    except OSError as exc:
        # Raised by the worker's first task instead: an initializer's exception only breaks the
        # pool (BrokenProcessPool, which names neither the file nor the reason).
        _WORKER_SINK = OSError(exc.errno, exc.strerror, exc.filename)


def _call_chunk(fn: Callable[[Any], Decoded], chunk: list[tuple[int, Any]]) -> list[Result]:
    if isinstance(_WORKER_SINK, OSError):
        raise _WORKER_SINK
    assert _WORKER_SINK is not None, "worker started without _open_sink"
    return [_call(fn, _WORKER_SINK, index, payload) for index, payload in chunk]


def decode_all(
    items: list[tuple[str, Any]],
    decode: Callable[[Any], Decoded],
    writer: DatasetWriter,
    workers: int,
    rejects: Rejects,
    progress: Callable[..., None] | None = None,
) -> tuple[list[int], dict[int, dict[str, Any]]]:
    """Decode `items` = [(input name, payload)] with `decode` (a top-level function, so it can
    run in worker processes) and write each result into the writer's row at its index.

    Returns (kept indices, facts by index); bad items go to `rejects`, which stops at the first
    one without skip_bad, so the caller's writer writes nothing.
    """
    kept: list[int] = []
    facts: dict[int, dict[str, Any]] = {}
    if progress is not None:
        progress(0, total=len(items))
    for index, found, region, error in _run(items, decode, writer.sink, workers):
        if error is not None:
            rejects.reject(items[index][0], error)
        else:
            writer.mark(index, region)
            facts[index] = found
            kept.append(index)
        if progress is not None:
            progress(1)
    return kept, facts


def _run(items: list[tuple[str, Any]], decode: Callable[[Any], Decoded], sink: RowSink,
         workers: int) -> Iterator[Result]:
    """A Result per item in order; rows are written by whoever decoded them."""
    if workers <= 1:
        for i, (_, payload) in enumerate(items):
            yield _call(decode, sink, i, payload)
        return
    # 'spawn' would re-import torch in every worker; fork is safe here and starts instantly (the
    # only other thread is the output lock's heartbeat, which holds nothing a child could need).
    # Each worker writes its rows itself (positioned writes to its own handle), so only the
    # manifest facts travel back; items go in chunks, so per-task overhead is paid once per chunk.
    ctx = mp.get_context("fork")
    indexed = [(i, payload) for i, (_, payload) in enumerate(items)]
    chunks = [indexed[k : k + CHUNK] for k in range(0, len(indexed), CHUNK)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_open_sink, initargs=(sink,)) as pool:
        # Bounded window of futures: results stream back in order without queuing the dataset.
        window = workers * 4
        pending: list[Any] = []
        for chunk in chunks:
            pending.append(pool.submit(_call_chunk, decode, chunk))
            if len(pending) >= window:
                yield from pending.pop(0).result()
        for fut in pending:
            yield from fut.result()


def _split_order(split: str) -> int:
    return SPLITS.index(split) if split in SPLITS else len(SPLITS)


def count_table(manifest: pa.Table, spurious: list[str]) -> list[dict[str, Any]]:
    """Image counts by split x label x each spurious attribute (null shown as None): the full
    cross-table, for sources with one or two attributes (SIIM, synthetic)."""
    cols = ["split", "label", *spurious]
    data = manifest.select(cols).to_pylist()
    counts: dict[tuple, int] = {}
    for row in data:
        key = tuple(row[c] for c in cols)
        counts[key] = counts.get(key, 0) + 1
    keys = sorted(counts, key=lambda k: (_split_order(k[0]), *(repr(x) for x in k[1:])))
    return [dict(zip(cols, k, strict=True), n=counts[k]) for k in keys]


def attribute_count_table(manifest: pa.Table, spurious: list[str]) -> list[dict[str, Any]]:
    """One row per split x label: image count, masks, and how many carry each attribute (a
    compact view even with many attributes, where a full cross-table would explode)."""
    data = manifest.select(["split", "label", "has_mask", *spurious]).to_pydict()
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for i, (split, label) in enumerate(zip(data["split"], data["label"], strict=True)):
        row = rows.setdefault((split, label), {"split": split, "label": label, "n": 0, "masks": 0, **dict.fromkeys(spurious, 0)})
        row["n"] += 1
        row["masks"] += int(bool(data["has_mask"][i]))
        for a in spurious:
            row[a] += int(data[a][i] == 1)
    return [rows[k] for k in sorted(rows, key=lambda k: (_split_order(k[0]), k[1]))]


# ---- sources that list image files (folder, isic) -------------------------------------------


@dataclass
class Item:
    """One image file to decode and its manifest row (split may be filled in later)."""

    name: str  # how errors name it, e.g. "images.csv row 3"
    image_id: str
    patient_id: str
    label: int
    spurious: dict[str, int | None]
    image: Path
    mask: Path | None = None
    rle: str | None = None
    split: str | None = None


def parse_binary(value: Any, where: str, what: str, nullable: bool) -> int | None:
    """0/1 (also true/false, 0.0/1.0) -> int; empty -> None if nullable; anything else errors."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if nullable:
            return None
        raise InputError(f"{where}: {what} is empty")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    text = str(value).strip().lower()
    if text in ("0", "1", "0.0", "1.0"):
        return int(float(text))
    if text in ("true", "false"):
        return int(text == "true")
    raise InputError(f"{where}: {what} must be 0 or 1, found {value!r}")


def assign_splits(items: list[Item], spurious: list[str], seed: int, val: float, test: float) -> None:
    """Seeded split by patient (each item's patient_id), stratified by label x attributes."""
    fractions = {"train": 1.0 - val - test, "val": val, "test": test}
    strata = [(it.label, *(it.spurious[a] for a in spurious)) for it in items]
    for it, split in zip(items, split_groups([it.patient_id for it in items], fractions, seed, strata), strict=True):
        it.split = split


def decode_file(payload: tuple[str, str | None, str | None, int, int, str]) -> Decoded:
    """Worker: image (+ mask file and/or RLE at the image's size) -> training-size arrays (the
    mask resized by `mask_resize`) plus the full-resolution mask as RLE. Top level so it runs in
    worker processes."""
    image_path, mask_path, rle_text, size, channels, mask_resize = payload
    pixels, (height, width) = readers.read_image(Path(image_path), draft_size=size)
    mask = None
    if mask_path is not None:
        mask = readers.read_mask(Path(mask_path))
        if mask.shape != (height, width):
            raise InputError(f"mask {mask_path} is {mask.shape[0]}x{mask.shape[1]} but its image is {height}x{width}")
    if rle_text is not None:
        from_rle = readers.mask_from_rle(rle_text, height, width, "RLE")
        mask = from_rle if mask is None else (mask | from_rle)
    image = resize_image(readers.to_channels(pixels, channels), size)
    facts = {"orig_height": height, "orig_width": width}
    if mask is None:
        return Decoded(image=image, mask=None, facts=facts)
    facts["rle"] = rle.encode(mask)
    return Decoded(image=image, mask=resize_mask(mask, size, mask_resize), facts=facts)


def write_dataset(
    items: list[Item],
    spurious: list[str],
    cfg: Any,
    channels: int,
    force: bool,
    settings: dict[str, Any],
    inputs: dict[str, str],
    info: dict[str, Any],
    rejects: Rejects,
    notes: list[str],
    progress: Callable[[int], None] | None,
) -> IngestResult:
    """Decode every item in parallel into a staged dataset directory and swap it in: nothing
    is written if an item is bad (unless cfg.skip_bad, which records rejects.parquet)."""
    if not items:
        raise InputError("no usable images to ingest" + (f" ({len(rejects.rows)} rejected)" if rejects.rows else ""))
    payloads = [
        (it.name, (str(it.image), None if it.mask is None else str(it.mask), it.rle, cfg.size, channels, cfg.mask_resize))
        for it in items
    ]
    with DatasetWriter(cfg.out, n=len(items), size=cfg.size, channels=channels, force=force) as writer:
        kept, facts = decode_all(payloads, decode_file, writer, cfg.workers, rejects, progress)
        if not kept:
            first = rejects.rows[0]
            raise InputError(f"every image was rejected ({len(rejects.rows)}); first: {first['input']}: {first['reason']}")
        manifest = _manifest(items, spurious, facts)
        with_mask = [i for i in kept if "rle" in facts[i]]
        mask_rle = pa.table(
            {
                "image_id": [items[i].image_id for i in with_mask],
                "height": [facts[i]["orig_height"] for i in with_mask],
                "width": [facts[i]["orig_width"] for i in with_mask],
                "rle": [facts[i]["rle"] for i in with_mask],
            }
        )
        writer.finish(manifest, spurious=spurious, info={**info, "mask_resize": cfg.mask_resize}, settings=settings,
                      inputs=inputs, keep=kept, mask_rle=mask_rle, rejects=rejects.table())
        counts = attribute_count_table(manifest.take(pa.array(sorted(kept))), spurious)
    if rejects.rows:
        notes = [*notes, f"first reject: {rejects.rows[0]['input']}: {rejects.rows[0]['reason']}"]
    return IngestResult(cfg.out, len(kept), len(rejects.rows), False, counts, notes)


def _manifest(items: list[Item], spurious: list[str], facts: dict[int, dict[str, Any]]) -> pa.Table:
    get = lambda i, k: facts.get(i, {}).get(k, 0)  # noqa: E731 - rejected rows are dropped at finish
    cols: dict[str, pa.Array] = {
        "image_id": pa.array([it.image_id for it in items], pa.string()),
        "patient_id": pa.array([it.patient_id for it in items], pa.string()),
        "split": pa.array([it.split for it in items], pa.string()),
        "label": pa.array([it.label for it in items], pa.int8()),
        "has_mask": pa.array([i in facts and "rle" in facts[i] for i in range(len(items))], pa.bool_()),
        "source": pa.array([str(it.image) for it in items], pa.string()),
        "orig_height": pa.array([get(i, "orig_height") for i in range(len(items))], pa.int32()),
        "orig_width": pa.array([get(i, "orig_width") for i in range(len(items))], pa.int32()),
    }
    for a in spurious:
        cols[a] = pa.array([it.spurious[a] for it in items], pa.int8())
    return pa.table(cols)
