"""Does the effect of Dropout depend on BatchNorm? The bn x dropout interaction test.

Groups are the cells, summarised by their replicates (stage-2 seeds or folds). The
other cell-defining factors (model, augment, order) form strata; inside each
stratum the additive model says ``mean(bn, dropout) = a + b[bn] + d[dropout]``. The
test compares that model with the full cell-means model: the contrasts are a basis
of the cell-mean vectors orthogonal to the additive design, so they are zero
exactly when there is no interaction in any stratum. Differences between strata
(e.g. bn x model) are free under both models and do not count as interaction.

Cells are not assumed to share a variance (cells with BN are usually less sensitive
to the learning rate), so the test uses the Welch-James statistic rather than the
classical pooled-variance ANOVA F; its p-value comes from a parametric bootstrap,
which holds its level with few trials per cell where Johansen's F approximation is
liberal (see `analysis.stats.bootstrap_heteroscedastic_test`). The drop
rates that come with a placement are part of the dropout level. When `dropout`
did not vary but a rate did, the rate (binned when continuous) takes its place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import stats
from analysis.design import Design, group_summary, ordered_values, value_label
from analysis.effects import rate_bins
from study.vocabulary.factors import RATE_FACTORS, RATE_LAYER

METHOD = (
    stats.PB_TEST + " of the bn x dropout interaction: additive model (bn + dropout within each stratum "
    "of the other factors) against the full cell-means model, each cell's variance from its own replicates"
)


@dataclass(frozen=True)
class Interaction:
    factors: list  # the pair tested, e.g. ["bn", "dropout"]
    p_value: float | None
    significant: bool
    method: str
    statistic: float | None = None
    df1: float | None = None
    df2: float | None = None
    n_cells: int = 0
    n_trials: int = 0
    reason: str | None = None
    groups: pd.DataFrame | None = None  # stratum, bn, level, n, mean, se2, df


def interaction_test(design: Design, n_boot: int = stats.N_BOOT_TEST) -> Interaction:
    """The bn x dropout (or bn x rate) interaction test on a design (`n_boot`: bootstrap resamples for the p-value)."""
    pair, level = _levels(design)
    if level is None:
        return Interaction(pair, None, False, METHOD, reason=pair_reason(design))
    df = design.trials
    strata_factors = [f for f in design.cell_factors if f not in ("bn", "dropout", *RATE_FACTORS)]
    columns = [df[f].to_numpy(dtype=object) for f in strata_factors]
    stratum = [",".join(value_label(v) for v in t) for t in zip(*columns)] if columns else ["all"] * len(df)
    keys = list(zip(stratum, df["bn"].to_numpy(dtype=object), level.to_numpy(dtype=object)))
    unique, n, mean, var = group_summary(keys, df["score"].to_numpy(dtype=float))
    groups = pd.DataFrame(unique, columns=["stratum", "bn", "level"]).assign(n=n, mean=mean, var=var)
    # CV folds share training images: the Nadeau-Bengio term, as in `analysis.design.cell_table`.
    ratio = 0.0
    if "se_ratio" in df:
        first: dict = {}
        for key, r in zip(keys, df["se_ratio"].to_numpy(dtype=float)):
            first.setdefault(key, r)
        ratio = np.array([first[key] for key in unique])
    groups["se2"] = groups["var"] * (1.0 / groups["n"] + ratio)
    groups["df"] = groups["n"] - 1
    used = groups[groups["n"] >= 2].reset_index(drop=True)
    result, q = additivity_test(used, n_boot)
    if result is None:
        return Interaction(
            pair, None, False, METHOD, n_cells=len(used), n_trials=int(used["n"].sum()), groups=used,
            reason=(
                f"no stratum has a 2 x 2 sub-table of {pair[0]} x {pair[1]} cells with at least 2 scored "
                "replicates each, so an interaction cannot be estimated"
            ),
        )
    return Interaction(
        pair, result.p_value, result.significant, METHOD, result.statistic, result.df1, result.df2,
        n_cells=len(used), n_trials=int(used["n"].sum()), groups=used,
    )


def additivity_test(groups: pd.DataFrame, n_boot: int = stats.N_BOOT_TEST) -> tuple[stats.TestResult | None, int]:
    """Heteroscedastic test of ``mean = a[stratum] + b[stratum, bn] + d[stratum, level]``.

    `groups` has columns stratum, bn, level, mean, se2, df (one row per cell, df >= 1).
    Returns (None, 0) when the additive model already fits every cell exactly.
    """
    if len(groups) < 4:
        return None, 0
    X0 = additive_design(groups)
    C = stats.complement_contrasts(X0)
    if C.shape[0] == 0:
        return None, 0
    return stats.bootstrap_heteroscedastic_test(groups["mean"], groups["se2"], groups["df"], C, n_boot=n_boot), C.shape[0]


def additive_design(groups: pd.DataFrame) -> np.ndarray:
    """Cells x parameters: per stratum an intercept, bn dummies and level dummies."""
    stratum = groups["stratum"].to_numpy(dtype=object)
    factors = {f: groups[f].to_numpy(dtype=object) for f in ("bn", "level")}
    columns = []
    for s in pd.unique(stratum):
        in_s = stratum == s
        columns.append(in_s.astype(float))
        for values in factors.values():
            levels = pd.unique(values[in_s])
            for value in levels[1:]:
                columns.append((in_s & (values == value)).astype(float))
    return np.column_stack(columns)


def _levels(design: Design) -> tuple[list, pd.Series | None]:
    """The factor pair tested and each trial's level of the second factor."""
    df = design.trials
    if "bn" not in design.cell_factors:
        return ["bn", "dropout"], None
    if "dropout" in design.cell_factors:
        parts = [df["dropout"].astype(str)]
        for rate in RATE_FACTORS:
            if rate in design.cell_factors:
                parts.append(rate + "=" + df[rate].map(value_label))
        level = parts[0]
        for p in parts[1:]:
            level = level + "," + p
        return ["bn", "dropout"], level
    for rate in RATE_FACTORS:
        if rate not in design.factors:
            continue
        has_layer = df["dropout"].isin(RATE_LAYER[rate]) if "dropout" in df else pd.Series(True, index=df.index)
        if rate in design.cell_factors:
            level = df[rate].map(value_label)
        else:
            level = pd.Series("absent", index=df.index, dtype=object)
            level[has_layer] = rate_bins(df.loc[has_layer, rate]).astype(object)
        return ["bn", rate], level.astype(str)
    return ["bn", "dropout"], None


def pair_for(design: Design) -> list:
    """The pair the interaction test is about in this design: bn x dropout, or bn x a rate."""
    return _levels(design)[0] if "bn" in design.cell_factors else ["bn", "dropout"]


def pair_reason(design: Design) -> str:
    if "bn" not in design.factors:
        return "bn did not vary among the scored runs, so the effect of Dropout cannot depend on it here"
    if "bn" not in design.cell_factors:
        return "bn varies inside cells (the cell column does not separate BN settings)"
    return "neither the dropout placement nor a drop rate varied among the scored runs"


def means_table(interaction: Interaction) -> pd.DataFrame | None:
    """bn x level table of mean scores (unweighted average over strata), for description."""
    g = interaction.groups
    if g is None or g.empty:
        return None
    table = g.groupby(["bn", "level"])["mean"].mean().unstack("level")
    bn_order = ordered_values("bn", table.index)
    return table.loc[bn_order]
