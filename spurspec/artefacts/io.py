"""Atomic writes: every artefact is written to a temporary file in the same directory and then
renamed into place, so a killed stage never leaves a half-written table, array or checkpoint;
whole directories are built in a staging folder and swapped in. `remove_leftovers` clears what a
killed writer left behind (its temporary files and staging folders). `RowFile` writes a .npy
array row by row."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spurspec.errors import ArtefactError


def _default_mode() -> int:
    """Permissions a plain open() would give a new file (mkstemp makes private 0600 files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_mode()


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_table(path: Path, table: pa.Table, schema: pa.Schema | None = None) -> None:
    """Write a Parquet table atomically, cast to `schema` (which carries the schema version)."""
    if schema is not None:
        table = conform(table, schema)
    with atomic_path(path, suffix=".parquet") as tmp:
        # Fixed writer settings keep the bytes identical across identical runs.
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast `table` to `schema`'s fields (extra columns kept after them), with metadata."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise ArtefactError(f"table lacks required column(s): {', '.join(missing)}")
    fields = list(schema)
    extra = [table.schema.field(n) for n in table.column_names if n not in schema.names]
    columns = [table.column(f.name).cast(f.type) for f in fields]
    columns += [table.column(f.name) for f in extra]
    out_schema = pa.schema(fields + extra, metadata=schema.metadata)
    return pa.Table.from_arrays(columns, schema=out_schema)


def read_table(path: Path, what: str = "table") -> pa.Table:
    path = Path(path)
    if not path.exists():
        raise ArtefactError(f"{path}: {what} not found")
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ArtefactError(f"{path}: unreadable {what}: {exc}") from None


def replace_dir(staging: Path, target: Path) -> None:
    """Swap a fully written staging directory into place (the old one goes only after)."""
    target = Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(target: Path) -> list[Path]:
    """Remove what a killed writer of `target` left: its staging and replaced-directory folders
    beside it, and temporary files of unfinished atomic writes inside it. Call only while
    holding `target`'s lock (spurspec.artefacts.locks), when no other writer can be using them."""
    target = Path(target)
    removed = []
    if target.parent.is_dir():
        for prefix in (f".{target.name}.staging-", f".{target.name}.old-"):
            for p in sorted(target.parent.glob(glob_escape(prefix) + "*")):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p)
    for folder, dirs, files in os.walk(target):
        # An output nested in this one (a study's runs and datasets) has a lock and a writer of
        # its own, which cleans it; its in-flight temporary files are not ours to remove.
        dirs[:] = [d for d in dirs if not os.path.exists(os.path.join(folder, f".{d}.lock"))]
        for name in sorted(files):
            if name.startswith(".") and name.endswith(".tmp"):
                Path(folder, name).unlink(missing_ok=True)
                removed.append(Path(folder, name))
    return removed


def glob_escape(text: str) -> str:
    """`text` with glob's special characters taken literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


@contextlib.contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """A fresh directory beside `target`; removed if the block fails, swapped in if it succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    os.chmod(staging, _FILE_MODE | 0o111)
    try:
        yield staging
        replace_dir(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# Bytes a RowFile writes before it flushes them to disk in the background: small enough that
# close() waits for a few milliseconds of writeback only (ingesting 1,000 images at 256 or 512 px,
# 4-9 ms against 37-45 ms with 32 MB: tests/benchmarks/profile_ingest.py), large enough that the
# flushes are few.
FLUSH_BYTES = 4 << 20


class RowFile:
    """A .npy file written row by row with positioned writes. Unlike a writable memmap, written
    rows do not stay in the process's resident memory, so peak RSS is flat in the array's size;
    and a full disk is an OSError from the write (which the CLI reports in one line), where a
    memmap's page fault on a full disk kills the process with SIGBUS."""

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...], create: bool = True) -> None:
        """`create` writes the header and sizes the file; otherwise the file (made by another
        RowFile, e.g. in the parent of a worker process) is opened for writing as it is."""
        self.path, self.dtype, self.shape = path, np.dtype(dtype), shape
        if create:  # open_memmap writes the header and sizes the (sparse) file; no data page is touched
            header_only = np.lib.format.open_memmap(path, mode="w+", dtype=self.dtype, shape=shape)
            del header_only
        with open(path, "rb") as fh:
            fmt = np.lib.format
            read_header = fmt.read_array_header_1_0 if fmt.read_magic(fh) == (1, 0) else fmt.read_array_header_2_0
            read_header(fh)
            self.offset = fh.tell()
        self.row_bytes = int(np.prod(shape[1:])) * self.dtype.itemsize
        self.fd = os.open(path, os.O_RDWR)
        self._unflushed = 0
        self._flusher: threading.Thread | None = None
        self._flush_error: OSError | None = None

    def reopened(self) -> RowFile:
        """Another handle on the same file, for a worker process writing rows of its own."""
        return RowFile(self.path, self.dtype, self.shape, create=False)

    def write(self, i: int, row: np.ndarray) -> None:
        data = np.ascontiguousarray(row, dtype=self.dtype)
        if data.nbytes != self.row_bytes:
            raise ValueError(f"{self.path}: row {i} holds {data.nbytes} bytes, not {self.row_bytes}")
        try:
            os.pwrite(self.fd, data, self.offset + i * self.row_bytes)  # the array's buffer, no copy
        except OSError as exc:  # name the file: a bare ENOSPC says nothing about where
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        self._unflushed += self.row_bytes
        if self._unflushed >= FLUSH_BYTES and (self._flusher is None or not self._flusher.is_alive()):
            # Flush what is written so far in a thread (fdatasync waits in the kernel without the
            # GIL), so the disk works while decoding goes on and close()'s fsync waits for the
            # last stretch only, not the whole array.
            self._check_flush()
            self._flusher = threading.Thread(target=self._flush, name=f"flush {self.path.name}", daemon=True)
            self._flusher.start()
            self._unflushed = 0

    def _flush(self) -> None:
        try:
            os.fdatasync(self.fd)
        except OSError as exc:  # kept for the writer's thread: the kernel reports an error once
            self._flush_error = OSError(exc.errno, exc.strerror, str(self.path))

    def _check_flush(self) -> None:
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None
        if self._flush_error is not None:
            raise self._flush_error

    def read(self, i: int) -> np.ndarray:
        data = os.pread(self.fd, self.row_bytes, self.offset + i * self.row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(self.shape[1:])

    def close(self) -> None:
        """fsync flushes the file's pages whichever handle wrote them (workers' included)."""
        if self.fd < 0:
            return
        try:
            self._check_flush()
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RowFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
