"""Hyperparameter importance (PED-ANOVA) as bars."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Patch
import numpy as np

from analysis.plots.common import save_png


@dataclass(frozen=True)
class ImportanceInfo:
    names: list
    values: list
    kinds: list
    title: str


def importance_info(importance) -> ImportanceInfo | None:
    if importance is None or not importance.values:
        return None
    names = list(importance.values)
    return ImportanceInfo(
        names, [importance.values[k] for k in names], [importance.kinds.get(k, "") for k in names],
        f"Hyperparameter importance (PED-ANOVA, {importance.n_trials} full-budget trials)",
    )


def plot_importance(info: ImportanceInfo, path: Path) -> Path:
    fig = Figure(figsize=(7, 1.2 + 0.4 * len(info.names)))
    ax = fig.subplots()
    y = np.arange(len(info.names))[::-1]
    colors = ["#1f77b4" if k == "scientific" else "#ff7f0e" for k in info.kinds]
    ax.barh(y, info.values, color=colors)
    ax.set_yticks(y, info.names)
    ax.set_xlabel("importance (fraction of total, PED-ANOVA)")
    ax.set_ylabel("parameter")
    ax.set_title(info.title, fontsize=10)
    ax.legend(handles=[Patch(color="#1f77b4", label="scientific factor"), Patch(color="#ff7f0e", label="nuisance")],
              fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    return save_png(fig, path)
