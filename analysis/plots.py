"""Plots, Optuna-style: a pure `*_info` function computes what to draw, a thin `plot_*`
function draws it to a PNG file.

Drawing uses `matplotlib.figure.Figure` directly (the Agg renderer, no pyplot), so
no global state changes and no display is needed. Accuracies are drawn in percent.
`write_plots` draws every plot the data allow and says why it skipped the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from analysis import stats
from analysis.design import Design, ordered_values, value_label
from analysis.effects import factor_rows
from study.vocabulary.factors import RATE_FACTORS
from analysis.ranking import SEARCH
from analysis.summary import metric_words

BN_COLORS = {"none": "#7f7f7f", "pre_act": "#1f77b4", "post_act": "#d62728"}
DPI = 110
MAX_CURVE_CELLS = 8


def _color(bn: str, i: int) -> str:
    return BN_COLORS.get(bn, f"C{i}")


def _save(fig: Figure, path: Path, tight: bool = True) -> Path:
    """Write a PNG. Large grids lay themselves out (`tight=False`): a tight bounding box
    renders the figure twice, which is slow for many panels."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight" if tight else None)
    return path


# --- interaction: score against drop rate, one line per bn --------------------------------


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
            color = _color(c.bn, i)
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
    return _save(fig, path)


# --- interaction: score against dropout placement, one line per bn -----------------------


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
        color = _color(bn, i)
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
    return _save(fig, path)


# --- heatmap of cell scores ---------------------------------------------------------------


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
    return _save(fig, path)


# --- isolation plots: best trial per value of each factor --------------------------------


@dataclass(frozen=True)
class IsolationInfo:
    factors: dict  # factor -> DataFrame(label, best, mean, ci_low, ci_high, n, best_trial_id) in %
    ylabel: str
    title: str


def isolation_info(design: Design) -> IsolationInfo:
    """Per factor value: the best search trial (nuisance tuned away) and the mean of the trials."""
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
        out[factor] = pd.DataFrame(rows)
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
    return _save(fig, path, tight=False)


# --- learning curves of each cell's best trial -------------------------------------------


@dataclass(frozen=True)
class CurvesInfo:
    curves: dict  # panel label -> DataFrame(epoch, train_loss, val_loss, train_acc, val_acc)
    title: str
    left_out: int = 0


def learning_curves_info(design: Design, epochs: pd.DataFrame | None, max_cells: int = MAX_CURVE_CELLS) -> CurvesInfo | None:
    if epochs is None or epochs.empty:
        return None
    curves = {}
    by_trial = dict(tuple(epochs.groupby("trial_id", sort=False)))
    cells = design.cells.sort_values("mean", ascending=False)
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
    by_trial = dict(tuple(epochs.groupby("trial_id", sort=False)))
    curves = {}
    for exp, group in df.groupby("experiment"):
        best = group.loc[group["score"].idxmax()]
        frame = by_trial.get(best["trial_id"])
        if frame is not None and len(frame):
            curves[f"experiment {int(exp)}: {_describe(best)}"] = frame.sort_values("epoch")
    if not curves:
        return None
    return CurvesInfo(curves, "The post's experiments side by side (best trial of each): accuracy and loss per epoch")


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
    return _save(fig, path, tight=False)


# --- blog_ablation: the eight experiments' scores -----------------------------------------


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
    return _save(fig, path)


# --- diverged share: how much of the learning-rate range each cell tolerates -------------


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
    shares = (
        pd.DataFrame({"cell": trials["cell"], "bn": bn, "diverged": diverged})
        .groupby(["cell", "bn"], sort=False)["diverged"].agg(trials="size", diverged="sum").reset_index()
    )
    shares["share"] = 100 * shares["diverged"] / shares["trials"]
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
    axes[0].bar(x, t["share"], color=[_color(b, i) for i, b in enumerate(t["bn"])])
    axes[0].set_xticks(x, t["cell"], rotation=60, ha="right", fontsize=7)
    axes[0].set_ylabel("diverged search trials (%)")
    axes[0].set_title("Share of each cell's trials that diverged", fontsize=10)
    axes[0].grid(alpha=0.3, axis="y")
    if info.points is not None:
        ax = axes[1]
        for i, bn in enumerate(ordered_values("bn", info.points["bn"])):
            sub = info.points[info.points["bn"] == bn]
            ok_rows, bad = sub[~sub["diverged"]], sub[sub["diverged"]]
            ax.scatter(ok_rows["lr"], ok_rows["score"], s=14, color=_color(bn, i), alpha=0.7, label=f"bn={bn}")
            ax.scatter(bad["lr"], np.full(len(bad), 10.0), s=30, marker="x", color=_color(bn, i))
        ax.set_xscale("log")
        ax.set_xlabel("lr (log scale)")
        ax.set_ylabel("best validation accuracy (%); x: diverged")
        ax.set_title("Outcome of each search trial by learning rate", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(info.title)
    return _save(fig, path)


# --- ranking forest plot ------------------------------------------------------------------


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
    return _save(fig, path)


# --- hyperparameter importance ------------------------------------------------------------


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
    return _save(fig, path)


# --- all of them ------------------------------------------------------------------------


@dataclass
class PlotSet:
    files: dict = field(default_factory=dict)  # name -> Path
    skipped: dict = field(default_factory=dict)  # name -> reason


PLOT_FILES = {
    "interaction": "interaction.png",
    "interaction_placement": "interaction_placement.png",
    "heatmap": "heatmap.png",
    "diverged": "diverged.png",
    "isolation": "isolation.png",
    "learning_curves": "learning_curves.png",
    "blog_experiments": "blog_experiments.png",
    "blog_curves": "blog_curves.png",
    "ranking": "ranking.png",
    "importance": "importance.png",
}


def write_plots(analysis, out_dir: Path) -> PlotSet:
    """Draw every plot the data allow into out_dir."""
    out_dir = Path(out_dir)
    plots = PlotSet()
    design, search = analysis.design, analysis.search
    epochs = analysis.tables.epochs

    def draw(name, info, fn, reason):
        if info is None:
            plots.skipped[name] = reason
        else:
            plots.files[name] = fn(info, out_dir / PLOT_FILES[name])

    tested = analysis.source != SEARCH
    rate_info = rate_interaction_info(analysis.rate_fits, design.metric)
    placement = placement_interaction_info(design, tested)
    if rate_info is not None:
        draw("interaction", rate_info, plot_rate_interaction, "")
        draw("interaction_placement", placement, plot_placement_interaction, "bn and dropout placement did not both vary")
    else:
        # No rate varied: the interaction plot is score against placement.
        if placement is not None:
            plots.files["interaction"] = plot_placement_interaction(placement, out_dir / PLOT_FILES["interaction"])
        else:
            plots.skipped["interaction"] = "neither a drop rate nor both bn and dropout placement varied"
    draw("heatmap", heatmap_info(design, tested), plot_heatmap, "bn and dropout are not both cell factors")
    draw("diverged", diverged_info(analysis.tables.trials), plot_diverged, "no search trial diverged")
    draw("isolation", isolation_info(search), plot_isolation, "")
    draw("learning_curves", learning_curves_info(search, epochs), plot_learning_curves, "no epochs.csv with the best trials' epochs")
    if "experiment" in design.trials:
        draw("blog_experiments", experiments_info(design, analysis.ranking.unit if tested else "search trials (nuisance sensitivity)"),
             plot_experiments, "no experiment numbers")
        draw("blog_curves", blog_curves_info(search, epochs), plot_learning_curves, "no epochs.csv for the experiments")
    draw("ranking", ranking_info(analysis.ranking), plot_ranking, "")
    draw("importance", importance_info(analysis.importance), plot_importance, "hyperparameter importance could not be computed (see warnings)")
    return plots
