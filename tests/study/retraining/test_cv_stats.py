"""Per-configuration replicate summary and the tests against the best, on hand-made tables:
folds (paired, Nadeau-Bengio corrected) and seeds (independent, plain t)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from study.retraining.cv_stats import holm, paired_tests, summarise_cv


def _cv(scores: dict[str, list[float]], **extra) -> pd.DataFrame:
    rows = []
    for config_id, values in scores.items():
        for fold, acc in enumerate(values):
            rows.append({"config_id": config_id, "cell": f"cell-{config_id}", "fold": fold, "status": "completed",
                         "val_acc": acc, "val_loss": 1 - acc, "train_loss": 0.5 - acc / 2, "gap": 0.5 - acc / 2})
    return pd.DataFrame(rows).assign(**extra)


def test_summary_mean_sd_and_corrected_interval():
    values = [0.80, 0.82, 0.84, 0.81, 0.83]
    summary = summarise_cv(_cv({"a": values}), "fold")
    row = summary.iloc[0]
    k, sd = 5, np.std(values, ddof=1)
    half = sps.t.ppf(0.975, k - 1) * math.sqrt(sd**2 * (1 / k + 1 / (k - 1)))  # Nadeau-Bengio, sizes unknown
    assert row["n_replicates"] == 5 and row["cell"] == "cell-a"
    assert row["val_acc_mean"] == pytest.approx(np.mean(values))
    assert row["val_acc_std"] == pytest.approx(sd)
    assert (row["val_acc_ci_low"], row["val_acc_ci_high"]) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    assert row["val_loss_mean"] == pytest.approx(1 - np.mean(values))
    assert row["gap_std"] == pytest.approx(sd / 2)
    expected = {"config_id", "n_replicates", "gap_mean", "gap_std"} | {
        f"{m}_{s}" for m in ("val_acc", "val_loss") for s in ("mean", "std", "ci_low", "ci_high")}
    assert expected <= set(summary.columns)


def test_fold_intervals_use_the_designs_own_sizes_and_seed_intervals_need_no_correction():
    values = [0.80, 0.82, 0.84, 0.81, 0.83]
    k, sd, mean = 5, np.std(values, ddof=1), np.mean(values)
    t = sps.t.ppf(0.975, k - 1)
    subset = summarise_cv(_cv({"a": values}, n_train=1500, n_val=12000), "fold").iloc[0]
    assert subset["val_acc_ci_high"] - mean == pytest.approx(t * math.sqrt(sd**2 * (1 / k + 12000 / 1500)))
    seeds = summarise_cv(_cv({"a": values}), "seed").iloc[0]
    assert seeds["val_acc_ci_high"] - mean == pytest.approx(t * sd / math.sqrt(k))


def test_summary_best_first_and_failed_or_diverged_replicates_left_out():
    cv = _cv({"low": [0.5, 0.52, 0.51, 0.5], "high": [0.9, 0.2, 0.91, 0.1]})
    cv.loc[(cv.config_id == "high") & (cv.fold == 1), "status"] = "error"  # its 0.2 must not count
    cv.loc[(cv.config_id == "high") & (cv.fold == 3), "status"] = "diverged"  # nor its 0.1
    summary = summarise_cv(cv)
    assert list(summary["config_id"]) == ["high", "low"]
    assert summary.set_index("config_id").loc["high", "n_replicates"] == 2
    assert summary.set_index("config_id").loc["high", "n_diverged"] == 1
    assert summary.set_index("config_id").loc["high", "val_acc_mean"] == pytest.approx(0.905)


def test_holm_adjustment():
    adjusted = holm([0.01, 0.04, 0.03, math.nan])
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    np.testing.assert_allclose(adjusted[:3], [0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3])


def test_paired_test_separates_a_consistent_difference_from_noise():
    rng = np.random.default_rng(0)
    fold_effect = rng.normal(0, 0.02, size=5)  # shared by every configuration: pairing removes it
    cv = _cv({
        "best": list(0.90 + fold_effect),
        "clearly_worse": list(0.85 + fold_effect + rng.normal(0, 0.002, size=5)),
        "noise": list(0.899 + fold_effect + rng.normal(0, 0.01, size=5)),
    })
    tests = paired_tests(cv, "fold").set_index("config_id")
    assert set(tests["best_config_id"]) == {"best"}
    assert tests.loc["clearly_worse", "significant"] and not tests.loc["noise", "significant"]
    assert tests.loc["clearly_worse", "diff_mean"] == pytest.approx(0.05, abs=0.003)
    d = cv[cv.config_id == "best"]["val_acc"].to_numpy() - cv[cv.config_id == "clearly_worse"]["val_acc"].to_numpy()
    t = d.mean() / math.sqrt(d.var(ddof=1) * (1 / 5 + 1 / 4))
    assert tests.loc["clearly_worse", "t"] == pytest.approx(t)
    assert tests.loc["clearly_worse", "p_value"] == pytest.approx(2 * sps.t.sf(abs(t), 4))
    assert (tests["p_holm"] >= tests["p_value"]).all()


def test_seed_replicates_are_compared_by_welch_t():
    cv = _cv({"best": [0.90, 0.905, 0.895], "worse": [0.85, 0.86, 0.855]})
    tests = paired_tests(cv, "seed").set_index("config_id")
    res = sps.ttest_ind([0.90, 0.905, 0.895], [0.85, 0.86, 0.855], equal_var=False)
    assert tests.loc["worse", "p_value"] == pytest.approx(res.pvalue)
    assert tests.loc["worse", "t"] == pytest.approx(res.statistic)


def test_a_configuration_with_one_scored_replicate_is_not_the_best_to_test_against():
    cv = _cv({"lucky": [0.99, 0.1], "best": [0.90, 0.905, 0.895], "worse": [0.85, 0.86, 0.855]})
    cv.loc[(cv.config_id == "lucky") & (cv.fold == 1), "status"] = "diverged"
    tests = paired_tests(cv, "seed")
    assert set(tests["best_config_id"]) == {"best"} and list(tests["config_id"]) == ["worse"]
    assert tests["p_value"].notna().all()


def test_paired_test_needs_two_configurations():
    assert paired_tests(_cv({"only": [0.8, 0.9]})).empty
