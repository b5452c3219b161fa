"""The variance-shift mechanism: each cell's shift, and the accuracy it costs against its shift.

Left: every cell with BN, its variance shift with a 95% interval (1 is none).
Right: one point per configuration with BN and Dropout, accuracy gap to the same cell
without Dropout against variance shift, both with 95% intervals, and the least-squares
line with its pointwise 95% band.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure
import numpy as np

from analysis.mechanism import line_band
from analysis.plots.common import save_png
from analysis.results import LineEvidence, Mechanism

# Marker colour by what sits before the BN layers: the mechanism's groups.
GROUP_COLORS = {"no Dropout": "#7f7f7f", "fc": "#2ca02c", "bn_first": "#1f77b4", "dropout_first": "#d62728"}
KIND_MARKERS = {"bernoulli": "o", "uout": "s"}


@dataclass(frozen=True)
class VarianceShiftInfo:
    cells: list  # per BN cell: (label, group, kind, shift, low, high)
    points: list  # per configuration on the line: (label, group, kind, shift, low, high, gap pp, low, high)
    line: LineEvidence | None
    title: str
    no_interval: list = field(default_factory=list)  # labels drawn without an interval (one replicate)


def _group(factors: dict) -> str:
    dropout = factors.get("dropout", "none")
    if dropout == "none":
        return "no Dropout"
    if dropout == "fc":
        return "fc"
    return factors.get("order", "bn_first")


def variance_shift_info(mechanism: Mechanism | None) -> VarianceShiftInfo | None:
    """What to draw, or None when no cell measured a variance shift."""
    if mechanism is None:
        return None
    measured = [c for c in mechanism.cells if c.var_shift is not None and c.var_shift.mean is not None]
    if not measured:
        return None
    cells, points, no_interval = [], [], []
    for c in sorted(measured, key=lambda c: c.var_shift.mean):
        group, kind = _group(c.factors), c.factors.get("dropout_kind", "bernoulli")
        shift = (c.var_shift.mean, _number(c.var_shift.ci_low), _number(c.var_shift.ci_high))
        cells.append((c.cell, group, kind, *shift))
        gap = c.accuracy_gap
        if gap is not None and gap.mean is not None:
            points.append((c.cell, group, kind, *shift, 100 * gap.mean, 100 * _number(gap.ci_low),
                           100 * _number(gap.ci_high)))
        # A cell with one scored replicate has a mean but no interval: drawn without error bars, and said so.
        if any(np.isnan(v) for v in shift[1:]) or (gap is not None and (gap.ci_low is None or gap.ci_high is None)):
            no_interval.append(c.cell)
    return VarianceShiftInfo(cells, points, mechanism.shift_line,
                             "Variance shift of the BN layers, and the accuracy Dropout costs against it", no_interval)


def _number(value) -> float:
    """A bound that could not be computed (None in the conclusions) as NaN, which draws no error bar."""
    return float("nan") if value is None else float(value)


def _errors(center, low, high) -> np.ndarray:
    return np.nan_to_num(np.array([[center - low], [high - center]], dtype=float))


def plot_variance_shift(info: VarianceShiftInfo, path: Path) -> Path:
    fig = Figure(figsize=(13, 1.6 + 0.34 * max(len(info.cells), 6)))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.1]})
    for y, (label, group, kind, shift, low, high) in enumerate(info.cells):
        left.errorbar(shift, y, xerr=_errors(shift, low, high), fmt=KIND_MARKERS.get(kind, "o"),
                      color=GROUP_COLORS.get(group, "C4"), capsize=3)
    left.set_yticks(range(len(info.cells)), [c[0] for c in info.cells], fontsize=7)
    left.axvline(1.0, color="k", lw=0.8, ls=":")
    left.set_xlabel("variance shift, largest over BN layers (1 = none), 95% CI")
    left.set_title("Each cell with BN", fontsize=10)
    left.grid(alpha=0.3, axis="x")
    for label, group, kind, shift, low, high, gap, gap_low, gap_high in info.points:
        right.errorbar(shift, gap, xerr=_errors(shift, low, high), yerr=_errors(gap, gap_low, gap_high),
                       fmt=KIND_MARKERS.get(kind, "o"), color=GROUP_COLORS.get(group, "C4"), capsize=2, alpha=0.85)
    if info.line is not None and np.isfinite(info.line.slope):
        x = np.array([p[3] for p in info.points], dtype=float)
        y = np.array([p[6] for p in info.points], dtype=float) / 100
        grid = np.linspace(min(x.min(), 1.0), x.max(), 50)
        low, high = line_band(info.line, grid, x, y)
        right.plot(grid, 100 * (info.line.intercept + info.line.slope * grid), color="k", lw=1,
                   label=f"least squares, slope {100 * info.line.slope:+.2f} pp per unit")
        right.fill_between(grid, 100 * low, 100 * high, color="k", alpha=0.12, label="95% band of the line")
    right.axhline(0.0, color="k", lw=0.8, ls=":")
    right.set_xlabel("variance shift (1 = none)")
    right.set_ylabel("accuracy minus the cell without Dropout (pp)")
    right.set_title("Configurations with BN and Dropout", fontsize=10)
    for group, color in GROUP_COLORS.items():
        right.plot([], [], "o", color=color, label=f"Dropout: {group}" if group != "no Dropout" else group)
    for kind, marker in KIND_MARKERS.items():
        right.plot([], [], marker, color="k", mfc="none", label=kind)
    right.legend(fontsize=7, loc="best")
    right.grid(alpha=0.3)
    title = info.title
    if info.no_interval:
        title += f"\n(no interval, a single replicate: {', '.join(info.no_interval)})"
    fig.suptitle(title)
    return save_png(fig, path)
