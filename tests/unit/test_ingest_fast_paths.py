"""The ingest speed-ups of issue 17 (item 4) keep ingest's output byte-identical: the mask resize
by block sums equals Pillow's float box filter (the path it replaced, rebuilt here as the oracle)
for power-of-two factors, and the study's `max` resize is max-pooling cell by cell; resizing only the band of rows a lesion touches (and transposing only
that band) equals resizing the whole mask; SIIM's union painted as a band equals the codec's
full-image union; the canonical RLE worked out from runs equals re-encoding the painted
union, on random, overlapping, touching and zero-length runs and on the real SIIM rows; the
output arrays' background flush keeps rows exact and loses no error; and finding the DICOMs by
directory entries finds what rglob found, in the same order, and resolving their paths a
folder at a time gives what realpath gives."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from siim_builder import real_rows

from spurspec.datasets.siim import parse_rows, union_transposed
from spurspec.imaging import rle
from spurspec.imaging.resize import band_step, resize_mask, resize_mask_band


def pillow_resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """resize_mask as it was before the block-sum path: Pillow's BOX filter on float32."""
    mask = np.asarray(mask) > 0
    frac = np.asarray(Image.fromarray(mask.astype(np.float32)).resize((size, size), Image.Resampling.BOX))
    out = (frac >= 0.5).astype(np.uint8)
    if mask.any() and not out.any():
        out[np.unravel_index(int(np.argmax(frac)), frac.shape)] = 1
    return out


@pytest.mark.parametrize(("shape", "size"), [((1024, 1024), 256), ((1024, 1024), 512), ((1024, 1024), 64),
                                             ((512, 1024), 256), ((256, 256), 16), ((96, 96), 32), ((100, 80), 40)])
def test_mask_resize_matches_pillow(shape, size):
    rng = np.random.default_rng(sum(shape) + size)
    for density in (0.0005, 0.02, 0.3, 0.5, 0.9):
        mask = rng.random(shape) < density
        assert np.array_equal(resize_mask(mask, size), pillow_resize_mask(mask, size)), density
    blob = np.zeros(shape, dtype=bool)
    blob[shape[0] // 3 : shape[0] // 3 + 7, 5:30] = True  # edges off the block grid: half-covered cells
    assert np.array_equal(resize_mask(blob, size), pillow_resize_mask(blob, size))
    speck = np.zeros(shape, dtype=np.uint8)
    speck[-1, -1] = 1  # a lesion smaller than a cell keeps its strongest cell
    assert resize_mask(speck, size).sum() == 1
    assert np.array_equal(resize_mask(speck, size), pillow_resize_mask(speck, size))


def test_mask_resize_of_a_transposed_view_matches():
    mask = np.random.default_rng(1).random((1024, 1024)) < 0.4
    assert np.array_equal(resize_mask(mask.T, 256), pillow_resize_mask(mask.T, 256))


def max_pool_oracle(mask: np.ndarray, size: int) -> np.ndarray:
    """Max-pooling cell by cell: cell i holds the source rows r with floor(r * size / H) == i
    (likewise columns), or, where a side is shorter than size, the one row floor(i * H / size)."""
    def members(n: int) -> list[np.ndarray]:
        if n >= size:
            return [np.flatnonzero(np.arange(n) * size // n == i) for i in range(size)]
        return [np.array([i * n // size]) for i in range(size)]

    rows, cols = members(mask.shape[0]), members(mask.shape[1])
    return np.array([[mask[np.ix_(r, c)].any() for c in cols] for r in rows], dtype=np.uint8)


@pytest.mark.parametrize(("shape", "size"), [((1024, 1024), 512), ((1024, 1024), 128), ((512, 1024), 64),
                                             ((300, 200), 64), ((100, 80), 40), ((24, 40), 32), ((20, 20), 64)])
def test_max_mask_resize_is_max_pooling(shape, size):
    """`max` keeps a cell if any of its source pixels is set: every path (block sums, Pillow-free
    general shapes, upsampling) against the cell-by-cell definition."""
    rng = np.random.default_rng(sum(shape) + size)
    for density in (0.0, 0.0005, 0.02, 0.5):
        mask = rng.random(shape) < density
        assert np.array_equal(resize_mask(mask, size, "max"), max_pool_oracle(mask, size)), density
    blob = np.zeros(shape, dtype=bool)
    blob[shape[0] // 3 : shape[0] // 3 + 3, 5:9] = True
    got = resize_mask(blob, size, "max")
    assert np.array_equal(got, max_pool_oracle(blob, size))
    if min(shape) >= size:  # shrinking, max never loses a cell that area keeps
        assert (got >= resize_mask(blob, size)).all()


def test_grid_masks_and_the_max_resize_agree():
    """A grid:K cell and a pixel of ingest's `max` resize are the same max-pool wherever K is no
    larger than the mask's sides (a larger K leaves grid cells without a pixel empty, while the
    resize repeats its nearest pixel)."""
    from spurspec.imaging.boxes import grid_mask
    from spurspec.imaging.resize import max_pool

    rng = np.random.default_rng(5)
    for shape in ((1024, 1024), (300, 200), (37, 53)):
        mask = rng.random(shape) < 0.001
        for k in (1, 2, 4, 8, 16, 32):
            assert np.array_equal(grid_mask(mask, k), max_pool(mask, k)), (shape, k)


@pytest.mark.parametrize("mode", ["area", "max"])
@pytest.mark.parametrize(("shape", "size"), [((1024, 1024), 256), ((1024, 1024), 512), ((512, 1024), 128),
                                             ((96, 96), 32), ((100, 80), 40), ((64, 64), 64)])
def test_mask_resize_of_a_band_matches_the_whole_mask(shape, size, mode):
    rng = np.random.default_rng(sum(shape) * size)
    step = band_step(shape, size) or 1
    for _ in range(20):
        top = int(rng.integers(0, shape[0] // step)) * step
        height = int(rng.integers(1, (shape[0] - top) // step + 1)) * step
        band = rng.random((height, shape[1])) < rng.choice([0.0005, 0.01, 0.3, 0.7])
        band[:, : int(rng.integers(0, shape[1]))] = False  # often sparse, sometimes a single speck
        mask = np.zeros(shape, dtype=bool)
        mask[top : top + height] = band
        want = resize_mask(mask, size, mode)
        assert np.array_equal(resize_mask_band(band, top, shape, size, mode=mode), want), (top, height)
        got_t = resize_mask_band(band, top, shape, size, transpose=True, mode=mode)
        assert got_t.flags.c_contiguous and np.array_equal(got_t, want.T), (top, height)


def test_band_rows_must_be_aligned():
    with pytest.raises(ValueError, match="not aligned"):
        resize_mask_band(np.ones((3, 1024), dtype=bool), 2, (1024, 1024), 256)


@pytest.mark.parametrize("step", [1, 2, 4, 8])
def test_siim_union_band_is_the_full_union(step):
    rng = np.random.default_rng(step)
    for _ in range(30):
        texts = [random_rle(rng, 64 * 48) for _ in range(int(rng.integers(1, 4)))]
        full = rle.union(texts, 64, 48)  # (height 64, width 48); the band is of its transpose
        found = union_transposed(parse_rows([(f"r{k}", t) for k, t in enumerate(texts)], 64, 48), 64, 48, step)
        if not full.any():
            assert found is None or not found[0].any()
            continue
        band, top = found
        assert top % step == 0 and (len(band) % step == 0 or top + len(band) == 48)
        rebuilt = np.zeros((48, 64), dtype=bool)
        rebuilt[top : top + len(band)] = band
        assert np.array_equal(rebuilt, full.T)


def random_rle(rng: np.random.Generator, n: int) -> str:
    tokens, pos = [], 0
    while True:
        gap, run = int(rng.integers(0, 40)), int(rng.integers(0, 25))  # 0: touching runs, empty runs
        if pos + gap + run > n:
            break
        tokens += [gap, run]
        pos += gap + run
    return " ".join(map(str, tokens)) if tokens else rle.EMPTY


def test_canonical_equals_encoding_the_painted_union():
    rng = np.random.default_rng(0)
    n = 64 * 48
    for _ in range(300):
        texts = [random_rle(rng, n) for _ in range(int(rng.integers(1, 4)))]
        assert rle.canonical(texts, n) == rle.encode(rle.union(texts, 48, 64)), texts
    assert rle.canonical([rle.EMPTY, ""], n) == rle.EMPTY
    assert rle.canonical(["3 0 5 0"], n) == rle.EMPTY  # only zero-length runs: an empty mask
    assert rle.canonical(["0 4", "5 4"], n) == "0 4 1 4"
    assert rle.canonical(["0 4", "0 8"], n) == "0 8"
    assert rle.canonical(["0 4", "4 1"], n) == "0 5"  # a run starting where another ends merges


def test_canonical_matches_on_real_siim_rows(real_data):
    rows = real_rows(real_data)
    multi = [texts for texts in rows.values() if texts != [rle.EMPTY]]
    assert len(multi) > 2000
    for texts in multi:
        assert rle.canonical(texts, 1024 * 1024) == rle.encode(rle.union(texts, 1024, 1024))


def test_row_file_flushes_in_the_background_and_reports_its_errors(tmp_path, monkeypatch):
    """RowFile starts an fdatasync every FLUSH_BYTES (the rows still read back exactly), and an
    error of that background flush is raised by the writer's next flush or close, naming the file
    (the kernel reports a writeback error once, so a lost one would be a silent corrupt array)."""
    import errno
    import os

    from spurspec.artefacts import io

    monkeypatch.setattr(io, "FLUSH_BYTES", 4096)
    calls = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: calls.append(fd) or real(fd))
    rows = np.random.default_rng(0).integers(0, 255, size=(16, 64, 64), dtype=np.uint8)
    with io.RowFile(tmp_path / "a.npy", np.uint8, rows.shape) as out:
        for i, row in enumerate(rows):
            out.write(i, row)
    assert calls and np.array_equal(np.load(tmp_path / "a.npy"), rows)

    def failing(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fdatasync", failing)
    out = io.RowFile(tmp_path / "b.npy", np.uint8, rows.shape)
    out.write(0, rows[0])  # 4096 bytes: the background flush starts, and fails
    with pytest.raises(OSError, match="Input/output error") as caught:
        out.close()
    assert caught.value.filename == str(tmp_path / "b.npy") and out.fd == -1


def test_find_dicoms_finds_what_rglob_finds_in_the_same_order(tmp_path):
    """find_dicoms reads directory entries' types instead of stat-ing every file (issue 17); it
    must find exactly what `rglob` + `suffix` + `is_file` found, in pathlib's order: nested and
    upper-case names, file symlinks (followed), not a bare '.dcm', a folder named *.dcm, a broken
    link or a symlinked folder (rglob does not enter one), with names that sort differently as
    strings and as path components ('a-b/x' < 'a/x' as strings)."""
    from pathlib import Path

    from spurspec.datasets.siim_inputs import find_dicoms

    root = tmp_path / "siim"
    images = root / "dicom-images-train"
    for rel in ("a/x.dcm", "a-b/x.dcm", "a/b/c/Y.DCM", "z.dcm", "a/..dcm", "a/notes.txt"):
        (images / rel).parent.mkdir(parents=True, exist_ok=True)
        (images / rel).write_bytes(b"x")
    (images / ".dcm").write_bytes(b"x")
    (images / "folder.dcm").mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "hidden.dcm").write_bytes(b"x")
    (images / "linked").symlink_to(outside, target_is_directory=True)
    (images / "link.dcm").symlink_to(images / "z.dcm")
    (images / "broken.dcm").symlink_to(tmp_path / "gone.dcm")
    labels = root / "train-rle.csv"
    labels.write_text("ImageId, EncodedPixels\n")

    def by_rglob(d: Path) -> list[Path]:  # the implementation find_dicoms replaced, as the oracle
        return sorted({p for p in d.rglob("*") if p.suffix.lower() == ".dcm" and p.is_file()})

    found = find_dicoms(root, labels)
    assert found == by_rglob(images)
    assert [p.relative_to(images).as_posix() for p in found] == [
        "a/..dcm", "a/b/c/Y.DCM", "a/x.dcm", "a-b/x.dcm", "link.dcm", "z.dcm"]


def test_real_path_is_realpath_with_folders_resolved_once(tmp_path):
    """real_path (the manifest's `source`, found per image by ingest's workers) equals
    os.path.realpath for files in plain, nested and symlinked folders, for file links, broken
    links and missing files; after forget_folders a folder link changed since is followed anew."""
    import os

    from spurspec.datasets.siim_inputs import forget_folders, real_path

    real = tmp_path / "real"
    (real / "study" / "series").mkdir(parents=True)
    (real / "other").mkdir()
    for rel in ("a.dcm", "study/series/b.dcm", "other/c.dcm"):
        (real / rel).write_bytes(b"x")
    top = tmp_path / "root"
    top.mkdir()
    (top / "images").symlink_to(real, target_is_directory=True)
    (top / "plain").mkdir()
    (top / "plain" / "link.dcm").symlink_to(real / "other" / "c.dcm")
    (top / "plain" / "broken.dcm").symlink_to(tmp_path / "gone.dcm")
    (real / "study" / "linked").symlink_to(real / "other", target_is_directory=True)
    paths = [top / "images" / "a.dcm", top / "images" / "study" / "series" / "b.dcm", top / "plain" / "link.dcm",
             top / "plain" / "broken.dcm", top / "plain" / "missing.dcm", top / "images" / "study" / "linked" / "c.dcm",
             real / "a.dcm"]
    forget_folders()
    for _ in range(2):  # the second pass reads the cache
        for path in paths:
            assert real_path(str(path)) == os.path.realpath(path), path
    (top / "images").unlink()
    (top / "images").symlink_to(real / "other", target_is_directory=True)
    forget_folders()
    assert real_path(str(top / "images" / "c.dcm")) == str(real / "other" / "c.dcm")
