"""The bn x dropout table of cell scores as a heatmap."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
import numpy as np

from analysis.design import Design, ordered_values
from analysis.plots.common import save_png
from analysis.summary import metric_words


@dataclass(frozen=True)
class HeatmapInfo:
    panels: dict  # panel title -> (rows, columns, values % array, n array)
    title: str
    colorbar: str


def heatmap_info(design: Design, tested: bool = True) -> HeatmapInfo | None:
    """Cell means (replicates), or each cell's best trial (`tested=False`: search only)."""
    cells = design.cells if tested else design.cells.assign(mean=design.cells["best"])
    if "bn" not in cells or "dropout" not in cells or cells["bn"].isna().any() or cells["dropout"].isna().any():
        return None
    if cells["bn"].nunique() < 2 and cells["dropout"].nunique() < 2:
        return None
    split = "order" if "order" in design.cell_factors else None
    panels = {}
    keys = ordered_values("order", cells["order"]) if split else [None]
    for key in keys:
        sub = cells if key is None else cells[cells["order"] == key]
        rows = ordered_values("bn", sub["bn"])
        cols = ordered_values("dropout", sub["dropout"])
        values = np.full((len(rows), len(cols)), np.nan)
        counts = np.zeros((len(rows), len(cols)), dtype=int)
        for i, bn in enumerate(rows):
            for j, d in enumerate(cols):
                part = sub[(sub["bn"] == bn) & (sub["dropout"] == d)]
                if len(part):
                    values[i, j] = 100 * part["mean"].mean()
                    counts[i, j] = int(part["n"].sum())
        panels["all cells" if key is None else f"order={key}"] = (rows, cols, values, counts)
    others = [f for f in design.cell_factors if f not in ("bn", "dropout", "order")]
    note = f" (averaged over {', '.join(others)})" if others else ""
    if tested:
        return HeatmapInfo(panels, f"Cell scores: bn x dropout{note}", f"mean {metric_words(design.metric)} (%)")
    return HeatmapInfo(panels, f"Best search trial per cell: bn x dropout{note} (preliminary; n = full-budget trials)",
                       f"best trial's {metric_words(design.metric)} (%)")


def plot_heatmap(info: HeatmapInfo, path: Path) -> Path:
    n = len(info.panels)
    fig = Figure(figsize=(5.2 * n + 1, 4.2))
    axes = fig.subplots(1, n, squeeze=False)[0]
    finite = np.concatenate([v[2][np.isfinite(v[2])] for v in info.panels.values()])
    vmin, vmax = (finite.min(), finite.max()) if len(finite) else (0, 100)
    image = None
    for ax, (title, (rows, cols, values, counts)) in zip(axes, info.panels.items()):
        image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(cols)), cols)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("dropout placement")
        ax.set_ylabel("bn placement")
        ax.set_title(title, fontsize=10)
        mid = (vmin + vmax) / 2
        for i in range(len(rows)):
            for j in range(len(cols)):
                if np.isfinite(values[i, j]):
                    ax.text(j, i, f"{values[i, j]:.2f}%\nn={counts[i, j]}", ha="center", va="center", fontsize=8,
                            color="white" if values[i, j] < mid else "black")
    fig.subplots_adjust(wspace=0.35)
    if image is not None:
        fig.colorbar(image, ax=list(axes), label=info.colorbar)
    fig.suptitle(info.title)
    return save_png(fig, path)
