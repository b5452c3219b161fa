"""Numbers from a cross-validation table: per-configuration summary and paired tests.

Pure functions on cv.csv's rows (one per configuration and fold). The folds are the
same for every configuration, so two configurations compare fold by fold (paired).
Folds share training images, so their scores are positively correlated and the
naive variance ``s²/k`` understates the uncertainty; intervals and tests here use
the Nadeau & Bengio (2003) correction ``s²·(1/k + 1/(k-1))``, the same correction
the analysis uses for CV results (`analysis.stats.cv_se2`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.stats import ALPHA, CV_INTERVAL, VAR_FLOOR, cv_se2, interval_from_se
from study.factors import NUISANCE, SCIENTIFIC_FACTORS

INTERVAL_METHOD = CV_INTERVAL
PAIRED_TEST = (
    "Nadeau-Bengio corrected paired t-test over folds (two-sided) of the best configuration "
    "against each other one, Holm-adjusted over those comparisons"
)
# Columns that describe a configuration (constant over its folds), copied into the summary.
DESCRIBING = ("cell", "experiment", *SCIENTIFIC_FACTORS, *NUISANCE, "trial_id", "batch_size", "max_epochs",
              "train_size", "seed")
SUMMARISED = ("val_acc", "val_loss", "gap")


def scored_folds(cv: pd.DataFrame) -> pd.DataFrame:
    """The folds that trained to the end and have a validation accuracy."""
    done = cv["val_acc"].notna()
    if "status" in cv.columns:
        done &= cv["status"] == "completed"
    return cv[done]


def _mean_sd_interval(values: pd.Series) -> tuple[float, float, float, float]:
    """Mean, sample sd, and the corrected 95% t interval over k folds (NaN bounds when k < 2)."""
    x = values.dropna().astype(float).to_numpy()
    k = len(x)
    if k == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if k < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(x.std(ddof=1))
    iv = interval_from_se(mean, math.sqrt(cv_se2(sd, k)), k - 1)
    return mean, sd, iv.low, iv.high


def summarise_cv(cv: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration, best mean validation accuracy first.

    Columns: config_id, the describing columns present in `cv`, n_folds, and for
    val_acc and val_loss: _mean, _std, _ci_low, _ci_high; gap_mean, gap_std.
    """
    folds = scored_folds(cv)
    describing = [c for c in DESCRIBING if c in cv.columns]
    rows = []
    for config_id, group in cv.groupby("config_id", sort=False):
        scored = folds[folds["config_id"] == config_id]
        row = {"config_id": str(config_id), **group.iloc[0][describing].to_dict(), "n_folds": len(scored)}
        for metric in SUMMARISED:
            mean, sd, low, high = _mean_sd_interval(scored[metric])
            row.update({f"{metric}_mean": mean, f"{metric}_std": sd})
            if metric != "gap":
                row.update({f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        rows.append(row)
    summary = pd.DataFrame(rows)
    return summary.sort_values("val_acc_mean", ascending=False, na_position="last", kind="stable", ignore_index=True)


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN stays NaN and does not count as a test)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    m = len(tested)
    running = 0.0
    for rank, i in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def paired_difference(best: pd.Series, other: pd.Series) -> dict:
    """best - other in val_acc over the folds both scored: mean, sd, t, df, two-sided p."""
    both = pd.concat([best, other], axis=1, keys=["best", "other"]).dropna()
    d = (both["best"] - both["other"]).to_numpy(dtype=float)
    k = len(d)
    out = {"n_folds": k, "diff_mean": float(d.mean()) if k else math.nan, "diff_std": math.nan,
           "t": math.nan, "df": float(k - 1) if k else 0.0, "p_value": math.nan}
    if k < 2:
        return out
    sd = float(d.std(ddof=1))
    # Identical differences on every fold (sd 0) are floored, not divided by: t stays finite.
    se = math.sqrt(max(cv_se2(sd, k), VAR_FLOOR))
    t = out["diff_mean"] / se
    out.update(diff_std=sd, t=t, p_value=float(2 * sps.t.sf(abs(t), k - 1)))
    return out


def paired_tests(cv: pd.DataFrame) -> pd.DataFrame:
    """The best configuration (highest mean val_acc) against each other one, fold by fold.

    One row per other configuration: config_id, best_config_id, n_folds, diff_mean
    (best minus it, in accuracy), diff_std, t, df, p_value, p_holm, and `significant`
    (p_holm < 0.05: the difference is larger than fold-to-fold noise).
    """
    columns = ["config_id", "best_config_id", "n_folds", "diff_mean", "diff_std", "t", "df", "p_value", "p_holm",
               "significant"]
    summary = summarise_cv(cv)
    ranked = summary[summary["val_acc_mean"].notna()]
    if len(ranked) < 2:
        return pd.DataFrame(columns=columns)
    folds = scored_folds(cv)
    by_fold = folds.pivot_table(index="fold", columns="config_id", values="val_acc", aggfunc="mean")
    best = str(ranked["config_id"].iloc[0])
    rows = [{"config_id": str(other), "best_config_id": best, **paired_difference(by_fold[best], by_fold[other])}
            for other in ranked["config_id"].iloc[1:]]
    tests = pd.DataFrame(rows)
    tests["p_holm"] = holm(tests["p_value"])
    tests["significant"] = tests["p_holm"] < ALPHA
    return tests[columns]
