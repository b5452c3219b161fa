"""ASHA's early judgement: at each rung, how well the scores there rank the trials' final scores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
import numpy as np

from analysis.fidelity import WEAK_TAU
from analysis.plots.common import save_png
from analysis.results import AshaFidelity


@dataclass(frozen=True)
class FidelityInfo:
    epochs: np.ndarray  # each rung's epoch
    tau: np.ndarray
    low: np.ndarray
    high: np.ndarray
    labels: list  # per rung: "n trials; best stopped k of m cells"
    title: str


def fidelity_info(fidelity: AshaFidelity | None) -> FidelityInfo | None:
    """What to draw, or None when no rung was measured."""
    if fidelity is None or not fidelity.rungs:
        return None
    rungs = fidelity.rungs
    as_array = lambda name: np.array([getattr(r, name) for r in rungs], dtype=float)  # noqa: E731
    labels = [f"{r.n_trials} trials; best stopped in {r.best_stopped}/{r.cells_judged} cells" for r in rungs]
    return FidelityInfo(as_array("epoch"), as_array("tau"), as_array("ci_low"), as_array("ci_high"), labels,
                        "ASHA's rungs: rank agreement of early and final scores (Kendall tau, within cells)")


def plot_fidelity(info: FidelityInfo, path: Path) -> Path:
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    err = np.nan_to_num(np.vstack([info.tau - info.low, info.high - info.tau]))
    ax.errorbar(info.epochs, info.tau, yerr=err, fmt="o-", color="C0", capsize=4, label="Kendall tau, 95% CI")
    for x, y, label in zip(info.epochs, info.tau, info.labels):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, -12), fontsize=7)
    ax.axhline(WEAK_TAU, color="C3", ls="--", lw=1, label=f"weak below {WEAK_TAU:g}")
    ax.axhline(0.0, color="k", ls=":", lw=0.8)
    ax.set_xticks(info.epochs)
    ax.set_xlabel("rung (epoch at which ASHA compares trials)")
    ax.set_ylabel("Kendall tau: val_acc at the rung vs final best_val_acc")
    ax.set_ylim(-1.05, 1.05)
    ax.set_title(info.title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return save_png(fig, path)
