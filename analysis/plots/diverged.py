"""Diverged search trials: the share per cell, and each trial by learning rate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
import numpy as np
import pandas as pd

from analysis.design import diverged_counts, ordered_values
from analysis.plots.common import bn_color, save_png


@dataclass(frozen=True)
class DivergedInfo:
    shares: pd.DataFrame  # cell, bn, trials, diverged, share (%)
    points: pd.DataFrame  # lr, bn, diverged (bool), score (%; NaN when diverged)
    title: str


def diverged_info(trials: pd.DataFrame) -> DivergedInfo | None:
    """Per cell the share of search trials that diverged, and each trial's lr against its outcome."""
    if not (trials["status"] == "diverged").any():
        return None
    bn = trials["bn"] if "bn" in trials else pd.Series("none", index=trials.index)
    diverged = trials["status"] == "diverged"
    shares = diverged_counts(trials.assign(bn=bn), ["cell", "bn"])
    shares["share"] = 100 * shares["share"]
    order = {b: i for i, b in enumerate(ordered_values("bn", shares["bn"]))}
    shares = shares.sort_values(["bn", "cell"], key=lambda c: c.map(order) if c.name == "bn" else c, ignore_index=True)
    points = None
    if "lr" in trials:
        score = trials["best_val_acc"].where(~diverged)
        points = pd.DataFrame({"lr": trials["lr"], "bn": bn, "diverged": diverged, "score": 100 * score})
    return DivergedInfo(shares, points, "Diverged search trials: share per cell, and where in the learning-rate range")


def plot_diverged(info: DivergedInfo, path: Path) -> Path:
    panels = 2 if info.points is not None else 1
    fig = Figure(figsize=(6.2 * panels, 4.4))
    axes = fig.subplots(1, panels, squeeze=False)[0]
    t = info.shares
    x = np.arange(len(t))
    axes[0].bar(x, t["share"], color=[bn_color(b, i) for i, b in enumerate(t["bn"])])
    axes[0].set_xticks(x, t["cell"], rotation=60, ha="right", fontsize=7)
    axes[0].set_ylabel("diverged search trials (%)")
    axes[0].set_title("Share of each cell's trials that diverged", fontsize=10)
    axes[0].grid(alpha=0.3, axis="y")
    if info.points is not None:
        ax = axes[1]
        for i, bn in enumerate(ordered_values("bn", info.points["bn"])):
            sub = info.points[info.points["bn"] == bn]
            ok_rows, bad = sub[~sub["diverged"]], sub[sub["diverged"]]
            ax.scatter(ok_rows["lr"], ok_rows["score"], s=14, color=bn_color(bn, i), alpha=0.7, label=f"bn={bn}")
            ax.scatter(bad["lr"], np.full(len(bad), 10.0), s=30, marker="x", color=bn_color(bn, i))
        ax.set_xscale("log")
        ax.set_xlabel("lr (log scale)")
        ax.set_ylabel("best validation accuracy (%); x: diverged")
        ax.set_title("Outcome of each search trial by learning rate", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(info.title)
    return save_png(fig, path)
