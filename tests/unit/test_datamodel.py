"""The shared data model: P(y,s) cells, exact split counts, non-overlapping placement, region labels."""

from __future__ import annotations

import numpy as np
import pytest

from spurspec.datamodel import JointLabels, block_labels, paste, place, region_side
from spurspec.errors import ConfigError


def test_agreement_and_reversal():
    j = JointLabels.from_agreement(0.9, p_y=0.5)
    assert j.cells == pytest.approx([0.45, 0.05, 0.05, 0.45])
    assert j.agreement == pytest.approx(0.9) and j.p_s_given_y1 == pytest.approx(0.9)
    r = j.reversed()
    assert r.agreement == pytest.approx(0.1) and r.p_y == pytest.approx(0.5)


def test_parse_rejects_bad_joints():
    assert JointLabels.parse("0.25, 0.25,0.25,0.25").p_s_given_y1 == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="four numbers"):
        JointLabels.parse("0.5,0.5")
    with pytest.raises(ConfigError, match="sum to 1"):
        JointLabels.parse("0.5,0.5,0.5,0.5")
    with pytest.raises(ConfigError, match="four numbers"):
        JointLabels.parse("a,b,c,d")


def test_exact_counts_and_labels():
    j = JointLabels.from_agreement(0.9)
    counts = j.exact_counts(37)
    assert counts.sum() == 37 and (np.abs(counts - j.cells * 37) < 1).all()
    y, s = j.labels(np.random.default_rng(0), 200)
    assert ((y == 1) & (s == 1)).sum() == 90 and ((y == 1) & (s == 0)).sum() == 10


def test_placement_never_overlaps_unless_allowed():
    rng = np.random.default_rng(1)
    fy, fs = np.ones((6, 6), bool), np.ones((2, 9), bool)
    overlapped = 0
    for _ in range(300):
        sc = place(rng, 16, 1, 1, fy, fs)
        assert not (paste(16, fy, sc.y_pos) & paste(16, fs, sc.s_pos)).any()
        sc = place(rng, 16, 1, 1, fy, fs, overlap=True)
        overlapped += (paste(16, fy, sc.y_pos) & paste(16, fs, sc.s_pos)).any()
    assert overlapped > 0
    assert place(rng, 16, 0, 0, fy, fs).y_pos is None


def test_placement_impossible_is_a_config_error():
    with pytest.raises(ConfigError, match="could not place"):
        place(np.random.default_rng(0), 8, 1, 1, np.ones((8, 8), bool), np.ones((1, 1), bool), max_tries=50)


def test_block_labels_extremes():
    mask = np.zeros((8, 8), bool)
    mask[2, 5] = True
    assert block_labels(mask, 1).all()
    assert (block_labels(mask, 64) == mask).all()
    coarse = block_labels(mask, 4)
    assert coarse[:4, 4:].all() and coarse.sum() == 16
    with pytest.raises(ConfigError, match="valid"):
        region_side(9, 8)
