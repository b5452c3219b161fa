"""analysis.stats: intervals and tests agree with textbook versions."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from analysis import stats


def test_welch_t_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 7), rng.normal(0.5, 2, 12)
    iv, p = stats.welch_t(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert p == pytest.approx(ref.pvalue, rel=1e-9)
    assert iv.estimate == pytest.approx(a.mean() - b.mean())
    assert iv.low < iv.estimate < iv.high


def test_welch_james_with_one_contrast_is_welch_t():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 6), rng.normal(1, 3, 9)
    res = stats.welch_james([a.mean(), b.mean()], [a.var(ddof=1) / 6, b.var(ddof=1) / 9], [5, 8], [[1, -1]])
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert res.statistic == pytest.approx(ref.statistic**2, rel=1e-9)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_bootstrap_test_agrees_with_f_approximation_for_large_groups():
    rng = np.random.default_rng(3)
    groups = [rng.normal(mu, 1.0, 60) for mu in (0.0, 0.0, 0.35, 0.2)]
    m = [g.mean() for g in groups]
    se2 = [g.var(ddof=1) / len(g) for g in groups]
    C = np.hstack([np.ones((3, 1)), -np.eye(3)])
    approx = stats.welch_james(m, se2, [59] * 4, C)
    boot = stats.bootstrap_heteroscedastic_test(m, se2, [59] * 4, C, n_boot=4000, seed=0)
    assert boot.p_value == pytest.approx(approx.p_value, abs=0.02)
    assert boot.statistic == approx.statistic


def test_contrast_basis_does_not_change_the_test():
    m, se2, df = [1.0, 1.2, 0.7, 0.9], [0.01, 0.02, 0.015, 0.03], [4, 5, 6, 7]
    C = np.array([[1, -1, 0, 0], [0, 1, -1, 0], [0, 0, 1, -1]], dtype=float)
    A = np.array([[2, 1, 0], [0, 1, 0], [1, 0, 3]], dtype=float)
    assert stats.welch_james(m, se2, df, C).p_value == pytest.approx(stats.welch_james(m, se2, df, A @ C).p_value)


def test_complement_contrasts_span_what_the_reduced_model_cannot():
    X0 = np.column_stack([np.ones(6), [0, 0, 1, 1, 1, 1], [0, 1, 0, 1, 0, 1]])
    C = stats.complement_contrasts(X0)
    assert C.shape == (3, 6)
    assert np.allclose(C @ X0, 0)


def test_t_interval_of_one_value_has_no_bounds():
    iv = stats.t_interval([0.9])
    assert iv.estimate == 0.9 and math.isnan(iv.low) and math.isnan(iv.high)


def test_cv_interval_is_wider_than_naive():
    assert stats.cv_se2(0.01, 5) > 0.01**2 / 5
    assert stats.cv_se2(0.01, 5) == pytest.approx(0.01**2 * (1 / 5 + 1 / 4))


def test_linear_contrast_of_least_squares_mean():
    iv, p = stats.linear_contrast([0.5, 0.5], [0.9, 0.92], [1e-6, 1e-6], [9, 9])
    assert iv.estimate == pytest.approx(0.91)
    assert iv.df == pytest.approx(18)
    assert p < 1e-6


def test_accuracy_interval_is_cut_to_the_unit_range():
    iv = stats.t_interval([0.2, 0.95])  # two trials far apart: the t interval leaves [0, 1]
    assert iv.low < 0 and iv.high > 1
    assert stats.accuracy_bounds(iv.low, iv.high) == (0.0, 1.0)
    assert stats.accuracy_bounds(0.8, 0.9) == (0.8, 0.9)
    low, high = stats.accuracy_bounds(math.nan, math.nan)
    assert math.isnan(low) and math.isnan(high)
