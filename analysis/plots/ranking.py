"""The ranking of cells as a forest plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
import numpy as np

from analysis.plots.common import save_png
from analysis.ranking import SEARCH
from analysis.summary import metric_words


@dataclass(frozen=True)
class RankingInfo:
    labels: list
    score: np.ndarray  # %
    low: np.ndarray
    high: np.ndarray
    n: list
    xlabel: str
    title: str


def ranking_info(ranking, max_cells: int = 30) -> RankingInfo:
    t = ranking.table.head(max_cells)
    search = ranking.source == SEARCH
    unit = "trials" if search else ranking.unit
    title = ("Ranking of cells by their best search trial (a selected maximum; preliminary, no intervals)" if search
             else f"Ranking of cells: mean over {ranking.unit} with 95% CI, best at the top")
    return RankingInfo(
        [f"{c} (n={n} {unit})" for c, n in zip(t["cell"], t["n"])],
        100 * t["score"].to_numpy(dtype=float), 100 * t["ci_low"].to_numpy(dtype=float),
        100 * t["ci_high"].to_numpy(dtype=float), list(t["n"]),
        f"{metric_words(ranking.metric)} (%)", title,
    )


def plot_ranking(info: RankingInfo, path: Path) -> Path:
    n = len(info.labels)
    fig = Figure(figsize=(8, 1.0 + 0.32 * n))
    ax = fig.subplots()
    y = np.arange(n)[::-1]
    err = np.vstack([info.score - info.low, info.high - info.score])
    label = "best trial" if np.isnan(info.low).all() else "mean, 95% CI"
    ax.errorbar(info.score, y, xerr=np.nan_to_num(err), fmt="o", color="C0", ecolor="C0", capsize=3, label=label)
    ax.set_yticks(y, info.labels, fontsize=7)
    ax.set_xlabel(info.xlabel)
    ax.set_ylabel("cell")
    ax.set_title(info.title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")  # best at the top right, worst at the bottom left
    ax.grid(alpha=0.3, axis="x")
    return save_png(fig, path)
