"""Score against drop rate, one line per BatchNorm setting (the fitted curves of `analysis.rates`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
import numpy as np

from analysis.plots.common import bn_color, save_png
from analysis.ranking import SEARCH
from analysis.summary import metric_words


@dataclass(frozen=True)
class RateCurve:
    bn: str
    grid: np.ndarray
    curve: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    points_x: np.ndarray
    points_y: np.ndarray
    best: float
    best_low: float
    best_high: float
    quadratic: bool


@dataclass(frozen=True)
class RateInteractionInfo:
    rates: dict  # rate column -> list[RateCurve]
    ylabel: str
    title: str


def rate_interaction_info(rate_fits, metric: str) -> RateInteractionInfo | None:
    if not rate_fits:
        return None
    rates: dict = {}
    for fit in rate_fits:
        rates.setdefault(fit.rate, []).append(
            RateCurve(
                fit.bn, fit.grid, 100 * fit.curve, 100 * fit.band_low, 100 * fit.band_high,
                fit.points["rate"].to_numpy(), 100 * fit.points["score"].to_numpy(),
                fit.best, fit.ci_low, fit.ci_high, fit.method.startswith("quadratic"),
            )
        )
    preliminary = " (search trials: preliminary)" if any(fit.source == SEARCH for fit in rate_fits) else ""
    return RateInteractionInfo(
        rates,
        f"mean {metric_words(metric)} (%)",
        f"Dropout rate x BatchNorm: fitted score with 95% bootstrap band{preliminary}",
    )


def plot_rate_interaction(info: RateInteractionInfo, path: Path) -> Path:
    n = len(info.rates)
    fig = Figure(figsize=(6.5 * n, 4.6))
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (rate, curves) in zip(axes, info.rates.items()):
        for i, c in enumerate(curves):
            color = bn_color(c.bn, i)
            ax.scatter(c.points_x, c.points_y, s=10, alpha=0.35, color=color)
            style = "-" if c.quadratic else "-o"
            ax.plot(c.grid, c.curve, style, color=color, label=f"bn={c.bn}: best {c.best:.2f} [{c.best_low:.2f}, {c.best_high:.2f}]")
            ax.fill_between(c.grid, c.band_low, c.band_high, color=color, alpha=0.18)
            ax.axvline(c.best, color=color, linestyle=":", linewidth=1)
        ax.set_xlabel(f"{rate} (drop probability)")
        ax.set_ylabel(info.ylabel)
        ax.set_title(f"{rate}: score against drop rate, per BatchNorm setting", fontsize=10)
        ax.legend(fontsize=8, title="line: fit; band: 95% CI; dots: trials", title_fontsize=8, loc="lower center")
        ax.grid(alpha=0.3)
    fig.suptitle(info.title)
    return save_png(fig, path)
