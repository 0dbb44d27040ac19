"""The user's text tables, read defensively: label CSVs (plain or gzip), tube labels, annotation
files and the header of an `ingest folder` table. Reads one file at a time into memory with a
size bound that also bounds gzip decompression (a 1 kB bomb cannot expand to gigabytes), decodes
UTF-8 (a BOM allowed), parses CSV with a field-size limit large enough for any real RLE mask, and
refuses a header that names one column twice, since a lookup by name would silently take one of
them. Every failure is an InputError naming the file (and the line, where there is one).
Writes nothing."""

from __future__ import annotations

import contextlib
import csv
import io
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from spurspec.errors import InputError

# The real SIIM label file is about 30 MB; 256 MiB of text is no label table.
MAX_TEXT_BYTES = 256 << 20
# One CSV field (an RLE mask): 16 Mi characters covers a 4096 x 4096 mask of alternating runs
# many times over; the csv module's own default (131,072) is exceeded by real large masks.
MAX_FIELD_CHARS = 16 << 20
GZIP_MAGIC = b"\x1f\x8b"


def read_text(path: Path, what: str = "table") -> str:
    """The file as text: gzip-decompressed if it is gzip, at most MAX_TEXT_BYTES either way."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_TEXT_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if raw[:2] == GZIP_MAGIC:
        raw = _gunzip(path, raw, what)
    if len(raw) > MAX_TEXT_BYTES:
        raise InputError(f"{path}: {what} is over {MAX_TEXT_BYTES >> 20} MiB; refusing to read it")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: {what} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def _gunzip(path: Path, raw: bytes, what: str) -> bytes:
    """Decompress gzip members up to MAX_TEXT_BYTES of output, never more."""
    out = bytearray()
    data = raw
    try:
        while data:
            inflater = zlib.decompressobj(wbits=31)
            out += inflater.decompress(data, MAX_TEXT_BYTES + 1 - len(out))
            if len(out) > MAX_TEXT_BYTES or inflater.unconsumed_tail:
                raise InputError(f"{path}: {what} decompresses to over {MAX_TEXT_BYTES >> 20} MiB; refusing to read it")
            if not inflater.eof:
                raise InputError(f"{path}: truncated gzip data")
            data = inflater.unused_data  # a next gzip member, if the file has several
    except zlib.error as exc:
        raise InputError(f"{path}: corrupt gzip data ({exc})") from None
    return bytes(out)


@contextlib.contextmanager
def _field_limit() -> Iterator[None]:
    old = csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def parse_csv(path: Path, text: str, delimiter: str = ",") -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header with names stripped, [(line number, fields)]) of CSV text; blank lines skipped.
    A malformed line or an over-long field is named by its line; a repeated column name too."""
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        with _field_limit():
            header = [h.strip() for h in next(reader, [])]
            for fields in reader:
                if any(f.strip() for f in fields):
                    rows.append((reader.line_num, fields))
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: unreadable CSV ({exc})") from None
    unique_columns(header, path)
    return header, rows


def unique_columns(names: Sequence[str], path: Path | str) -> None:
    """Refuse a table that names a column twice (which one a lookup by name takes is arbitrary)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"{path}: column {name!r} appears more than once; rename or remove the copy")
        seen.add(name)
