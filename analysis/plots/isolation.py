"""Isolation plots of the search: best trial per factor value, and the mean of its trials."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
import numpy as np
import pandas as pd

from analysis import stats
from analysis.design import Design
from analysis.effects import factor_rows
from analysis.plots.common import save_png
from analysis.summary import metric_words
from study.vocabulary.factors import RATE_FACTORS


@dataclass(frozen=True)
class IsolationInfo:
    factors: dict  # factor -> DataFrame(label, best, mean, ci_low, ci_high, n, best_trial_id) in %
    ylabel: str
    title: str


def isolation_info(design: Design) -> IsolationInfo | None:
    """Per factor value: the best search trial (nuisance tuned away) and the mean of the trials.

    A factor without a full-budget trial at any of its values (a drop rate whose cells were all
    pruned or diverged) has nothing to draw and is left out; None when no factor is left.
    """
    out = {}
    for factor in design.factors:
        sub, labels, order = factor_rows(design, factor)
        rows = []
        for label in order:
            scores = sub.loc[labels == label, "score"]
            ids = sub.loc[labels == label, "trial_id"]
            iv = stats.t_interval(scores)
            low, high = stats.accuracy_bounds(iv.low, iv.high)
            rows.append({
                "label": label, "best": 100 * scores.max(), "mean": 100 * iv.estimate,
                "ci_low": 100 * low, "ci_high": 100 * high, "n": len(scores),
                "best_trial_id": ids.loc[scores.idxmax()],
            })
        if rows:
            out[factor] = pd.DataFrame(rows)
    if not out:
        return None
    return IsolationInfo(
        out, f"{metric_words(design.metric)} (%)",
        "Search trials per value: the best trial (nuisance tuned away),\n"
        "and the mean of trials with 95% CI (how forgiving the value is of the nuisance range)",
    )


def plot_isolation(info: IsolationInfo, path: Path) -> Path:
    n = len(info.factors)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(4.6 * cols, 3.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (factor, table) in zip(axes, info.factors.items()):
        x = np.arange(len(table))
        ax.bar(x, table["best"], color="#9ecae1", label="best trial")
        ax.errorbar(x, table["mean"], yerr=[table["mean"] - table["ci_low"], table["ci_high"] - table["mean"]],
                    fmt="o", color="black", capsize=3, label="mean, 95% CI")
        ax.set_xticks(x, table["label"], rotation=20 if len(table) > 3 else 0)
        low = np.nanmin(np.concatenate([table["ci_low"].to_numpy(), table["mean"].to_numpy()]))
        high = np.nanmax(table["best"].to_numpy())
        pad = max(0.2, 0.15 * (high - low))
        ax.set_ylim(low - pad, high + pad)
        ax.set_xlabel(f"{factor} (drop probability)" if factor in RATE_FACTORS else factor)
        ax.set_ylabel(info.ylabel)
        ax.set_title(f"{factor}", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    for ax in axes[n:]:
        ax.set_visible(False)
    height = 3.8 * rows
    fig.suptitle(info.title, fontsize=10, y=1 - 0.1 / height, va="top")  # two lines
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.6 / height), ncol=2, fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.8 / height, top=1 - 1.25 / height, wspace=0.35, hspace=0.6)
    return save_png(fig, path, tight=False)
