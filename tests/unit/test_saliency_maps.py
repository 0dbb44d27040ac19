"""The report's maps of where a model looks: integrated-gradients maps at the image's resolution
(spurspec.training.models.attribution) put their mass where the score reads the image and lie in
[0, 1]; the images kept and drawn are positives without the spurious feature beside negatives
with it, the same ones every time (predict.robust_rows, report.build.saliency_ids); the figure's
words are readable where the report shows it, and saliency.npz records its maps' kind while
older files still read."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
import torch

from spurspec.artefacts.run import read_saliency, read_saliency_kind, write_saliency
from spurspec.report import build, figures
from spurspec.training.models import attribution
from spurspec.training.predict import robust_rows

S = 32
REGION = (slice(6, 14), slice(18, 28))  # rows, columns the score reads


def _region_score(x: torch.Tensor) -> torch.Tensor:
    """A nonlinear score of one region of the image only."""
    w = torch.linspace(0.5, 1.5, S * S).reshape(1, 1, S, S)
    return torch.sigmoid((x * w)[:, :, REGION[0], REGION[1]].sum(dim=(1, 2, 3)) / 20)


def _images(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 1, S, S, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _inside(grow: int = 0) -> np.ndarray:
    inside = np.zeros((S, S), bool)
    inside[REGION[0].start - grow:REGION[0].stop + grow, REGION[1].start - grow:REGION[1].stop + grow] = True
    return inside


def test_integrated_gradients_put_all_evidence_where_the_score_reads():
    raw = attribution.integrated_gradients(_region_score, _images(), steps=16)
    assert raw.shape == (3, S, S) and raw.dtype == np.float32 and (raw >= 0).all()
    assert (raw.sum(axis=(1, 2)) > 0).all()
    assert raw[:, ~_inside()].sum() == 0  # nothing outside the region the score reads


def test_display_maps_are_image_sized_in_unit_range_and_keep_the_region():
    maps = attribution.display_maps(_region_score, _images(), steps=16)
    assert maps.shape == (3, S, S) and maps.dtype == np.float32
    assert maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1)
    mass = maps.sum(axis=(1, 2))
    assert (maps[:, _inside()].sum(axis=1) / mass > 0.6).all()  # the smoothing spreads a little
    assert (maps[:, _inside(grow=4)].sum(axis=1) / mass > 0.97).all()  # and no further than its width


def test_normalised_scales_each_image_by_its_own_top_and_leaves_empty_maps_empty():
    maps = np.zeros((2, S, S), np.float32)
    maps[0, 10:20, 10:20] = 5.0  # strong evidence
    maps[1, 10:20, 10:20] = 0.001  # weak evidence: still its own full scale
    out = attribution.normalised(np.concatenate([maps, np.zeros((1, S, S), np.float32)]))
    assert np.allclose(out[0], out[1], atol=1e-4) and out[0].max() == 1
    assert (out[2] == 0).all()  # no evidence: no noise blown up to the scale


def _dataset(labels: list[int], tube: list[int | None]) -> SimpleNamespace:
    """The part of Dataset robust_rows reads: the manifest's label and attribute, the attribute's name."""
    manifest = pa.table({"label": pa.array(labels, pa.int64()), "tube": pa.array(tube, pa.int8())})
    return SimpleNamespace(manifest=manifest, spurious=["tube"])


def test_robust_rows_keep_positives_without_and_negatives_with_the_feature_in_turn():
    labels = [1, 1, 0, 0, 1, 0, 1, 0, 1, 0, 1]
    tube = [1, 0, 0, 1, 0, 1, None, 1, 0, 1, 0]  # row 6: unknown attribute, in no cell
    ds = _dataset(labels, tube)
    rows = np.arange(len(labels))
    picked = robust_rows(ds, rows, 4)
    assert picked.tolist() == [1, 3, 4, 5]  # (1, 0), (0, 1), (1, 0), (0, 1): in turn, in row order
    assert all((labels[r], tube[r]) in ((1, 0), (0, 1)) for r in robust_rows(ds, rows, 20))
    assert robust_rows(ds, rows, 4).tolist() == picked.tolist()  # the same images every call
    assert robust_rows(ds, rows[5:], 2).tolist() == [8, 5]  # the split's rows only


def test_saliency_ids_put_half_of_each_robust_cell_side_by_side():
    cells = {"d": (0, 1), "a": (1, 0), "c": (1, 0), "b": (0, 1), "e": (1, 0), "x": None, "y": (1, 1)}
    assert build.saliency_ids(cells, 4) == ["a", "c", "b", "d"]  # positives without, then negatives with
    assert build.saliency_ids(dict(reversed(list(cells.items()))), 4) == ["a", "c", "b", "d"]  # order-free
    assert build.saliency_ids({"a": (1, 0), "c": (1, 0), "e": (1, 0), "b": (0, 1)}, 4) == ["a", "c", "e", "b"]
    assert build.saliency_ids({"x": None}, 4) == []


@pytest.mark.parametrize("same_images", [True, False])
def test_saliency_figure_fits_the_report_column_with_readable_words(tmp_path, monkeypatch, same_images):
    """At 1,400 px the report's column is 1,000 px wide: a figure no wider shows at its own size,
    so a word of F points is F * 110 / 72 px there (the report saves at 110 dpi)."""
    shown = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: shown.update(fig=fig))
    rng = np.random.default_rng(0)
    region = np.zeros((S, S), bool)
    region[5:25, 14:16] = True

    def panel(i: str, cell) -> figures.MapPanel:
        return figures.MapPanel(i, rng.integers(0, 255, (S, S), dtype=np.uint8), rng.random((S, S)), cell,
                                mask=region if cell[0] else None, region=region if cell[1] else None)

    cells = [(1, 0), (1, 0), (0, 1), (0, 1)]
    rows = [figures.MapRow(f"{g} (seed 0)", kind, [panel(f"syn{k}", c) for k, c in enumerate(cells)])
            for g, kind in (("binary", "integrated_gradients"), ("seg", "probability"))]
    if not same_images:
        rows[1].panels = rows[1].panels[::-1]
    figures.saliency(tmp_path / "s.png", rows, "chest_tube")
    fig = shown["fig"]
    fig.canvas.draw()
    width = fig.get_tightbbox(fig.canvas.get_renderer()).width * 110 / 72  # points -> px at 110 dpi
    assert width <= 1000
    texts = [t for t in fig.findobj(lambda o: hasattr(o, "get_fontsize") and hasattr(o, "get_text"))
             if t.get_text().strip()]
    assert texts and min(t.get_fontsize() for t in texts) * 110 / 72 >= 11
    words = [t.get_text() for t in texts]
    if same_images:  # each cell named once over its columns, each image by its id on the top row
        assert words.count("positive, chest tube absent") == words.count("negative, chest tube present") == 1
        assert words.count("syn0") == words.count("syn2") == 1
    else:  # every image with its cell and id
        assert words.count("positive, chest tube absent\nsyn0") == words.count("negative, chest tube present\nsyn2") == 2
    assert any("integrated gradients" in w for w in words) and any("P(positive region)" in w for w in words)


def test_saliency_file_records_its_kind_and_older_files_still_read(tmp_path):
    maps = {"b": (np.zeros((4, 4), np.uint8), np.ones((4, 4), np.float32))}
    write_saliency(tmp_path / "new.npz", maps, "integrated_gradients")
    write_saliency(tmp_path / "old.npz", maps)  # as files were written before the kind was recorded
    for name, kind in (("new.npz", "integrated_gradients"), ("old.npz", None)):
        assert read_saliency_kind(tmp_path / name) == kind
        assert list(read_saliency(tmp_path / name)) == ["b"]
    assert read_saliency_kind(tmp_path / "missing.npz") is None


@pytest.mark.parametrize("joined", [False, True])
def test_specificity_joins_points_only_with_an_r_between_the_ends(tmp_path, monkeypatch, joined):
    from spurspec.report.curves import _curve

    shown = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: shown.update(fig=fig))
    xs = [1.0, 16.0, 4096.0] if joined else [1.0, 4096.0]
    curve = _curve("ERM", [(x, v, v - 0.02, v + 0.02) for x in xs for v in (0.95, 0.97)])
    assert curve.joined == joined
    figures.specificity(tmp_path / "s.png", curve, "chest_tube", "robust AUROC")
    ax = shown["fig"].axes[0]
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1 and ln.get_linestyle() == "-"]
    assert bool([ln for ln in lines if set(ln.get_xdata()) == set(xs)]) == joined
    low, high = ax.get_ylim()
    assert 0.4 < low < 0.5 < 0.99 < high <= 1.03  # the data and chance, not the whole 0-1
