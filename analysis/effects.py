"""Effects of each scientific factor: a score per value, compared on matched cells.

A value's score is the least-squares mean of cell means: the average, over the
combinations of the other factors ("keys") that were run with every value of this
factor, of the cells' mean scores. Matching on keys means two values are compared
on the same networks except for this factor (e.g. `order` only on cells that have
both BN and Dropout2d in the convolutions). Factors nested in the one compared are
left out of the key: comparing `dropout` placements averages over the drop rates
that come with each placement. When no key has every value, the values are
compared unmatched and the result says so (`matched: false`).

Whether the values differ at all is a heteroscedastic F test on the same contrasts
(`analysis.stats.bootstrap_heteroscedastic_test`). That is for stage-2 replicates;
a search-only analysis (`search_effects`) gives each value its best trial, with no
test, as the tuning playbook's isolation plots do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analysis import stats
from analysis.design import Design, cell_table, ordered_values, value_label
from analysis.results import EffectTest, ValueScore
from analysis.text import SEARCH_ONLY
from study.vocabulary.factors import CONV_DROPOUT, NESTED_FACTORS, RATE_FACTORS, RATE_LAYER

# Factors whose value is implied by the compared factor, so they cannot be held fixed.
# Comparing dropout placements averages over the rates and kinds of Dropout that come with each.
NESTED = NESTED_FACTORS
MATCHED_METHOD = stats.LS_MEAN + ", over cells matched on the other factors"
UNMATCHED_METHOD = stats.LS_MEAN + ", over all cells (not matched: no combination of the other factors has every value)"
TRIAL_METHOD = "mean of trials per value (the factor varies inside cells, so not matched), " + stats.T_INTERVAL
TEST_METHOD = stats.PB_TEST + " of equal least-squares means"
SEARCH_METHOD = "best full-budget search trial per value (a selected maximum; not tested)"


@dataclass(frozen=True)
class Comparison:
    """Weights over the rows of a cell table, one vector per group of factor values."""

    weights: dict  # label -> np.ndarray, each summing to 1
    matched: bool
    n_keys: int


@dataclass(frozen=True)
class FactorEffect:
    factor: str
    values: dict[str, ValueScore]  # value label -> its score
    test: EffectTest


def testable_cells(design: Design, column: str = "score") -> pd.DataFrame:
    """Cells with at least two trials (a variance), summarised on `column`."""
    cells = design.cells if column == "score" else cell_table(design.trials, column)
    return cells[cells["df"] >= 1].reset_index(drop=True)


def key_factors(design: Design, factor: str) -> tuple[str, ...]:
    nested = NESTED.get(factor, ())
    return tuple(f for f in design.cell_factors if f != factor and f not in nested)


def group_weights(cells: pd.DataFrame, factor: str, groups: dict, keys: tuple[str, ...]) -> Comparison | None:
    """Weights that average each group's cells over the keys where every group was run.

    `groups` maps a label to the factor values it pools (e.g. ``{"fc": ["fc"], "conv too": ["all"]}``).
    None when some group has no cell at all.
    """
    column = cells[factor].to_numpy(dtype=object)
    member = {label: np.array([v in values for v in column], dtype=bool) for label, values in groups.items()}
    if any(not m.any() for m in member.values()):
        return None
    columns = [cells[k].to_numpy(dtype=object) for k in keys]
    key = np.array(["|".join(map(str, t)) for t in zip(*columns)] if columns else [""] * len(cells), dtype=object)
    complete = [k for k in pd.unique(key) if all((m & (key == k)).any() for m in member.values())]
    weights = {}
    for label, m in member.items():
        w = np.zeros(len(cells))
        if complete:
            for k in complete:
                idx = m & (key == k)
                w[idx] = 1.0 / idx.sum() / len(complete)
        else:
            w[m] = 1.0 / m.sum()
        weights[label] = w
    return Comparison(weights, bool(complete), len(complete))


def contrast(cells: pd.DataFrame, comparison: Comparison, a: str, b: str) -> tuple[stats.Interval, float]:
    """Estimate (group a - group b) with a Satterthwaite interval and p-value."""
    w = comparison.weights[a] - comparison.weights[b]
    return stats.linear_contrast(w, cells["mean"], cells["se2"], cells["df"])


def factor_effects(design: Design, n_boot: int = stats.N_BOOT_TEST) -> dict[str, FactorEffect]:
    """An effect entry for every factor that varied (`n_boot`: resamples for the tests' p-values)."""
    out = {}
    for factor in design.factors:
        if factor in design.cell_factors:
            effect = _cell_factor_effect(design, factor, n_boot)
        else:
            effect = _within_cell_effect(design, factor, n_boot)
        if effect is not None:
            out[factor] = effect
    return out


def _cell_factor_effect(design: Design, factor: str, n_boot: int) -> FactorEffect | None:
    cells = testable_cells(design)
    if factor in RATE_FACTORS and "dropout" in cells:
        cells = cells[cells["dropout"].isin(RATE_LAYER[factor])].reset_index(drop=True)
    values = ordered_values(factor, cells[factor])
    if len(values) < 2:
        # Too few replicated cells to test: report point estimates from every cell.
        every = design.cells
        if factor in RATE_FACTORS and "dropout" in every:
            every = every[every["dropout"].isin(RATE_LAYER[factor])]
        return _unmatched_single(design, factor, every, ordered_values(factor, every[factor]))
    groups = {value_label(v): [v] for v in values}
    comparison = group_weights(cells, factor, groups, key_factors(design, factor))
    mean, se2, df, n = (cells[c].to_numpy(dtype=float) for c in ("mean", "se2", "df", "n"))
    entries = {}
    for label, w in comparison.weights.items():
        iv, _ = stats.linear_contrast(w, mean, se2, df)
        used = w > 0
        entries[label] = _entry(iv, int(n[used].sum()), int(used.sum()))
    labels = list(groups)
    base = comparison.weights[labels[0]]
    C = np.array([comparison.weights[l] - base for l in labels[1:]])
    used = np.any(C != 0, axis=0)
    result = stats.bootstrap_heteroscedastic_test(mean[used], se2[used], df[used], C[:, used], n_boot=n_boot)
    test = EffectTest(
        result.p_value, result.significant, TEST_METHOD, comparison.matched,
        estimate_method=MATCHED_METHOD if comparison.matched else UNMATCHED_METHOD,
        statistic=result.statistic, df1=result.df1, df2=result.df2,
    )
    return FactorEffect(factor, entries, test)


def _unmatched_single(design, factor, cells, values) -> FactorEffect | None:
    """A factor with fewer than two testable values: report what there is, no test."""
    entries = {}
    for v in values:
        sub = cells[cells[factor] == v]
        w = np.full(len(sub), 1.0 / len(sub))
        iv, _ = stats.linear_contrast(w, sub["mean"], sub["se2"], sub["df"])
        entries[value_label(v)] = _entry(iv, int(sub["n"].sum()), len(sub))
    if not entries:
        return None
    test = EffectTest(None, False, TEST_METHOD, False,
                      reason=f"fewer than two values of {factor} have a cell with at least 2 scored replicates")
    return FactorEffect(factor, entries, test)


def _within_cell_effect(design: Design, factor: str, n_boot: int) -> FactorEffect | None:
    """Trial-level summary for a factor that varies inside cells (binned when continuous)."""
    df, labels, order = factor_rows(design, factor)
    entries = {}
    groups = []
    for label in order:
        scores = df.loc[labels == label, "score"]
        iv = stats.t_interval(scores)
        entries[label] = _entry(iv, len(scores), int(df.loc[labels == label, "cell"].nunique()))
        groups.append(scores.to_numpy())
    testable = [g for g in groups if len(g) >= 2]
    test = EffectTest(None, False, TEST_METHOD + " (trial-level groups)", False, estimate_method=TRIAL_METHOD)
    if len(testable) >= 2:
        k = len(testable)
        C = np.hstack([np.ones((k - 1, 1)), -np.eye(k - 1)])
        res = stats.bootstrap_heteroscedastic_test(
            [g.mean() for g in testable], [g.var(ddof=1) / len(g) for g in testable], [len(g) - 1 for g in testable], C,
            n_boot=n_boot,
        )
        test = replace(test, p_value=res.p_value, significant=res.significant, statistic=res.statistic, df1=res.df1,
                       df2=res.df2)
    return FactorEffect(factor, entries, test)


def factor_rows(design: Design, factor: str) -> tuple[pd.DataFrame, pd.Series, list]:
    """The rows where `factor` exists, each row's value label, and the labels in order.

    A rate exists only with its Dropout layer, `order` only in conv blocks with both
    BN and Dropout2d; a rate that varies inside cells is binned.
    """
    df = design.trials
    if factor in RATE_FACTORS and "dropout" in df:
        df = df[df["dropout"].isin(RATE_LAYER[factor])]
    if factor == "order" and {"bn", "dropout"} <= set(df.columns):
        df = df[(df["bn"] != "none") & df["dropout"].isin(CONV_DROPOUT)]
    if factor in design.within_cell and factor in RATE_FACTORS:
        labels = rate_bins(df[factor])
        order = sorted(labels.unique(), key=_bin_start)
    else:
        labels = df[factor].map(value_label)
        order = [value_label(v) for v in ordered_values(factor, df[factor])]
    return df, labels, order


def search_effects(design: Design) -> dict[str, FactorEffect]:
    """Per factor value, the best search trial (tuned score, a selected maximum); no tests."""
    out = {}
    for factor in design.factors:
        df, labels, order = factor_rows(design, factor)
        entries = {}
        for label in order:
            scores = df.loc[labels == label, "score"]
            entries[label] = ValueScore(float(scores.max()), None, None, int(len(scores)),
                                        int(df.loc[labels == label, "cell"].nunique()))
        test = EffectTest(None, False, SEARCH_METHOD, False, estimate_method=SEARCH_METHOD, reason=SEARCH_ONLY)
        out[factor] = FactorEffect(factor, entries, test)
    return out


def rate_bins(rates: pd.Series, max_bins: int = 4) -> pd.Series:
    """Quantile bins of sampled rates, labelled like ``0.1-0.25``."""
    k = min(max_bins, rates.nunique())
    bins = pd.qcut(rates, q=k, duplicates="drop")
    return bins.map(lambda iv: f"{max(iv.left, 0.0):.2g}-{iv.right:.2g}").astype(str)


def _bin_start(label: str) -> float:
    try:
        return float(label.split("-")[0])
    except ValueError:
        return float("inf")


def _entry(iv: stats.Interval, n: int, n_cells: int) -> ValueScore:
    low, high = stats.accuracy_bounds(iv.low, iv.high)  # scores are accuracies
    return ValueScore(iv.estimate, low, high, n, n_cells)
