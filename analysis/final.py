"""Final evaluation on the test set: each configuration's test accuracy over seeds.

Seeds are independent reruns, so a Student t interval over them is the honest
spread; a difference between configurations is real only when it beats it.
"""

from __future__ import annotations

import pandas as pd

from analysis import stats

METHOD = "mean test accuracy over seeds, " + stats.T_INTERVAL
# Means over seeds reported beside the accuracy, where final.csv has them: the accuracy with each test image
# averaged with its mirror image, calibration, and the same networks with their BN statistics re-estimated
# (study.training.mechanism).
MEANS = ("test_acc_flip", "test_loss", "test_ece", "test_conf_wrong", "var_shift_max", "test_acc_bn_reestimated",
         "test_ece_bn_reestimated")


def summarise_final(final: pd.DataFrame) -> pd.DataFrame:
    """One row per config_id: cell, n_seeds, test_acc, ci_low, ci_high, sd, and the mean of each of `MEANS`
    the table has; best first."""
    rows = []
    for config_id, group in final.groupby("config_id", sort=False):
        acc = group["test_acc"].dropna()
        if acc.empty:
            continue
        iv = stats.t_interval(acc)
        row = {
            "config_id": str(config_id),
            "cell": str(group["cell"].iloc[0]),
            "n_seeds": int(len(acc)),
            "test_acc": iv.estimate,
            "ci_low": iv.low,
            "ci_high": iv.high,
            "sd": float(acc.std(ddof=1)) if len(acc) > 1 else float("nan"),
        }
        for column in MEANS:
            if column in group and group[column].notna().any():
                row[column] = float(group[column].mean())
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["config_id", "cell", "n_seeds", "test_acc", "ci_low", "ci_high", "sd"])
    return pd.DataFrame(rows).sort_values("test_acc", ascending=False, ignore_index=True)
