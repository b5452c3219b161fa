"""The source post's eight experiments: each one's score."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
import numpy as np
import pandas as pd

from analysis import stats
from analysis.design import Design
from analysis.plots.common import save_png
from analysis.summary import metric_words


@dataclass(frozen=True)
class ExperimentsInfo:
    table: pd.DataFrame  # experiment, cell, mean, ci_low, ci_high, best, n (in %)
    ylabel: str
    title: str


def experiments_info(design: Design, unit: str = "trials") -> ExperimentsInfo | None:
    if "experiment" not in design.trials:
        return None
    df = design.trials.dropna(subset=["experiment"])
    if df.empty:
        return None
    rows = []
    for exp, group in df.groupby("experiment"):
        iv = stats.t_interval(group["score"])
        low, high = stats.accuracy_bounds(iv.low, iv.high)
        rows.append({"experiment": int(exp), "cell": group["cell"].iloc[0], "mean": 100 * iv.estimate,
                     "ci_low": 100 * low, "ci_high": 100 * high, "best": 100 * group["score"].max(), "n": len(group)})
    return ExperimentsInfo(pd.DataFrame(rows), f"{metric_words(design.metric)} (%)",
                           f"The post's eight experiments: mean of {unit} (95% CI) and best of them")


def plot_experiments(info: ExperimentsInfo, path: Path) -> Path:
    t = info.table
    fig = Figure(figsize=(9, 4.4))
    ax = fig.subplots()
    x = np.arange(len(t))
    ax.bar(x, t["best"], color="#c7e9c0", label="best trial")
    ax.errorbar(x, t["mean"], yerr=[t["mean"] - t["ci_low"], t["ci_high"] - t["mean"]], fmt="o", color="black",
                capsize=3, label="mean, 95% CI")
    ax.set_xticks(x, [f"exp {e}" for e in t["experiment"]])
    low = np.nanmin(np.concatenate([t["ci_low"].to_numpy(), t["mean"].to_numpy()]))
    high = np.nanmax(t["best"].to_numpy())
    pad = max(0.2, 0.15 * (high - low))
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("experiment of the source post (1 small, 2 medium, 3 +augment, 4 +BN, 5 +Dropout, 6 BN+Dropout, 7 all three, 8 large + all three)", fontsize=8)
    ax.set_ylabel(info.ylabel)
    ax.set_title(info.title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3, axis="y")
    return save_png(fig, path)
