"""Score against Dropout placement, one line per BatchNorm setting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
import numpy as np
import pandas as pd

from analysis import stats
from analysis.design import Design, ordered_values
from analysis.plots.common import bn_color, save_png
from analysis.summary import metric_words


@dataclass(frozen=True)
class PlacementInteractionInfo:
    levels: list  # dropout placements, x axis
    series: dict  # bn -> (means, lows, highs) arrays over levels, in %
    counts: dict  # bn -> cells per level
    ylabel: str
    title: str


def placement_interaction_info(design: Design, tested: bool = True) -> PlacementInteractionInfo | None:
    """Cell means with intervals (replicates), or each cell's best trial without (`tested=False`: search only)."""
    if not {"bn", "dropout"} <= set(design.cell_factors):
        return None
    cells = design.cells if tested else design.cells.assign(mean=design.cells["best"], df=0)
    levels = ordered_values("dropout", cells["dropout"])
    series, counts = {}, {}
    for bn in ordered_values("bn", cells["bn"]):
        means, lows, highs, ns = [], [], [], []
        for level in levels:
            sub = cells[(cells["bn"] == bn) & (cells["dropout"] == level)]
            m, lo, hi = _mean_of_cells(sub)
            means.append(m), lows.append(lo), highs.append(hi), ns.append(len(sub))
        series[bn] = tuple(100 * np.array(a, dtype=float) for a in (means, lows, highs))
        counts[bn] = ns
    if tested:
        ylabel, title = f"mean {metric_words(design.metric)} (%)", "Dropout placement x BatchNorm: cell means with 95% CI (averaged over other factors)"
    else:
        ylabel = f"best trial's {metric_words(design.metric)} (%)"
        title = "Dropout placement x BatchNorm: each cell's best search trial (preliminary, no intervals)"
    return PlacementInteractionInfo(levels, series, counts, ylabel, title)


def _mean_of_cells(sub: pd.DataFrame) -> tuple[float, float, float]:
    if sub.empty:
        return np.nan, np.nan, np.nan
    w = np.full(len(sub), 1.0 / len(sub))
    if (sub["df"] >= 1).all():
        iv, _ = stats.linear_contrast(w, sub["mean"], sub["se2"], sub["df"])
        return iv.estimate, *stats.accuracy_bounds(iv.low, iv.high)
    return float(sub["mean"].mean()), np.nan, np.nan


def plot_placement_interaction(info: PlacementInteractionInfo, path: Path) -> Path:
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.subplots()
    x = np.arange(len(info.levels))
    for i, (bn, (m, lo, hi)) in enumerate(info.series.items()):
        color = bn_color(bn, i)
        offset = (i - (len(info.series) - 1) / 2) * 0.06
        ax.plot(x + offset, m, "-o", color=color, label=f"bn={bn}")
        ax.fill_between(x + offset, lo, hi, color=color, alpha=0.15)
        ax.errorbar(x + offset, m, yerr=[m - lo, hi - m], fmt="none", color=color, capsize=3)
    ax.set_xticks(x, [f"dropout={v}" for v in info.levels])
    ax.set_xlabel("Dropout placement (none, classifier only, conv blocks only, both)")
    ax.set_ylabel(info.ylabel)
    ax.set_title(info.title, fontsize=10)
    ax.legend(title="BatchNorm", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    return save_png(fig, path)
