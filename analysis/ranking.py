"""The ranking of cells: one score per cell with a 95% interval, best first.

From trials: a cell's score is the mean of its full-budget trials' metric, with a
Student t interval (trials are the replicates; see `analysis.design`).

From cross-validation (takes precedence when present): each configuration's score is
its mean over folds, with the Nadeau-Bengio corrected t interval (folds share
training data, so the naive interval is too narrow). A cell is represented by its
best cross-validated configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import stats
from analysis.design import Design
from analysis.errors import AnalysisError
from study.factors import SCIENTIFIC_FACTORS

TRIALS_METHOD = "mean of full-budget trials per cell, " + stats.T_INTERVAL
CV_METHOD = "mean over CV folds of each cell's best cross-validated configuration, " + stats.CV_INTERVAL
OMNIBUS_METHOD = stats.PB_TEST + " of equal cell means"
TOP_TWO_METHOD = stats.WELCH_T + " of the best cell against the runner-up (both chosen from the same data, so read it as descriptive)"


@dataclass(frozen=True)
class Ranking:
    """Cells best first: columns cell, factor values, n, score, ci_low, ci_high, se2, df (+ config_id for CV)."""

    table: pd.DataFrame
    metric: str  # e.g. best_val_acc or cv_val_acc
    method: str
    source: str  # "trials" or "cv"
    omnibus: stats.TestResult | None
    top_two: tuple[stats.Interval, float] | None  # (best - runner-up, p)


def rank_cells(
    design: Design,
    cv: pd.DataFrame | None = None,
    cv_summary: pd.DataFrame | None = None,
    n_boot: int = stats.N_BOOT_TEST,
) -> Ranking:
    """CV results when present (cv.csv preferred over cv_summary.csv), else the trials."""
    cv_table = None
    if cv is not None and len(cv):
        cv_table = _cv_configs_from_folds(cv)
    elif cv_summary is not None and len(cv_summary):
        cv_table = _cv_configs_from_summary(cv_summary)
    if cv_table is not None:
        table = _best_config_per_cell(cv_table, design)
        return _finish(table, "cv_val_acc", CV_METHOD, "cv", n_boot)
    return trial_ranking(design, n_boot)


def trial_ranking(design: Design, n_boot: int = stats.N_BOOT_TEST) -> Ranking:
    cells = design.cells
    table = cells.rename(columns={"mean": "score"}).copy()
    table["ci_low"], table["ci_high"] = _bounds(table)
    return _finish(table, design.metric, TRIALS_METHOD, "trials", n_boot)


def _finish(table: pd.DataFrame, metric: str, method: str, source: str, n_boot: int = stats.N_BOOT_TEST) -> Ranking:
    table = table.sort_values("score", ascending=False, ignore_index=True)
    testable = table[table["df"] >= 1]
    omnibus = None
    if len(testable) >= 2:
        k = len(testable)
        contrasts = np.hstack([np.ones((k - 1, 1)), -np.eye(k - 1)])
        omnibus = stats.bootstrap_heteroscedastic_test(testable["score"], testable["se2"], testable["df"], contrasts, n_boot=n_boot)
    top_two = None
    if len(table) >= 2 and (table["df"].iloc[:2] >= 1).all():
        top_two = stats.linear_contrast([1, -1], table["score"].iloc[:2], table["se2"].iloc[:2], table["df"].iloc[:2])
    return Ranking(table, metric, method, source, omnibus, top_two)


def _bounds(table: pd.DataFrame) -> tuple[list, list]:
    lows, highs = [], []
    for score, se2, df in zip(table["score"], table["se2"], table["df"]):
        iv = stats.interval_from_se(score, math.sqrt(se2) if se2 == se2 else math.nan, df)
        low, high = stats.accuracy_bounds(iv.low, iv.high)  # scores are accuracies
        lows.append(low)
        highs.append(high)
    return lows, highs


def _cv_configs_from_folds(cv: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for config_id, group in cv.groupby("config_id", sort=False):
        values = group["val_acc"].dropna().astype(float)
        k = len(values)
        if k == 0:
            continue
        sd = float(values.std(ddof=1)) if k > 1 else math.nan
        row = _config_row(group.iloc[0], config_id)
        row.update(n=k, score=float(values.mean()), sd=sd, se2=stats.cv_se2(sd, k), df=k - 1)
        if "val_loss" in group:
            row["val_loss"] = float(group["val_loss"].mean())
        if "gap" in group:
            row["gap"] = float(group["gap"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _cv_configs_from_summary(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, rec in summary.iterrows():
        k = int(rec["n_folds"])
        sd = float(rec["val_acc_std"])
        row = _config_row(rec, rec["config_id"])
        row.update(n=k, score=float(rec["val_acc_mean"]), sd=sd, se2=stats.cv_se2(sd, k), df=k - 1)
        if "val_loss_mean" in rec:
            row["val_loss"] = float(rec["val_loss_mean"])
        if "gap_mean" in rec:
            row["gap"] = float(rec["gap_mean"])
        rows.append(row)
    return pd.DataFrame(rows)


def _config_row(rec, config_id) -> dict:
    row = {"config_id": str(config_id), "cell": str(rec["cell"])}
    for f in SCIENTIFIC_FACTORS:
        if f in rec.index:
            row[f] = rec[f]
    return row


def _best_config_per_cell(configs: pd.DataFrame, design: Design) -> pd.DataFrame:
    if configs.empty:
        raise AnalysisError("the cross-validation table has no scores (val_acc is empty)")
    configs = configs.sort_values("score", ascending=False)
    best = configs.drop_duplicates("cell", keep="first").copy()
    best["configs_in_cell"] = best["cell"].map(configs["cell"].value_counts())
    # Factor values missing from the CV table come from the trials' cell table.
    known = design.cells.set_index("cell")
    for f in SCIENTIFIC_FACTORS:
        if f in known.columns and (f not in best.columns or best[f].isna().any()):
            fill = best["cell"].map(known[f])
            best[f] = fill if f not in best.columns else best[f].where(best[f].notna(), fill)
    best["ci_low"], best["ci_high"] = _bounds(best)
    return best.reset_index(drop=True)
