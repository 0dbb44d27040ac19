"""The dataset directory as stages see it. `DatasetWriter` streams preprocessed images and masks
into memory-mapped .npy arrays inside a staging directory and swaps the finished directory into
place (so memory stays flat and a killed ingest leaves nothing); `Dataset` opens one for reading."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from spurspec.artefacts import freshness, io, provenance, schemas
from spurspec.artefacts.layout import DatasetLayout
from spurspec.errors import ArtefactError, ExistsError

WHAT = "a dataset"  # what freshness messages call a dataset directory's contents


@dataclass
class RowSink:
    """Where decoded rows go: the images and masks arrays being written, checked row by row.
    Worker processes write through their own `reopened()` sink, so a decoded image never
    travels back to the parent."""

    images: io.RowFile
    masks: io.RowFile
    channels: int
    size: int

    def put(self, i: int, image: np.ndarray, mask: np.ndarray | None) -> bool:
        """Write row i; True if its mask holds a pixel."""
        if image.ndim == 2:
            image = image[None]
        if image.shape != (self.channels, self.size, self.size) or image.dtype != np.uint8:
            raise ValueError(f"image {i}: expected uint8 {(self.channels, self.size, self.size)}, got {image.dtype} {image.shape}")
        self.images.write(i, image)
        if mask is None:  # the file is sparse: an absent mask reads as zeros
            return False
        self.masks.write(i, mask)
        return bool(mask.any())

    def reopened(self) -> RowSink:
        return RowSink(self.images.reopened(), self.masks.reopened(), self.channels, self.size)


class DatasetWriter:
    """Usage:

        with DatasetWriter(out, n=len(items), size=256, channels=1, force=force) as w:
            for i, ...: w.put(i, image_chw_uint8, mask_hw_01_or_None)
            w.finish(manifest_rows, spurious=[...], keep=good_indices, ...)

    `put` may be called in any order; rows never `put` or not in `keep` are dropped at finish.
    A worker process may write a row through `sink` instead; the parent then `mark`s it written.
    """

    def __init__(self, out: Path, n: int, size: int, channels: int, force: bool = False) -> None:
        self.out = Path(out)
        if self.out.exists() and any(self.out.iterdir()) and not force:
            raise ExistsError(f"{self.out}: already exists; pass --force to replace it")
        if self.out.exists() and not DatasetLayout(self.out).manifest.exists() and any(self.out.iterdir()):
            raise ExistsError(f"{self.out}: exists and is not a spurspec dataset; refusing to replace it")
        self.n, self.size, self.channels = n, size, channels
        self._ctx = io.staging_dir(self.out)
        self._finished = False
        self._files: list[io.RowFile] = []

    def __enter__(self) -> DatasetWriter:
        self.staging = self._ctx.__enter__()
        self.layout = DatasetLayout(self.staging)
        rows = max(self.n, 1)
        self.images = io.RowFile(self.layout.images, np.uint8, (rows, self.channels, self.size, self.size))
        self.masks = io.RowFile(self.layout.masks, np.uint8, (rows, self.size, self.size))
        self._files = [self.images, self.masks]
        self.written = np.zeros(self.n, dtype=bool)
        self.regions = np.zeros(self.n, dtype=bool)
        return self

    @property
    def sink(self) -> RowSink:
        return RowSink(self.images, self.masks, self.channels, self.size)

    def put(self, i: int, image: np.ndarray, mask: np.ndarray | None) -> None:
        self.mark(i, self.sink.put(i, image, mask))

    def mark(self, i: int, region: bool) -> None:
        """Row i holds a decoded image (written here or by a worker through `sink`), and a
        region in its mask if `region`."""
        self.written[i] = True
        self.regions[i] = region

    def finish(
        self,
        manifest: pa.Table,
        spurious: list[str],
        info: dict[str, Any],
        settings: dict[str, Any],
        inputs: dict[str, str],
        keep: list[int] | None = None,
        mask_rle: pa.Table | None = None,
        rejects: pa.Table | None = None,
        extra_fields: list[pa.Field] | None = None,
        stage: str = "ingest",
    ) -> None:
        """`manifest` has one row per put index (0..n-1) without the `row` column."""
        if manifest.num_rows != self.n:
            raise ValueError(f"manifest has {manifest.num_rows} rows, writer has {self.n}")
        keep_idx = np.arange(self.n) if keep is None else np.asarray(sorted(keep), dtype=np.int64)
        unwritten = [int(i) for i in keep_idx if not self.written[i]]
        if unwritten:
            raise ValueError(f"rows {unwritten[:5]} were kept but never written")
        if len(keep_idx) == 0:
            raise ArtefactError("no images left to write")
        if len(keep_idx) != self.images.shape[0]:
            self._compact(keep_idx)
        for f in self._files:
            f.close()
        manifest = manifest.take(pa.array(keep_idx)).append_column(
            "row", pa.array(np.arange(len(keep_idx), dtype=np.int32))
        )
        schema = schemas.manifest_schema(spurious, extra_fields)
        io.write_table(self.layout.manifest, manifest, schema)
        if mask_rle is not None:
            io.write_table(self.layout.mask_rle, mask_rle, schemas.MASK_RLE)
        if rejects is not None and rejects.num_rows:
            io.write_table(self.layout.rejects, rejects, schemas.REJECTS)
        labels = manifest.column("label").to_numpy(zero_copy_only=False)
        full_info = {
            **info,
            # Counted while writing, so no stage rescans masks.npy to ask (heads.dataset_classes).
            "negatives_with_regions": int((self.regions[keep_idx] & (labels == 0)).sum()),
            "size": self.size,
            "channels": self.channels,
            "n_images": int(len(keep_idx)),
            "spurious": list(spurious),
            "schema_version": schemas.SCHEMA_VERSION,
        }
        io.write_json(self.layout.info, full_info)
        provenance.write(self.layout.provenance(stage), stage, settings, inputs)
        self._finished = True

    def _compact(self, keep_idx: np.ndarray) -> None:
        """Copy the kept rows into right-sized arrays (only when rows were rejected)."""
        for name in ("images", "masks"):
            src: io.RowFile = getattr(self, name)
            tmp = src.path.with_suffix(".compact.npy")
            dst = io.RowFile(tmp, src.dtype, (len(keep_idx), *src.shape[1:]))
            for j, i in enumerate(keep_idx.tolist()):
                dst.write(j, src.read(i))
            dst.close()
            src.close()
            tmp.replace(src.path)
            setattr(self, name, dst)
        self._files = [self.images, self.masks]

    def __exit__(self, exc_type, exc, tb) -> bool:
        for f in self._files:  # release the files before the directory moves
            f.close()
        if exc_type is None and not self._finished:
            exc_type, exc = RuntimeError, RuntimeError("DatasetWriter closed without finish()")
            self._ctx.__exit__(exc_type, exc, None)
            raise exc
        return bool(self._ctx.__exit__(exc_type, exc, tb))


@dataclass
class Dataset:
    """A dataset directory opened for reading: manifest, info, and memory-mapped arrays."""

    root: Path
    manifest: pa.Table
    info: dict[str, Any]
    layout: DatasetLayout = field(init=False)

    def __post_init__(self) -> None:
        self.layout = DatasetLayout(self.root)

    @classmethod
    def open(cls, root: Path) -> Dataset:
        root = Path(root)
        layout = DatasetLayout(root)
        if not root.exists():
            raise ArtefactError(f"{root}: does not exist; give the directory `spurspec ingest` wrote")
        if not layout.manifest.exists():
            raise ArtefactError(f"{root}: not a spurspec dataset (no manifest.parquet); run `spurspec ingest` first")
        manifest = schemas.check(io.read_table(layout.manifest, "manifest"), schemas.manifest_schema([]), layout.manifest)
        schemas.check_manifest(manifest, layout.manifest)
        try:
            info = json.loads(layout.info.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtefactError(f"{layout.info}: unreadable dataset info: {exc}") from None
        if not isinstance(info, dict) or not all(isinstance(info.get(k), int) and info[k] > 0 for k in ("size", "channels")):
            raise ArtefactError(f"{layout.info}: no positive integer size and channels; re-run the ingest")
        n, size = manifest.num_rows, info["size"]
        check_npy(layout.images, "images", (n, info["channels"], size, size))
        check_npy(layout.masks, "masks", (n, size, size))
        return cls(root=root, manifest=manifest, info=info)

    def check_rows(self, path: Path, what: str) -> None:
        """A per-row uint8 array of this dataset (box masks, a grid) is whole: one row per image."""
        check_npy(path, what, None, rows=self.manifest.num_rows)

    @property
    def spurious(self) -> list[str]:
        return schemas.spurious_attributes(self.manifest)

    @property
    def size(self) -> int:
        return int(self.info["size"])

    @property
    def channels(self) -> int:
        return int(self.info["channels"])

    def images(self) -> np.ndarray:
        return np.load(self.layout.images, mmap_mode="r")

    def masks(self) -> np.ndarray:
        return np.load(self.layout.masks, mmap_mode="r")

    def fingerprint(self) -> str:
        """Identity of the dataset's content for downstream provenance: the manifest's digest."""
        return provenance.file_digest(self.layout.manifest)


def check_npy(path: Path, what: str, shape: tuple[int, ...] | None, rows: int | None = None) -> None:
    """`path` is a whole uint8 .npy array of `shape` (or of `rows` rows): the header is read and
    the file's length checked, without loading it, so a truncated, foreign or object-dtype array
    (which numpy could only unpickle) is exit 3 naming it, not a crash deep in a stage."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as fh:
            version = fmt.read_magic(fh)
            header = fmt.read_array_header_1_0(fh) if version == (1, 0) else fmt.read_array_header_2_0(fh)
            offset = fh.tell()
        found, fortran, dtype = header
        length = Path(path).stat().st_size
    except FileNotFoundError:
        raise ArtefactError(f"{path}: {what} array not found; re-run the stage that writes it") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ArtefactError(f"{path}: not a readable .npy array ({' '.join(str(exc).split())}); re-run the stage that writes it") from None
    expected = shape if shape is not None else (rows, *found[1:])
    if dtype != np.uint8 or fortran or tuple(found) != tuple(expected):
        raise ArtefactError(f"{path}: {what} array is {dtype} {tuple(found)}, expected uint8 {tuple(expected)}; "
                            "re-run the stage that writes it")
    if length < offset + int(np.prod(found)):
        raise ArtefactError(f"{path}: {what} array is truncated ({length} bytes, needs {offset + int(np.prod(found))}); "
                            "re-run the stage that writes it")


def up_to_date(out: Path, stage: str, settings: dict[str, Any], inputs: dict[str, str], force: bool) -> bool:
    """Call before any work: True if `out` already holds this stage's output for exactly these
    settings and inputs (nothing to do); an existing different output needs `force`."""
    out = Path(out)
    if force or not out.exists() or not any(out.iterdir()):
        return False
    # `out` is where the dataset lives, not how it was made: a moved dataset is still up to date.
    state = freshness.check(DatasetLayout(out).provenance(stage), settings, inputs, where=out, what=WHAT,
                            locations=("out",))
    if state.fresh:
        return True
    if not DatasetLayout(out).manifest.exists():
        raise ExistsError(f"{out}: exists and is not a spurspec dataset; refusing to replace it")
    raise state.error()
