"""Learning curves: each cell's best search trial, and the post's experiments side by side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd

from analysis.design import Design
from analysis.plots.common import MAX_CURVE_CELLS, save_png


@dataclass(frozen=True)
class CurvesInfo:
    curves: dict  # panel label -> DataFrame(epoch, train_loss, val_loss, train_acc, val_acc)
    title: str
    left_out: int = 0


def learning_curves_info(design: Design, epochs: pd.DataFrame | None, max_cells: int = MAX_CURVE_CELLS) -> CurvesInfo | None:
    if epochs is None or epochs.empty:
        return None
    curves = {}
    cells = design.cells.sort_values("mean", ascending=False)
    by_trial = _curves_of(epochs, cells["best_trial_id"])
    for rec in cells.itertuples():
        if len(curves) >= max_cells:
            break
        frame = by_trial.get(rec.best_trial_id)
        if frame is not None and len(frame):
            curves[f"{rec.cell}\n(trial {rec.best_trial_id})"] = frame.sort_values("epoch")
    if not curves:
        return None
    left = max(0, len(cells) - max_cells)
    note = f" (top {max_cells} of {len(cells)} cells)" if left else ""
    return CurvesInfo(curves, f"Learning curves of each cell's best trial{note}: the shaded area is the overfitting gap", left)


def blog_curves_info(design: Design, epochs: pd.DataFrame | None) -> CurvesInfo | None:
    """The post's eight experiments: best trial of each, in experiment order."""
    if epochs is None or epochs.empty or "experiment" not in design.trials:
        return None
    df = design.trials.dropna(subset=["experiment"])
    if df.empty:
        return None
    by_trial = _curves_of(epochs, df["trial_id"])
    curves = {}
    for exp, group in df.groupby("experiment"):
        best = group.loc[group["score"].idxmax()]
        frame = by_trial.get(best["trial_id"])
        if frame is not None and len(frame):
            curves[f"experiment {int(exp)}: {_describe(best)}"] = frame.sort_values("epoch")
    if not curves:
        return None
    return CurvesInfo(curves, "The post's experiments side by side (best trial of each): accuracy and loss per epoch")


def _curves_of(epochs: pd.DataFrame, trial_ids) -> dict:
    """trial_id -> its rows of epochs.csv, for these trials only (grouping all of a 100,000-trial table takes
    seconds)."""
    return dict(tuple(epochs[epochs["trial_id"].isin(set(trial_ids))].groupby("trial_id", sort=False)))


def _describe(trial: pd.Series) -> str:
    """'medium, bn=pre_act, dropout=all, augment' from a trial's factor values."""
    parts = [str(trial["model"])] if "model" in trial else []
    parts += [f"{f}={trial[f]}" for f in ("bn", "dropout") if f in trial]
    if "augment" in trial and bool(trial["augment"]):
        parts.append("augment")
    return ", ".join(parts)


def plot_learning_curves(info: CurvesInfo, path: Path) -> Path:
    """Two panels per cell: loss (train and validation, gap shaded) and accuracy."""
    n = len(info.curves)
    per_row = 2 if n > 1 else 1
    rows = int(np.ceil(n / per_row))
    fig = Figure(figsize=(5.2 * 2 * per_row, 3.1 * rows + 0.6))
    axes = fig.subplots(rows, 2 * per_row, squeeze=False)
    for k, (label, frame) in enumerate(info.curves.items()):
        r, c = divmod(k, per_row)
        ax_loss, ax_acc = axes[r, 2 * c], axes[r, 2 * c + 1]
        e = frame["epoch"].to_numpy()
        # The gap is measured against the clean, eval-mode training loss where the table has it.
        clean = "train_eval_loss" in frame and frame["train_eval_loss"].notna().any()
        base = frame["train_eval_loss"] if clean else frame["train_loss"]
        ax_loss.plot(e, frame["train_loss"], ":", color="C0", label="train loss (train mode)")
        if clean:
            ax_loss.plot(e, base, "-", color="C0", label="train loss (eval mode, clean)")
        ax_loss.plot(e, frame["val_loss"], "--", color="C1", label="validation loss")
        ax_loss.fill_between(e, base, frame["val_loss"], color="C1", alpha=0.15, label="gap")
        ax_loss.set_xlabel("epoch")
        ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_loss.set_ylabel("cross-entropy loss (nats)")
        ax_loss.set_title(label, fontsize=8)
        ax_loss.grid(alpha=0.3)
        ax_acc.plot(e, 100 * frame["train_acc"], "-", color="C0", label="train accuracy")
        ax_acc.plot(e, 100 * frame["val_acc"], "--", color="C1", label="validation accuracy")
        ax_acc.set_xlabel("epoch")
        ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_acc.set_ylabel("accuracy (%)")
        ax_acc.set_title(label, fontsize=8)
        ax_acc.grid(alpha=0.3)
        if k == 0:  # one legend explains every panel; loss falls and accuracy rises
            ax_loss.legend(fontsize=7, loc="upper right")
            ax_acc.legend(fontsize=7, loc="lower right")
    for k in range(n, rows * per_row):
        r, c = divmod(k, per_row)
        axes[r, 2 * c].set_visible(False)
        axes[r, 2 * c + 1].set_visible(False)
    fig.suptitle(info.title, fontsize=11)
    top = 1 - 0.5 / (3.1 * rows + 0.6)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.6 / (3.1 * rows + 0.6), top=top - 0.04, wspace=0.3, hspace=0.55)
    return save_png(fig, path, tight=False)
