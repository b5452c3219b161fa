"""Which trials are compared, which factors varied, and the per-cell summary.

A design is built from one of two tables, and means something different for each:

- stage-2 replicates (`analysis.replicates.replicate_rows`): each cell's selected
  configuration retrained on seeds or folds. A cell's mean over them is its score
  when its nuisance hyperparameters are tuned, and every conclusion comes from it;
- search trials (trials.csv), when no replicates exist: a cell's best trial is its
  tuned score (a selected maximum, biased upwards), and the mean over its trials
  measures how forgiving the cell is of the nuisance range, never how good it is.

Either way only rows that trained the full epoch budget are compared (`status ==
completed` and `epochs >= max_epochs`): a pruned trial's score is from fewer
epochs, and ASHA prunes by comparing trials, so mixing them in would bias every
cell towards the ones ASHA liked early. Pruned, diverged and failed rows are
counted, never scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from analysis.results import Counts
from study.vocabulary.factors import CATEGORICAL_VALUES, RATE_FACTORS, RATE_LAYER, SCIENTIFIC_FACTORS

METRICS = ("best_val_acc", "val_acc")


@dataclass(frozen=True)
class Design:
    """The analysed trials and what varied among them."""

    trials: pd.DataFrame  # completed, full-budget rows (search trials or replicates) with a finite `score` column
    metric: str
    factors: tuple[str, ...]  # scientific factors that varied, vocabulary order
    cell_factors: tuple[str, ...]  # varied and constant inside every cell
    within_cell: tuple[str, ...]  # varied inside some cell (e.g. sampled dropout rates)
    cells: pd.DataFrame  # one row per cell, see `cell_table`
    budget: int
    counts: Counts


def make_design(trials: pd.DataFrame, metric: str = "best_val_acc", tuned: tuple[str, ...] = ()) -> Design:
    """Select the comparable rows of a validated trials (or replicates) table and describe them.

    `tuned`: factors that are not compared here although they vary (a drop rate the
    search tuned inside each cell is part of the configuration a cell's replicates
    retrain). Raises `AnalysisError` when no row trained the full budget, or when no
    scientific factor varied among all rows (a design where only one cell's rows trained
    the full budget keeps the factors its other rows show, with that one cell).
    """
    if metric not in METRICS:
        raise AnalysisError(f"metric {metric!r} is not supported; use one of {', '.join(METRICS)}")
    # numpy, not pandas, for these comparisons: a few dozen rows, called thousands of times in tests.
    status = trials["status"].to_numpy(dtype=object)
    epochs = trials["epochs"].to_numpy(dtype=float)
    has_score = ~np.isnan(trials[metric].to_numpy(dtype=float))
    completed = status == "completed"
    full = completed & (epochs >= trials["max_epochs"].to_numpy(dtype=float))
    scored = full & has_score
    counts = Counts(
        trials=int(len(trials)),
        completed=int(completed.sum()),
        pruned=int((status == "pruned").sum()),
        diverged=int((status == "diverged").sum()),
        error=int((status == "error").sum()),
        short=int((completed & ~full).sum()),
        unscored=int((full & ~has_score).sum()),
        analysed=int(scored.sum()),
    )
    budget = int(trials["max_epochs"].max())
    if counts.analysed == 0:
        raise AnalysisError(
            f"none of the {counts.trials} trials trained the full budget of {budget} epochs with a {metric} "
            f"({counts.pruned} pruned, {counts.diverged} diverged, {counts.error} failed, "
            f"{counts.short} completed early, "
            f"{counts.unscored} without a score); there is nothing to compare. "
            "Run the study longer or with a larger trial budget."
        )
    df = trials.loc[scored].copy()
    df["score"] = df[metric].astype(float)
    factors = tuple(f for f in varying_factors(df) if f not in tuned)
    if not factors:
        # The design varied factors, but the runs of only one cell trained the full budget (the others
        # were pruned or diverged): a design of that one cell, which `checks.single_cell` warns about.
        factors = tuple(f for f in varying_factors(trials) if f not in tuned)
    if not factors:
        present = [f for f in SCIENTIFIC_FACTORS if f in df.columns]
        raise AnalysisError(
            f"no scientific factor varied among the {len(df)} full-budget runs "
            f"(factor columns present: {', '.join(present)}; every trial has the same values), "
            "so there is nothing to compare; run a space with at least two values of a factor"
        )
    cells = cell_table(df, "score")
    # cell_table leaves a factor empty (NaN) for a cell where it is not constant.
    cell_factors = tuple(f for f in factors if cells[f].notna().all())
    within = tuple(f for f in factors if f not in cell_factors)
    return Design(df, metric, factors, cell_factors, within, cells, budget, counts)


def varying_factors(df: pd.DataFrame) -> tuple[str, ...]:
    """Scientific factors with at least two values; a rate counts only where its layer exists."""
    out = []
    dropout = df["dropout"].to_numpy(dtype=object) if "dropout" in df else None
    for factor in SCIENTIFIC_FACTORS:
        if factor not in df.columns:
            continue
        values = df[factor].to_numpy(dtype=object)
        if factor in RATE_FACTORS and dropout is not None:
            values = values[np.isin(dropout, RATE_LAYER[factor])]
        if len(set(v for v in values if not _isnan(v))) >= 2:
            out.append(factor)
    return tuple(out)


def _isnan(v) -> bool:
    return isinstance(v, float) and v != v


def cell_table(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """One row per cell: constant factor values, n, mean, sd, se2, df, best trial.

    ``se2 = sd²/n`` for independent replicates; rows with an `se_ratio` (CV folds,
    which share training images) get the Nadeau-Bengio ``sd²·(1/n + se_ratio)``.
    Factor columns that vary inside a cell hold NaN for it. Sorted by mean, best first.
    (Plain numpy on purpose: pandas groupby on a few dozen rows is mostly overhead.)
    """
    df = df[df[column].notna()]
    codes, cells = pd.factorize(df["cell"].to_numpy(dtype=object), sort=False)
    y = df[column].to_numpy(dtype=float)
    n = np.bincount(codes, minlength=len(cells))
    mean = np.bincount(codes, y, minlength=len(cells)) / n
    ss = np.bincount(codes, (y - mean[codes]) ** 2, minlength=len(cells))
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.where(n > 1, np.sqrt(ss / np.maximum(n - 1, 1)), np.nan)
    # Best trial per cell: sort by cell, then score descending; the first of each cell wins.
    order = np.lexsort((-y, codes))
    first = order[np.searchsorted(codes[order], np.arange(len(cells)))]
    table = {"cell": cells}
    for f in (f for f in SCIENTIFIC_FACTORS if f in df.columns):
        values = df[f].to_numpy(dtype=object)
        firsts = values[first]
        differs = np.array([a != b and not (_isnan(a) and _isnan(b)) for a, b in zip(values, firsts[codes])], dtype=float)
        constant = np.bincount(codes, differs, minlength=len(cells)) == 0
        table[f] = [v if c else np.nan for v, c in zip(firsts, constant)]
    ratio = df["se_ratio"].to_numpy(dtype=float)[first] if "se_ratio" in df.columns else 0.0
    table.update(
        n=n, mean=mean, sd=sd, best=y[first], best_trial_id=df["trial_id"].to_numpy(dtype=object)[first].astype(str),
        se2=sd**2 * (1.0 / n + ratio), df=n - 1,
    )
    out = pd.DataFrame(table)
    return out.sort_values("mean", ascending=False, ignore_index=True)


def diverged_counts(trials: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group of `by` (e.g. cell, or bn): its trials, how many diverged, and the share (a fraction)."""
    counts = (
        trials.assign(diverged=trials["status"] == "diverged")
        .groupby(by, sort=False)["diverged"].agg(trials="size", diverged="sum").reset_index()
    )
    return counts.assign(diverged=counts["diverged"].astype(int), share=counts["diverged"] / counts["trials"])


def group_summary(keys: list, y: np.ndarray) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """Unique keys (first-seen order) with count, mean and sample variance (NaN when n = 1) of y."""
    index: dict = {}
    codes = np.array([index.setdefault(k, len(index)) for k in keys], dtype=int)
    m = len(index)
    n = np.bincount(codes, minlength=m)
    mean = np.bincount(codes, y, minlength=m) / n
    ss = np.bincount(codes, (y - mean[codes]) ** 2, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(n > 1, ss / np.maximum(n - 1, 1), np.nan)
    return list(index), n, mean, var


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
