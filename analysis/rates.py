"""The best drop rate, per BatchNorm setting, with a bootstrap interval.

For each rate column that varied (`p_conv`, `p_fc`) and each `bn` value, the trials
that have that Dropout layer are fitted by least squares with one intercept per
group of the other cell-defining factors (so a placement or model difference does
not masquerade as a rate effect) and a shared curve in the rate:

- five or more distinct rates: a quadratic ``a·p + b·p²`` (rates sampled per trial);
- two to four distinct rates (a grid): one mean per rate ("binned means").

The best rate maximises the fitted curve over the observed range. Its 95% interval
is the percentile interval of that argmax over bootstrap resamples of the trials
(resampled within each group, and within each rate for a grid). Since a fitted
curve is often flat near its top, the fit also gives the near-optimal range: the
rates whose fitted score is within `NEAR_OPTIMAL` of the best. Only when that range
reaches an edge of the rates tried may better rates lie outside them.

The rows are whatever design they come from: stage-2 replicates when the rate is a
cell's own factor (a grid of rates), else the search's feasible trials (completed,
full budget, not diverged), which the report labels preliminary.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analysis import stats
from analysis.design import Design, ordered_values, value_label
from study.vocabulary.factors import RATE_FACTORS, RATE_LAYER

QUADRATIC = "quadratic least-squares fit of score on the rate (one intercept per group of other factors)"
BINNED = "binned means per rate (one intercept per group of other factors)"
CI_METHOD = "95% percentile interval of the argmax over {n} stratified bootstrap resamples"
MIN_QUADRATIC_LEVELS = 5
NEAR_OPTIMAL = 0.005  # half a percentage point of accuracy
GRID_POINTS = 201


@dataclass(frozen=True)
class RateFit:
    rate: str  # p_conv or p_fc
    bn: str
    method: str
    best: float
    ci_low: float
    ci_high: float
    score_at_best: float
    n: int
    range: tuple[float, float]
    grid: np.ndarray  # rates where the curve is evaluated
    curve: np.ndarray  # fitted score on the grid (intercepts averaged over groups)
    band_low: np.ndarray  # pointwise 2.5% bootstrap quantile of the curve
    band_high: np.ndarray
    points: pd.DataFrame  # rate, score (adjusted to the average group), trial_id
    near_optimal: tuple[float, float] = (float("nan"), float("nan"))  # rates within NEAR_OPTIMAL of the best
    source: str = "replicates"  # or "search": fitted on search trials, preliminary

    @property
    def at_edge(self) -> bool:
        """The near-optimal range reaches an edge of the rates tried (better rates may lie beyond)."""
        lo, hi = self.range
        near_lo, near_hi = self.near_optimal
        return bool(hi > lo and (near_lo <= lo or near_hi >= hi))


def fit_dropout_rates(design: Design, n_boot: int = 1000, seed: int = 0, source: str = "replicates") -> list[RateFit]:
    """A `RateFit` for every (varying rate, bn value) with at least two distinct rates."""
    fits = []
    df = design.trials
    for rate in RATE_FACTORS:
        if rate not in design.factors:
            continue
        with_layer = df[df["dropout"].isin(RATE_LAYER[rate])] if "dropout" in df else df
        bn_values = ordered_values("bn", with_layer["bn"]) if "bn" in with_layer else ["none"]
        group_factors = [f for f in design.cell_factors if f not in ("bn", rate)]
        for i, bn in enumerate(bn_values):
            sub = with_layer[with_layer["bn"] == bn] if "bn" in with_layer else with_layer
            fit = fit_rate(sub, rate, group_factors, n_boot=n_boot, seed=seed + 7919 * i + len(fits))
            if fit is not None:
                fits.append(replace(fit, bn=value_label(bn), source=source))
    return fits


def fit_rate(trials: pd.DataFrame, rate: str, group_factors, n_boot: int = 1000, seed: int = 0) -> RateFit | None:
    """Fit score against `rate` on these trials; None with fewer than two distinct rates."""
    r = trials[rate].to_numpy(dtype=float)
    y = trials["score"].to_numpy(dtype=float)
    levels = np.unique(r)
    if len(levels) < 2 or len(y) < 3:
        return None
    if group_factors:
        group = trials[list(group_factors)].map(value_label).agg(",".join, axis=1).to_numpy()
    else:
        group = np.zeros(len(y), dtype=int).astype(str)
    groups, g_idx = np.unique(group, return_inverse=True)
    quadratic = len(levels) >= MIN_QUADRATIC_LEVELS
    lo, hi = float(levels.min()), float(levels.max())
    grid = np.linspace(lo, hi, GRID_POINTS) if quadratic else levels

    X, basis = _design(r, g_idx, len(groups), levels, quadratic, grid)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    n_g = len(groups)
    curve = beta[:n_g].mean() + basis @ beta[n_g:]
    best_i = int(np.argmax(curve))
    # Bootstrap as resampling weights: counts of each trial in a stratified resample.
    rng = np.random.default_rng(seed)
    strata = g_idx * len(levels) + np.searchsorted(levels, r) if not quadratic else g_idx
    W = np.zeros((n_boot, len(y)))
    for s in np.unique(strata):
        members = np.flatnonzero(strata == s)
        W[:, members] = rng.multinomial(len(members), np.full(len(members), 1.0 / len(members)), size=n_boot)
    # X'WX and X'Wy of every resample as one matrix product each (BLAS): the same sums as the einsum over
    # (resample, trial, i, j), seconds faster with tens of thousands of trials.
    p = X.shape[1]
    XtWX = (W @ (X[:, :, None] * X[:, None, :]).reshape(len(y), p * p)).reshape(n_boot, p, p) + 1e-12 * np.eye(p)
    XtWy = W @ (X * y[:, None])
    betas = np.linalg.solve(XtWX, XtWy[..., None])[..., 0]
    boot_curves = betas[:, :n_g].mean(axis=1)[:, None] + betas[:, n_g:] @ basis.T
    boot_best = grid[np.argmax(boot_curves, axis=1)]
    ci_low, ci_high = stats.percentile_interval(boot_best)
    band_low, band_high = np.quantile(boot_curves, [0.025, 0.975], axis=0)
    # Points shifted by their group's offset from the average group, to sit on the curve.
    offsets = beta[:n_g] - beta[:n_g].mean()
    points = pd.DataFrame({"rate": r, "score": y - offsets[g_idx], "trial_id": trials["trial_id"].to_numpy()})
    method = (QUADRATIC if quadratic else BINNED) + "; " + CI_METHOD.format(n=n_boot)
    near = grid[curve >= curve[best_i] - NEAR_OPTIMAL]
    return RateFit(
        rate, "", method, float(grid[best_i]), ci_low, ci_high, float(curve[best_i]), int(len(y)),
        (lo, hi), grid, curve, band_low, band_high, points, (float(near.min()), float(near.max())),
    )


def _design(r, g_idx, n_groups, levels, quadratic, grid):
    """Regression matrix (group intercepts + rate terms) and the rate basis on the grid."""
    G = np.zeros((len(r), n_groups))
    G[np.arange(len(r)), g_idx] = 1.0
    if quadratic:
        # Centre and scale the rate so the normal equations stay well conditioned.
        c, s = levels.mean(), max(np.ptp(levels), 1e-9)
        z, zg = (r - c) / s, (grid - c) / s
        return np.column_stack([G, z, z**2]), np.column_stack([zg, zg**2])
    L = (r[:, None] == levels[None, 1:]).astype(float)
    basis = (grid[:, None] == levels[None, 1:]).astype(float)
    return np.column_stack([G, L]), basis
