"""The ranking of cells, best first.

From stage-2 replicates (the default flow): a cell's score is the mean over the
replicates of its selected configuration, with a 95% interval (Student t over
seeds; Nadeau-Bengio corrected over CV folds), and a test of equal cell means.

From the search alone (no replicates yet): a cell's score is its best full-budget
trial, the cell's performance with its nuisance hyperparameters tuned, as the
tuning playbook compares cells. It is a selected maximum (biased upwards, more so
for noisier cells), so it gets no interval and no test; the ranking is preliminary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import stats
from analysis.design import Design

REPLICATES, SEARCH = "replicates", "search"
INTERVALS = {"seeds": stats.SEED_INTERVAL, "folds": stats.CV_INTERVAL, "replicates": stats.CV_INTERVAL}
SEARCH_METHOD = (
    "best full-budget search trial per cell (a selected maximum: biased upwards, so no interval and no test; "
    "preliminary until the selected configurations are retrained on replicates)"
)
OMNIBUS_METHOD = stats.PB_TEST + " of equal cell means"
TOP_TWO_METHOD = stats.WELCH_T + " of the best cell against the runner-up (both chosen from the same data, so read it as descriptive)"


def replicate_method(unit: str) -> str:
    return f"mean over {unit} of each cell's selected configuration, {INTERVALS[unit]}"


@dataclass(frozen=True)
class Ranking:
    """Cells best first: columns cell, factor values, n, score, ci_low, ci_high, se2, df, best_trial_id."""

    table: pd.DataFrame
    metric: str  # the design's score column
    method: str
    source: str  # REPLICATES or SEARCH
    unit: str  # "seeds", "folds", or "best trial"
    omnibus: stats.TestResult | None
    top_two: tuple[stats.Interval, float] | None  # (best - runner-up, p)


def rank_cells(design: Design, unit: str = "seeds", n_boot: int = stats.N_BOOT_TEST) -> Ranking:
    """Replicate means per cell with intervals, and the test of equal cell means."""
    table = design.cells.rename(columns={"mean": "score"})
    table = table.sort_values("score", ascending=False, ignore_index=True)
    table["ci_low"], table["ci_high"] = _bounds(table)
    testable = table[table["df"] >= 1]
    omnibus = None
    if len(testable) >= 2:
        k = len(testable)
        contrasts = np.hstack([np.ones((k - 1, 1)), -np.eye(k - 1)])
        omnibus = stats.bootstrap_heteroscedastic_test(testable["score"], testable["se2"], testable["df"], contrasts, n_boot=n_boot)
    top_two = None
    if len(table) >= 2 and (table["df"].iloc[:2] >= 1).all():
        top_two = stats.linear_contrast([1, -1], table["score"].iloc[:2], table["se2"].iloc[:2], table["df"].iloc[:2])
    return Ranking(table, design.metric, replicate_method(unit), REPLICATES, unit, omnibus, top_two)


def search_ranking(design: Design) -> Ranking:
    """Cells by their best full-budget search trial; no intervals, no tests."""
    table = design.cells.assign(score=design.cells["best"], ci_low=math.nan, ci_high=math.nan)
    table = table.sort_values("score", ascending=False, ignore_index=True)
    return Ranking(table, design.metric, SEARCH_METHOD, SEARCH, "best trial", None, None)


def _bounds(table: pd.DataFrame) -> tuple[list, list]:
    lows, highs = [], []
    for score, se2, df in zip(table["score"], table["se2"], table["df"]):
        iv = stats.interval_from_se(score, math.sqrt(se2) if se2 == se2 else math.nan, df)
        low, high = stats.accuracy_bounds(iv.low, iv.high)  # scores are accuracies
        lows.append(low)
        highs.append(high)
    return lows, highs
