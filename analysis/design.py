"""Which trials are compared, which factors varied, and the per-cell summary.

Only trials that trained the full epoch budget are compared (`status == completed`
and `epochs >= max_epochs`): a pruned trial's score is from fewer epochs, and ASHA
prunes by comparing trials, so mixing them in would bias every cell towards the
ones ASHA liked early. Pruned and failed trials are counted, never scored.

The unit of replication is the trial. Trials of one cell differ in their nuisance
values (the tuner's draws) and seeds, so a cell's mean score estimates how well
that cell does on average over the tuned nuisance values ASHA let finish; it is not
the best trial (a maximum, biased upwards, and more so in cells with more trials).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from analysis.io import RATE_FACTORS, RATE_LAYER
from study.factors import CATEGORICAL_VALUES, SCIENTIFIC_FACTORS

METRICS = ("best_val_acc", "val_acc")


@dataclass(frozen=True)
class Design:
    """The analysed trials and what varied among them."""

    trials: pd.DataFrame  # completed, full-budget trials with a finite `score` column
    metric: str
    factors: tuple[str, ...]  # scientific factors that varied, vocabulary order
    cell_factors: tuple[str, ...]  # varied and constant inside every cell
    within_cell: tuple[str, ...]  # varied inside some cell (e.g. sampled dropout rates)
    cells: pd.DataFrame  # one row per cell, see `cell_table`
    budget: int
    counts: dict = field(default_factory=dict)


def make_design(trials: pd.DataFrame, metric: str = "best_val_acc") -> Design:
    """Select the comparable trials of a validated trials table and describe them.

    Raises `AnalysisError` when no trial trained the full budget, or when no
    scientific factor varied among those that did.
    """
    if metric not in METRICS:
        raise AnalysisError(f"metric {metric!r} is not supported; use one of {', '.join(METRICS)}")
    status = trials["status"]
    full = (status == "completed") & (trials["epochs"] >= trials["max_epochs"])
    scored = full & trials[metric].notna()
    counts = {
        "trials": int(len(trials)),
        "completed": int((status == "completed").sum()),
        "pruned": int((status == "pruned").sum()),
        "error": int((status == "error").sum()),
        "short": int(((status == "completed") & ~full).sum()),
        "unscored": int((full & trials[metric].isna()).sum()),
        "analysed": int(scored.sum()),
    }
    budget = int(trials["max_epochs"].max())
    if counts["analysed"] == 0:
        raise AnalysisError(
            f"none of the {counts['trials']} trials trained the full budget of {budget} epochs with a {metric} "
            f"({counts['pruned']} pruned, {counts['error']} failed, {counts['short']} completed early, "
            f"{counts['unscored']} without a score); there is nothing to compare. "
            "Run the study longer or with a larger trial budget."
        )
    df = trials.loc[scored].copy()
    df["score"] = df[metric].astype(float)
    factors = varying_factors(df)
    if not factors:
        present = [f for f in SCIENTIFIC_FACTORS if f in df.columns]
        raise AnalysisError(
            f"no scientific factor varied among the {len(df)} full-budget trials "
            f"(factor columns present: {', '.join(present)}; every trial has the same values), "
            "so there is nothing to compare; run a space with at least two values of a factor"
        )
    constant = df.groupby("cell", sort=False)[list(factors)].nunique(dropna=False).max() <= 1
    cell_factors = tuple(f for f in factors if constant[f])
    within = tuple(f for f in factors if not constant[f])
    return Design(df, metric, factors, cell_factors, within, cell_table(df, "score"), budget, counts)


def varying_factors(df: pd.DataFrame) -> tuple[str, ...]:
    """Scientific factors with at least two values; a rate counts only where its layer exists."""
    out = []
    for factor in SCIENTIFIC_FACTORS:
        if factor not in df.columns:
            continue
        values = df[factor]
        if factor in RATE_FACTORS and "dropout" in df.columns:
            values = values[df["dropout"].isin(RATE_LAYER[factor])]
        if values.nunique(dropna=True) >= 2:
            out.append(factor)
    return tuple(out)


def cell_table(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """One row per cell: constant factor values, n, mean, sd, se2 (= sd²/n), df, best trial.

    Factor columns that vary inside a cell hold NaN for it. Sorted by mean, best first.
    """
    df = df[df[column].notna()]
    factor_cols = [f for f in SCIENTIFIC_FACTORS if f in df.columns]
    grouped = df.groupby("cell", sort=False)
    table = grouped[column].agg(n="count", mean="mean", sd="std", best="max")
    table["best_trial_id"] = df.loc[grouped[column].idxmax(), "trial_id"].to_numpy()
    if factor_cols:
        first = grouped[factor_cols].first()
        constant = grouped[factor_cols].nunique(dropna=False) <= 1
        table = first.where(constant).join(table)
    table["sd"] = table["sd"].where(table["n"] > 1)
    table["se2"] = table["sd"] ** 2 / table["n"]
    table["df"] = table["n"] - 1
    table = table.reset_index()
    return table.sort_values("mean", ascending=False, ignore_index=True)


def ordered_values(factor: str, values) -> list:
    """Values of a factor in vocabulary order (numbers ascending)."""
    values = list(pd.unique(pd.Series(list(values)).dropna()))
    allowed = CATEGORICAL_VALUES.get(factor)
    if allowed is not None:
        return [v for v in allowed if v in values]
    return sorted(values)


def value_label(value) -> str:
    """How a factor value is written in keys and labels: true/false, 0.3, pre_act."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)
