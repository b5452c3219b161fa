"""Intervals and tests on group means, with per-group variances (no equal-variance assumption).

Every estimate here is a linear combination of group means. A group is a cell of
the study (its trials are the replicates) or a cross-validated configuration (its
folds are the replicates). A group enters as its mean, the squared standard error
of that mean (`se2`) and the degrees of freedom of that variance (`df`), so the
same code serves both: for trials ``se2 = s²/n, df = n - 1``; for k CV folds the
Nadeau-Bengio corrected ``se2 = s²·(1/k + 1/(k-1)), df = k - 1``.

Names of methods, as they appear in conclusions.json and the report, are the
module constants below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

LEVEL = 0.95
ALPHA = 0.05
# A variance of exactly zero (identical replicates, e.g. in hand-made tables) would
# make a test statistic infinite; this floor is far below any real accuracy noise.
VAR_FLOOR = 1e-12

T_INTERVAL = "Student t 95% interval"
SEED_INTERVAL = "Student t 95% interval over seeds (independent retrainings)"
CV_INTERVAL = (
    "Nadeau-Bengio corrected t 95% interval over CV folds, with the design's own images validated / trained "
    "(variance s²·(1/k + n_val/n_train))"
)
WELCH_T = "Welch t-test (Satterthwaite degrees of freedom)"
WELCH_JAMES = "Welch-James heteroscedastic F test (Johansen 1980)"
LS_MEAN = "least-squares mean of cell means, Satterthwaite t 95% interval"
N_BOOT_TEST = 4000
PB_TEST = (
    "heteroscedastic F test: Welch-James statistic with parametric-bootstrap p-value "
    f"(Krishnamoorthy, Lu & Mathew 2007; {N_BOOT_TEST} resamples)"
)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its two-sided 95% interval."""

    estimate: float
    low: float
    high: float
    se: float
    df: float


@dataclass(frozen=True)
class TestResult:
    """An F (or t²) test of a set of linear contrasts."""

    statistic: float
    df1: float
    df2: float
    p_value: float

    @property
    def significant(self) -> bool:
        return bool(self.p_value < ALPHA)


def t_interval(values, level: float = LEVEL) -> Interval:
    """Mean of replicates with a Student t interval; NaN bounds when n < 2."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        raise ValueError("t_interval needs at least one finite value, got none")
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, math.nan, 0.0)
    se = float(x.std(ddof=1) / math.sqrt(n))
    return interval_from_se(mean, se, n - 1, level)


def accuracy_bounds(low: float, high: float) -> tuple[float, float]:
    """A confidence interval of a mean accuracy, cut to [0, 1].

    The true mean lies in [0, 1], so cutting the t interval there keeps its
    coverage; with two or three trials the uncut one can reach below 0 or above 1.
    NaN bounds stay NaN.
    """
    return float(np.clip(low, 0.0, 1.0)), float(np.clip(high, 0.0, 1.0))


def interval_from_se(estimate: float, se: float, df: float, level: float = LEVEL) -> Interval:
    """``estimate ± t(df)·se``; NaN bounds when df is 0 or se is not finite."""
    if not df or df <= 0 or not math.isfinite(se):
        return Interval(float(estimate), math.nan, math.nan, float(se), float(df or 0.0))
    half = float(sps.t.ppf(0.5 + level / 2, df)) * se
    return Interval(float(estimate), float(estimate - half), float(estimate + half), float(se), float(df))


def cv_se2(sd: float, k: int, test_train_ratio: float | None = None) -> float:
    """Squared standard error of a k-fold CV mean, Nadeau & Bengio (2003) corrected.

    Folds share training data, so their scores are positively correlated and the naive
    ``s²/k`` understates the variance; the correction uses ``1/k + n_test/n_train``.
    That ratio is ``1/(k-1)`` only when each fold trains on all the other folds; a
    study that trains on a subset (1,500 images) and validates on a whole fold
    (12,000) has a ratio of 8, so callers pass the design's own ratio.
    """
    if k < 2:
        return math.nan
    ratio = 1.0 / (k - 1) if test_train_ratio is None else float(test_train_ratio)
    return float(sd) ** 2 * (1.0 / k + ratio)


def nadeau_bengio_ratio(n_val: float | None, n_train: float | None, k: int) -> float:
    """The ``n_test/n_train`` term of `cv_se2` for k folds: the design's own sizes, else ``1/(k-1)``."""
    if n_val is not None and n_train and math.isfinite(n_val) and math.isfinite(n_train):
        return float(n_val) / float(n_train)
    return 1.0 / max(k - 1, 1)


def linear_contrast(weights, means, se2, df, level: float = LEVEL) -> tuple[Interval, float]:
    """Estimate ``sum(w·mean)`` with a Satterthwaite t interval and a two-sided p-value.

    Groups are independent; each has its own variance (`se2`) with `df` degrees of
    freedom. Returns (interval, p_value for "the combination is zero").
    """
    w, m, v, d = (np.asarray(a, dtype=float) for a in (weights, means, se2, df))
    used = w != 0
    w, m, v, d = w[used], m[used], np.maximum(v[used], VAR_FLOOR), d[used]
    if len(w) == 0:
        raise ValueError("linear_contrast needs at least one non-zero weight")
    est = float(w @ m)
    terms = w**2 * v
    var = float(terms.sum())
    if np.any(d <= 0) or not np.all(np.isfinite(terms)):
        return Interval(est, math.nan, math.nan, math.nan, 0.0), math.nan
    dof = var**2 / float(np.sum(terms**2 / d))
    se = math.sqrt(var)
    p = float(2 * sps.t.sf(abs(est) / se, dof))
    return interval_from_se(est, se, dof, level), p


def welch_t(a, b, level: float = LEVEL) -> tuple[Interval, float]:
    """Difference of means ``mean(a) - mean(b)`` with Welch's t interval and p-value."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"welch_t needs at least 2 values per group, got {len(a)} and {len(b)}")
    return linear_contrast(
        [1.0, -1.0],
        [a.mean(), b.mean()],
        [a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)],
        [len(a) - 1, len(b) - 1],
        level,
    )


def welch_james(means, se2, df, contrasts) -> TestResult:
    """Test ``C·mu = 0`` for group means with unequal variances (Welch-James / Johansen).

    ``T = (C m)' (C S C')^-1 (C m)`` with ``S = diag(se2)``; ``T / c`` is referred to
    F(q, nu) with ``A = sum_j M_jj² / df_j``, ``M = S C' (C S C')^-1 C``,
    ``c = q + 2A - 6A/(q+2)`` and ``nu = q(q+2) / (3A)`` (Lix & Keselman 1995).
    With one contrast this is exactly Welch's t-test (T = t², nu = Welch df).
    The statistic does not depend on which basis of the contrast space is given.
    """
    m = np.asarray(means, dtype=float)
    s = np.maximum(np.asarray(se2, dtype=float), VAR_FLOOR)
    d = np.asarray(df, dtype=float)
    C = np.atleast_2d(np.asarray(contrasts, dtype=float))
    if C.shape[1] != len(m):
        raise ValueError(f"contrast matrix has {C.shape[1]} columns for {len(m)} group means")
    C = _row_basis(C)
    q = C.shape[0]
    if q == 0:
        raise ValueError("welch_james needs at least one non-trivial contrast")
    if np.any(d[np.any(C != 0, axis=0)] <= 0):
        raise ValueError("every group in a contrast needs at least 2 replicates (df >= 1)")
    S = np.diag(s)
    CSC = C @ S @ C.T
    inv = np.linalg.pinv(CSC)
    cm = C @ m
    T = float(cm @ inv @ cm)
    M = S @ C.T @ inv @ C
    diag = np.diag(M)
    safe = np.where(d > 0, d, np.inf)
    A = float(np.sum(diag**2 / safe))
    if A <= 0:
        return TestResult(math.nan, float(q), math.nan, math.nan)
    c = q + 2 * A - 6 * A / (q + 2)
    nu = q * (q + 2) / (3 * A)
    F = T / c
    p = float(sps.f.sf(F, q, nu))
    return TestResult(F, float(q), float(nu), p)


def complement_contrasts(X0: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Rows spanning the orthogonal complement of the columns of X0 (cells x params).

    ``C mu = 0`` holds exactly when the cell means mu lie in the column space of X0,
    so testing these contrasts tests the reduced (e.g. additive) model against the
    saturated cell-means model.
    """
    X0 = np.asarray(X0, dtype=float)
    u, sv, _ = np.linalg.svd(X0, full_matrices=True)
    rank = int(np.sum(sv > tol * max(1.0, sv.max() if len(sv) else 1.0)))
    return u[:, rank:].T


def _row_basis(C: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """An orthonormal basis of C's row space (drops redundant contrasts)."""
    if C.size == 0:
        return C
    _, sv, vt = np.linalg.svd(C, full_matrices=False)
    rank = int(np.sum(sv > tol * max(1.0, sv.max())))
    return vt[:rank]


def percentile_interval(samples, level: float = LEVEL) -> tuple[float, float]:
    """Two-sided percentile interval of bootstrap samples (NaNs ignored)."""
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_heteroscedastic_test(means, se2, df, contrasts, n_boot: int = N_BOOT_TEST, seed: int = 0) -> TestResult:
    """Test ``C·mu = 0`` with unequal variances; p-value by parametric bootstrap.

    The statistic is the Welch-James quadratic form ``T = (C m)' (C S C')^-1 (C m)``.
    Its null distribution is simulated as in Krishnamoorthy, Lu & Mathew (2007):
    group means ``m*_j ~ N(0, S_j)`` and variances ``S*_j ~ S_j·chi²(df_j)/df_j``,
    independently; ``p = (1 + #{T* >= T}) / (n_boot + 1)``. This keeps its nominal
    level with small groups and many contrasts, where Johansen's F approximation
    (reported alongside as `statistic`, `df1`, `df2`) is liberal.
    """
    approx = welch_james(means, se2, df, contrasts)
    m = np.asarray(means, dtype=float)
    s = np.maximum(np.asarray(se2, dtype=float), VAR_FLOOR)
    d = np.asarray(df, dtype=float)
    C = _row_basis(np.atleast_2d(np.asarray(contrasts, dtype=float)))
    used = np.any(np.abs(C) > 1e-12, axis=0)
    m, s, d, C = m[used], s[used], d[used], C[:, used]
    T = _quadratic_form(C, m[None, :], s[None, :])[0]
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_boot, len(m))) * np.sqrt(s)
    s_star = s * rng.chisquare(d, size=(n_boot, len(m))) / d
    T_star = _quadratic_form(C, z, s_star)
    p = float((1 + np.sum(T_star >= T * (1 - 1e-12))) / (n_boot + 1))
    return TestResult(approx.statistic, approx.df1, approx.df2, p)


def _quadratic_form(C: np.ndarray, m: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Row-wise ``(C m_b)' (C diag(s_b) C')^-1 (C m_b)`` for batches m, s of shape (B, k).

    With X0 spanning the complement of C's rows, the same number is the weighted
    residual sum of squares of m_b regressed on X0 with weights 1/s_b; that needs
    only (k - q) x (k - q) solves, cheaper when there are many contrasts.
    """
    q, k = C.shape
    if q <= k - q:
        cm = m @ C.T  # (B, q)
        V = (C[None, :, :] * s[:, None, :]) @ C.T  # (B, q, q): C diag(s_b) C'
        x = np.linalg.solve(V, cm[..., None])[..., 0]
        return np.einsum("bq,bq->b", cm, x)
    X0 = complement_contrasts(C.T).T  # (k, k - q), orthogonal to every contrast
    w = 1.0 / s  # (B, k)
    XtWX = (X0.T[None, :, :] * w[:, None, :]) @ X0  # (B, p, p)
    XtWm = np.einsum("kp,bk->bp", X0, w * m)
    beta = np.linalg.solve(XtWX, XtWm[..., None])[..., 0]
    resid = m - beta @ X0.T
    return np.sum(w * resid**2, axis=1)
