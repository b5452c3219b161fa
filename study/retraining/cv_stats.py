"""Numbers from a replicates table (cv.csv): per-configuration summary and tests against the best.

Pure functions on cv.csv's rows (one per configuration and replicate).

- Seeds: each replicate is an independent retraining on the study's fixed split,
  so the interval over them is a plain Student t interval, and the best
  configuration is compared with each other one by Welch's t-test.
- Folds: every configuration sees the same folds, so two configurations compare
  fold by fold (paired). Folds share training images, so their scores are
  positively correlated and the naive variance ``s²/k`` understates the
  uncertainty; intervals and tests use the Nadeau & Bengio (2003) correction
  ``s²·(1/k + n_val/n_train)`` with the design's own sizes (`analysis.stats.cv_se2`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.stats import (
    ALPHA,
    CV_INTERVAL,
    SEED_INTERVAL,
    VAR_FLOOR,
    cv_se2,
    interval_from_se,
    nadeau_bengio_ratio,
    welch_t,
)
from study.vocabulary.factors import NUISANCE, SCIENTIFIC_FACTORS

SEED_TEST = (
    "Welch t-test (two-sided) over seeds of the best configuration against each other one, "
    "Holm-adjusted over those comparisons"
)
FOLD_TEST = (
    "Nadeau-Bengio corrected paired t-test over folds (two-sided) of the best configuration "
    "against each other one, Holm-adjusted over those comparisons"
)
# Columns that describe a configuration (constant over its replicates), copied into the summary.
DESCRIBING = ("cell", "experiment", *SCIENTIFIC_FACTORS, *NUISANCE, "trial_id", "batch_size", "max_epochs",
              "train_size", "replicate_kind", "n_train", "n_val")
SUMMARISED = ("val_acc", "val_loss", "gap")


def interval_method(kind: str) -> str:
    return SEED_INTERVAL if kind == "seed" else CV_INTERVAL


def test_method(kind: str) -> str:
    return SEED_TEST if kind == "seed" else FOLD_TEST


def scored_replicates(cv: pd.DataFrame) -> pd.DataFrame:
    """The replicates that trained to the end without diverging and have a validation accuracy."""
    if "replicate" not in cv.columns:  # a table of folds written by hand or by an older `study cv`
        cv = cv.assign(replicate=cv["fold"])
    done = cv["val_acc"].notna()
    if "status" in cv.columns:
        done &= cv["status"] == "completed"
    return cv[done]


def _ratio(group: pd.DataFrame, kind: str, k: int) -> float:
    """The Nadeau-Bengio n_val/n_train of a configuration's folds (0 for seeds)."""
    if kind == "seed":
        return 0.0
    first = group.iloc[0]
    return nadeau_bengio_ratio(first.get("n_val"), first.get("n_train"), k)


def _mean_sd_interval(values: pd.Series, ratio: float) -> tuple[float, float, float, float]:
    """Mean, sample sd, and the 95% t interval over k replicates (NaN bounds when k < 2)."""
    x = values.dropna().astype(float).to_numpy()
    k = len(x)
    if k == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if k < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(x.std(ddof=1))
    iv = interval_from_se(mean, math.sqrt(cv_se2(sd, k, ratio)), k - 1)
    return mean, sd, iv.low, iv.high


def summarise_cv(cv: pd.DataFrame, kind: str = "seed") -> pd.DataFrame:
    """One row per configuration, best mean validation accuracy first.

    Columns: config_id, the describing columns present in `cv`, n_replicates,
    n_diverged, and for val_acc and val_loss: _mean, _std, _ci_low, _ci_high;
    gap_mean, gap_std.
    """
    scored = scored_replicates(cv)
    describing = [c for c in DESCRIBING if c in cv.columns]
    rows = []
    for config_id, group in cv.groupby("config_id", sort=False):
        mine = scored[scored["config_id"] == config_id]
        row = {"config_id": str(config_id), **group.iloc[0][describing].to_dict(), "n_replicates": len(mine),
               "n_diverged": int((group.get("status") == "diverged").sum()) if "status" in group else 0}
        ratio = _ratio(group, kind, len(mine))
        for metric in SUMMARISED:
            if metric not in mine:
                continue
            mean, sd, low, high = _mean_sd_interval(mine[metric], ratio)
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


def paired_difference(best: pd.Series, other: pd.Series, ratio: float | None = None) -> dict:
    """best - other in val_acc over the folds both scored: mean, sd, t, df, two-sided p (Nadeau-Bengio)."""
    both = pd.concat([best, other], axis=1, keys=["best", "other"]).dropna()
    d = (both["best"] - both["other"]).to_numpy(dtype=float)
    k = len(d)
    out = {"n_replicates": k, "diff_mean": float(d.mean()) if k else math.nan, "diff_std": math.nan,
           "t": math.nan, "df": float(k - 1) if k else 0.0, "p_value": math.nan}
    if k < 2:
        return out
    sd = float(d.std(ddof=1))
    # Identical differences on every fold (sd 0) are floored, not divided by: t stays finite.
    se = math.sqrt(max(cv_se2(sd, k, ratio), VAR_FLOOR))
    t = out["diff_mean"] / se
    out.update(diff_std=sd, t=t, p_value=float(2 * sps.t.sf(abs(t), k - 1)))
    return out


def independent_difference(best: pd.Series, other: pd.Series) -> dict:
    """best - other in val_acc over independent seeds: Welch's t."""
    a, b = best.dropna().to_numpy(dtype=float), other.dropna().to_numpy(dtype=float)
    out = {"n_replicates": min(len(a), len(b)), "diff_mean": float(a.mean() - b.mean()) if len(a) and len(b) else math.nan,
           "diff_std": math.nan, "t": math.nan, "df": 0.0, "p_value": math.nan}
    if len(a) < 2 or len(b) < 2:
        return out
    iv, p = welch_t(a, b)
    out.update(diff_std=iv.se, t=iv.estimate / iv.se if iv.se else math.nan, df=iv.df, p_value=p)
    return out


def paired_tests(cv: pd.DataFrame, kind: str = "seed") -> pd.DataFrame:
    """The best configuration (highest mean val_acc) against each other one.

    One row per other configuration: config_id, best_config_id, n_replicates, diff_mean
    (best minus it, in accuracy), diff_std (sd of the fold differences; the standard
    error for seeds), t, df, p_value, p_holm, and `significant` (p_holm < 0.05: the
    difference is larger than the replicate-to-replicate noise).
    """
    columns = ["config_id", "best_config_id", "n_replicates", "diff_mean", "diff_std", "t", "df", "p_value", "p_holm",
               "significant"]
    summary = summarise_cv(cv, kind)
    # A configuration with one scored replicate has no spread to test against: it can be neither side.
    ranked = summary[summary["val_acc_mean"].notna() & (summary["n_replicates"] >= 2)]
    if len(ranked) < 2:
        return pd.DataFrame(columns=columns)
    scored = scored_replicates(cv)
    by_replicate = scored.pivot_table(index="replicate", columns="config_id", values="val_acc", aggfunc="mean")
    best = str(ranked["config_id"].iloc[0])
    rows = []
    for other in ranked["config_id"].iloc[1:]:
        if kind == "seed":
            diff = independent_difference(by_replicate[best], by_replicate[other])
        else:
            ratio = _ratio(cv[cv["config_id"] == best], kind, int(by_replicate[best].notna().sum()))
            diff = paired_difference(by_replicate[best], by_replicate[other], ratio)
        rows.append({"config_id": str(other), "best_config_id": best, **diff})
    tests = pd.DataFrame(rows)
    tests["p_holm"] = holm(tests["p_value"])
    tests["significant"] = tests["p_holm"] < ALPHA
    return tests[columns]
