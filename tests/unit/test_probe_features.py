"""The pieces of `spurspec probe` without a model: features paint only their region, seeded;
placement rules; the chest tube's path and profile; overlays read safely; removal fills a
region from its surroundings; the paired statistics share their resamples; evidence shares."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from spurspec.errors import ConfigError, InputError
from spurspec.probes import attribution, features, inpaint, stats
from spurspec.probes.stage import ProbeConfig, check

SIZE = 64


def _image(seed: int = 0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 6)
    img = 120 + 400 * smooth + 3 * rng.standard_normal((SIZE, SIZE))
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[None], channels, 0)


def _lesion(cy: int = 40, cx: int = 40, r: int = 7) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _insert(name, image, lesion, placement="away", seed=0, ctx=None, margin=2):
    ctx = ctx or features.Context(SIZE, image.shape[0])
    return features.insert(image, lesion, features.FEATURES.get(name), ctx, placement, np.random.default_rng(seed),
                           lambda: np.random.default_rng(99), margin)


@pytest.mark.parametrize("name", ["tube", "vignette", "ink"])
@pytest.mark.parametrize("channels", [1, 3])
def test_a_feature_changes_only_its_region_and_is_seeded(name, channels):
    image, lesion = _image(channels=channels), _lesion()
    painted, region = _insert(name, image, lesion)
    assert painted.shape == image.shape and painted.dtype == np.uint8 and region.any()
    changed = (painted != image).any(axis=0)
    assert not (changed & ~ndimage.binary_dilation(region, iterations=1)).any()
    assert (changed & region).sum() > 0.5 * region.sum()
    again, _ = _insert(name, image, lesion)
    other, _ = _insert(name, image, lesion, seed=1)
    assert np.array_equal(again, painted) and not np.array_equal(other, painted)
    # away: never within `margin` pixels of the abnormality
    assert not (region & ndimage.binary_dilation(lesion, iterations=2)).any()


def test_placement_rules():
    image = _image()
    fixed = [_insert("ink", _image(s), _lesion(), "fixed", seed=s)[1] for s in range(3)]
    assert all(np.array_equal(fixed[0], f) for f in fixed)
    assert _insert("vignette", image, np.ones((SIZE, SIZE), bool)) is None  # no room anywhere
    covered = _insert("vignette", image, np.ones((SIZE, SIZE), bool), "random")
    assert covered is not None  # random ignores the abnormality
    with pytest.raises(ConfigError, match="placement"):
        _insert("ink", image, _lesion(), "sideways")


def test_chest_tube_runs_from_the_lateral_wall_to_the_apex_with_bright_walls():
    size = 256
    for seed in range(6):
        drawn = features.chest_tube(np.random.default_rng(seed), size)
        rows, cols = np.nonzero(drawn.region)
        lateral = min(cols.min(), size - 1 - cols.max())
        assert lateral <= 0.06 * size  # it enters at the chest wall
        assert rows.min() < 0.25 * size and 0.5 * size < rows.max() < 0.8 * size  # from the lower zone to the apex
        amount = drawn.paint(np.zeros((1, size, size)))[0]
        width = (amount > 0.5).sum(axis=1)
        assert 4 <= np.median(width[width > 0]) <= 12  # about 2.7% of 256 px, plus the blur
    # A cross-section: the walls (off the axis) are brighter than the lumen (the axis).
    drawn = features.chest_tube(np.random.default_rng(0), 512)
    amount = drawn.paint(np.zeros((1, 512, 512)))[0]
    row = amount[int(0.45 * 512)]
    on = np.flatnonzero(row > 0.5)
    profile = row[on.min():on.max() + 1]
    assert profile.max() > 1.3 * profile[len(profile) // 2]


def test_synthetic_tube_is_the_data_models_stroke():
    from spurspec.datasets import synthetic

    cfg = synthetic.Config(tube_width=0.1, tube_brightness=60.0)  # wide enough that the blur keeps its peak
    ctx = features.Context(SIZE, 1, synthetic.spurious_region(cfg))
    flat = np.full((1, SIZE, SIZE), 100, np.uint8)
    painted, region = _insert("tube", flat, _lesion(), ctx=ctx)
    added = painted.astype(float) - flat
    assert added[0][region].max() == cfg.tube_brightness
    assert added[0][~region].max() == 0 and region.sum() > 0.05 * SIZE * SIZE


def test_overlay_is_read_safely_and_composited(tmp_path, monkeypatch):
    rgba = np.zeros((20, 10, 4), np.uint8)
    rgba[5:15, 2:8] = (200, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "o.png")
    overlay = features.read_overlay(tmp_path / "o.png", SIZE, 0.5)
    assert overlay.shape == (32, 16, 4) and overlay.max() <= 1
    ctx = features.Context(SIZE, 3, overlay=overlay)
    painted, region = _insert("overlay", _image(channels=3), _lesion(), ctx=ctx)
    assert region.sum() > 0 and painted[0][region].mean() > painted[1][region].mean()
    Image.fromarray(rgba[..., :3], "RGB").save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="no alpha channel"):
        features.read_overlay(tmp_path / "rgb.png", SIZE, 0.5)
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA").save(tmp_path / "empty.png")
    with pytest.raises(InputError, match="fully transparent"):
        features.read_overlay(tmp_path / "empty.png", SIZE, 0.5)
    monkeypatch.setattr("spurspec.imaging.limits.MAX_PIXELS", 100)
    with pytest.raises(InputError, match="limit"):
        features.read_overlay(tmp_path / "o.png", SIZE, 0.5)


def test_feature_names_and_probe_names():
    assert features.parse("tube") == ("tube", None)
    assert features.parse("marks/pen.PNG")[0] == "overlay"
    with pytest.raises(ConfigError, match="ink, tube, vignette, or an RGBA overlay"):
        features.parse("tubes")
    assert features.probe_name("tube", "away") == "insert-tube-away"
    a, b = features.probe_name("x/pen.png", "fixed"), features.probe_name("y/pen.png", "fixed")
    assert a.startswith("insert-overlay-pen-") and a != b


def test_harmonic_fill_is_exact_on_a_plane_and_removal_restores_the_background():
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    plane = (3 * yy + 2 * xx + 10)[None]
    region = np.zeros((SIZE, SIZE), bool)
    region[10:30, 5:40] = True
    assert np.abs(inpaint.harmonic_fill(plane, region) - plane).max() < 1e-9
    from spurspec.datamodel import paste
    from spurspec.datasets.synthetic import paint_tube, tube_footprint

    background = _image(3)
    stroke = paste(SIZE, tube_footprint(np.random.default_rng(0), SIZE, 0.04), (10, 10))
    with_tube = background.astype(float)
    paint_tube(with_tube[0], stroke, 80.0)
    with_tube = np.clip(np.round(with_tube), 0, 255).astype(np.uint8)
    removed, filled = inpaint.remove(with_tube, stroke, np.random.default_rng(0), margin=2)
    before = np.abs(with_tube.astype(float) - background)[0][stroke].mean()
    after = np.abs(removed.astype(float) - background)[0][stroke].mean()
    assert before > 40 and after < 8 and filled.sum() > stroke.sum()
    assert np.array_equal(removed[0][~filled], with_tube[0][~filled])


def test_paired_statistics_share_their_resamples():
    rng = np.random.default_rng(0)
    before = rng.random(60)
    label = (np.arange(60) % 2).astype(int)
    patients = [f"p{i // 3}" for i in range(60)]
    same = stats.shift_rows(stats.Paired.from_ids(before, before + 0.25, label, patients), 0.5, 200,
                            np.random.SeedSequence(0), 0.95)
    by = {(r["images"], r["metric"]): r for r in same}
    # A constant shift keeps every image's rank: AUROC after - before is 0 in every replicate,
    # which only the same resamples for both give.
    assert by[("all", "auroc_diff")]["value"] == 0 and by[("all", "auroc_diff")]["ci_low"] == 0 == by[("all", "auroc_diff")]["ci_high"]
    assert by[("all", "median_shift")]["value"] == pytest.approx(0.25)
    below = before < 0.5
    assert by[("all", "flip_up")]["value"] == pytest.approx(((before + 0.25 >= 0.5) & below).sum() / below.sum())
    assert by[("all", "flip_down")]["value"] == 0
    assert by[("positives", "median_shift")]["n_images"] == 30
    none = stats.shift_rows(stats.Paired.from_ids(before, before, label, patients), None, 0, np.random.SeedSequence(0), 0.95,
                            "no threshold here")
    assert {r["reason"] for r in none if r["metric"].startswith("flip")} == {"no threshold here"}
    values = np.sort(rng.normal(size=7))
    assert stats.weighted_median(values, np.ones((1, 7)))[0] == np.median(values)
    assert stats.weighted_median(values[:6], np.ones((1, 6)))[0] == np.median(values[:6])


def test_evidence_shares():
    abnormality = np.zeros((3, 8, 8), bool)
    abnormality[:, :2, :2] = True
    spurious = np.zeros((3, 8, 8), bool)
    spurious[:, 6:, :] = True
    maps = np.zeros((3, 8, 8))
    maps[0][abnormality[0]] = 1.0  # all evidence on the abnormality
    maps[1] = 1.0  # evenly spread
    per = attribution.per_image(maps, abnormality, spurious)  # the third map is empty
    assert per["mass_abnormality"][0] == 1 and per["pointing_abnormality"][0] == 1
    assert per["mass_abnormality"][1] == pytest.approx(per["area_abnormality"][1]) == pytest.approx(4 / 64)
    assert per["mass_spurious"][1] + per["mass_abnormality"][1] + per["mass_elsewhere"][1] == pytest.approx(1)
    assert np.isnan(per["mass_abnormality"][2]) and np.isnan(per["pointing_spurious"][2])
    assert "mass_spurious" not in attribution.per_image(maps, abnormality, None)
    row = stats.mean_row(per["mass_abnormality"], np.ones(3), np.arange(3), 50, np.random.SeedSequence(0), 0.95)
    assert row["n_images"] == 2 and "empty map" in row["reason"]


@pytest.mark.parametrize(("changes", "message"), [
    ({}, "name a probe"),
    ({"insert": ("tube",), "placement": "sideways"}, "placement"),
    ({"insert": ("tube", "tube")}, "twice"),
    ({"insert": ("missing.png",)}, "overlay file not found"),
    ({"remove": True, "overlay_scale": 0.0}, "overlay_scale"),
    ({"attribution": True, "ig_steps": 0}, "ig_steps"),
])
def test_settings_are_checked_before_anything_is_read(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        check(ProbeConfig(run=tmp_path, **changes))
