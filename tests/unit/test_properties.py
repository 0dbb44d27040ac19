"""Properties over generated inputs (hypothesis): RLE decode inverts encode and survives the
hand-off between stages; boxes always cover their regions and are tight, at both resolutions;
grid cells are positive exactly where a positive pixel falls; the DuckDB AUROC equals
scikit-learn's on any scores, ties and all. Runs are bounded (derandomised, few examples) so the
file stays a few seconds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import roc_auc_score

from spurspec.imaging import boxes as bx
from spurspec.imaging import rle

FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None)  # writes no .hypothesis folder
masks = st.tuples(st.integers(1, 24), st.integers(1, 24)).flatmap(lambda hw: arrays(np.bool_, hw))


@FAST
@given(masks)
def test_rle_round_trip(mask):
    text = rle.encode(mask)
    assert rle.syntax_error(text) is None
    assert np.array_equal(rle.decode(text, *mask.shape), mask)
    assert (text == rle.EMPTY) == (not mask.any())


@FAST
@given(masks, st.integers(0, 2**31))
def test_rle_rows_or_together(mask, seed):
    other = np.random.default_rng(seed).random(mask.shape) < 0.2
    union = rle.union([rle.encode(mask), rle.encode(other)], *mask.shape)
    assert np.array_equal(union, mask | other)


@FAST
@given(masks)
def test_union_box_covers_every_positive_pixel_and_is_tight(mask):
    box = bx.union_box(mask)
    if not mask.any():
        assert box is None and bx.component_boxes(mask) == []
        return
    x0, y0, x1, y1 = box
    inside = np.zeros_like(mask)
    inside[y0:y1, x0:x1] = True
    assert not (mask & ~inside).any()
    assert mask[y0].any() and mask[y1 - 1].any() and mask[:, x0].any() and mask[:, x1 - 1].any()
    # The components' boxes lie inside the union box and together cover every positive pixel.
    covered = np.zeros_like(mask)
    for cx0, cy0, cx1, cy1 in bx.component_boxes(mask):
        assert x0 <= cx0 < cx1 <= x1 and y0 <= cy0 < cy1 <= y1
        covered[cy0:cy1, cx0:cx1] = True
    assert not (mask & ~covered).any()


@FAST
@given(masks, st.integers(1, 40), st.integers(0, 5))
def test_training_box_covers_the_original_box(mask, size, margin):
    box = bx.union_box(mask)
    if box is None:
        return
    height, width = mask.shape
    grown = bx.with_margin(box, margin, height, width)
    tx0, ty0, tx1, ty1 = bx.to_training(grown, height, width, size)
    assert 0 <= tx0 < tx1 <= size and 0 <= ty0 < ty1 <= size
    # Every original pixel of the box maps (by its own area) into the training box.
    x0, y0, x1, y1 = grown
    assert tx0 * width <= x0 * size and x1 * size <= tx1 * width
    assert ty0 * height <= y0 * size and y1 * size <= ty1 * height
    back = bx.from_training((tx0, ty0, tx1, ty1), height, width, size)
    assert back[0] <= x0 and back[1] <= y0 and back[2] >= x1 and back[3] >= y1


@FAST
@given(masks, st.integers(1, 8))
def test_grid_cell_is_positive_iff_a_positive_pixel_falls_in_it(mask, k):
    grid = bx.grid_mask(mask, k)
    height, width = mask.shape
    rows, cols = (np.arange(height) * k) // height, (np.arange(width) * k) // width
    for i in range(k):
        for j in range(k):
            assert bool(grid[i, j]) == bool(mask[np.ix_(rows == i, cols == j)].any())


@settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=60))
def test_sql_auroc_equals_sklearn(tmp_path, pairs):
    from metrics_data import write_dataset

    from spurspec.artefacts.layout import DatasetLayout
    from spurspec.metrics.compute import MetricSettings, compute_metrics

    labels = [y for y, _ in pairs]
    scores = [s / 6 for _, s in pairs]  # seven levels: many ties
    out = tmp_path / f"ds{len(list(tmp_path.iterdir()))}"
    manifest = write_dataset(out, labels, {}, ["test"] * len(labels))
    preds = pa.table({"image_id": manifest.column("image_id"), "summary": ["image"] * len(labels),
                      "role": ["eval"] * len(labels), "score": np.asarray(scores, float)})
    rows = compute_metrics(DatasetLayout(out).manifest, preds, [], MetricSettings(n_boot=0)).to_pylist()
    got = next(r for r in rows if r["metric"] == "auroc")
    if len(set(labels)) < 2:
        assert got["value"] is None and got["reason"]
    else:
        assert abs(got["value"] - roc_auc_score(labels, scores)) < 1e-9
