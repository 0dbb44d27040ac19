"""The theory: exact measures against the sampler, their fall with r, and the closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from spurspec.datamodel import JointLabels
from spurspec.theory import TheoryConfig, model_of
from spurspec.theory.exact import (
    PixelModel,
    closed_form_r1,
    exact_measures,
    mutual_information,
    variance,
)
from spurspec.theory.simulate import simulate

RS16 = [1, 4, 16, 64, 256]


def _model(y=(12, 12), s=(2, 8), side=16, mu_s=2.0):
    return PixelModel(side, np.ones(y, bool), np.ones(s, bool), 1.0, mu_s, 0.5)


@pytest.mark.parametrize("overlap", [False, True])
def test_exact_agrees_with_simulation(overlap):
    model, joint = _model(), JointLabels.from_agreement(0.8)
    exact = exact_measures(model, overlap, RS16, joint.p_s_given_y1)
    sim = simulate(model, joint, overlap, RS16, samples=3000, seed=3, bootstrap=100)
    for r in RS16:
        for m in (0, 1):
            est = sim[r][m]
            if est.se == 0:
                assert est.value == pytest.approx(exact[r][m], abs=1e-12)
            else:
                assert abs(est.value - exact[r][m]) < 4 * est.se, (r, m, est, exact[r][m])


@pytest.mark.parametrize(("model", "pi"), [(model_of(TheoryConfig()), 0.9), (model_of(TheoryConfig()), 0.5), (_model(), 0.9)])
def test_both_measures_fall_as_r_rises(model, pi):
    """In the large-abnormality regime of the defaults (docs/theory.md states the condition)."""
    rs = [g * g for g in range(1, model.side + 1) if model.side % g == 0]
    values = exact_measures(model, False, rs, pi)
    for m in (0, 1):
        seq = [values[r][m] for r in rs]
        assert all(b <= a + 1e-12 for a, b in zip(seq, seq[1:], strict=False)), seq
        assert seq[-1] < seq[0]


def test_small_abnormality_rises_before_it_falls():
    """Outside the large-abnormality regime the fall is not monotone (docs/theory.md)."""
    values = exact_measures(_model(y=(4, 4), s=(2, 8), side=32), False, [1, 64, 1024], 0.9)
    assert values[64][1] > values[1][1] and values[64][0] > values[1][0]
    assert values[1024][1] == 0.0


@pytest.mark.parametrize("joint", [JointLabels.from_agreement(0.9), JointLabels.independent(0.5, 0.3)])
def test_degenerate_cases(joint):
    model = _model()
    pi = joint.p_s_given_y1
    values = exact_measures(model, False, [1, 256], pi)
    # r = n: only abnormal pixels are labelled, so only the noise varies and Y carries nothing.
    assert values[256][0] == pytest.approx(model.sigma**2)
    assert values[256][1] == 0.0
    # r = 1: the closed form from the footprint areas.
    q = closed_form_r1(model, pi)
    assert values[1][0] == pytest.approx(variance(q, model))
    assert values[1][1] == pytest.approx(mutual_information(q))


def test_independent_labels_closed_form_numbers():
    model = _model()  # a_y = 144/256, a_s = 16/256
    q = closed_form_r1(model, JointLabels.independent(0.5, 0.3).p_s_given_y1)
    a_y, b = 144 / 256, 0.3 * 16 / 256
    assert q == pytest.approx(np.array([[1 - a_y - b, b], [a_y, 0.0]]))
    mean = a_y * 1.0 + b * 2.0
    assert variance(q, model) == pytest.approx(0.25 + a_y + 4 * b - mean**2)
    h = lambda p: -(p * np.log2(p)).sum()  # noqa: E731
    expected = h(np.array([a_y, 1 - a_y])) + h(np.array([b, 1 - b])) - h(q[q > 0])
    assert mutual_information(q) == pytest.approx(expected)


def test_no_spurious_feature_among_positives_means_no_information():
    values = exact_measures(_model(), False, RS16, pi=0.0)
    assert all(v[1] == 0.0 for v in values.values())
