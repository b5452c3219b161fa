"""Why a placement works or fails: variance shift, BN re-estimation and calibration, per cell.

The numbers come from stage-2 replicates, like every conclusion (each replicate is a
trained network of the cell's selected configuration, measured after its last epoch):

- `var_shift_max`: the largest variance shift over the network's BN layers
  (``max(running_var / real_var, real_var / running_var)``, mean over a layer's
  channels; 1 is none). Dropout before a BN layer makes it about 1/keep-rate.
- the accuracy gap: a cell's score minus that of the same cell without Dropout
  (matched on every other factor), with a Welch interval;
- the line through one point per configuration with BN and Dropout: accuracy gap
  against variance shift, fitted by least squares. Its slope's interval is a plain
  regression t interval over the points (n - 2 degrees of freedom); it ignores that
  cells sharing a reference share its noise, so it is a little narrow;
- `acc_gain_bn_reestimated`: val_acc_bn_reestimated - val_acc of the same network, so the
  noise of training cancels in the pairing;
- `ece`, `conf_wrong`: calibration of the validation predictions, per cell and per
  BatchNorm setting (the mean of that setting's cells).

A table without these columns (an experiment from before they were measured) gets
the rest of the analysis; `Mechanism.skipped` says what was left out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.stats as sps

from analysis import stats
from analysis.design import Design, cell_table, ordered_values, value_label
from analysis.results import Estimate, LineEvidence, Mechanism, MechanismCell
from analysis.text import SEARCH_ONLY
from study.vocabulary.factors import RATE_FACTORS

SHIFT = "var_shift_max"
GAIN = "acc_gain_bn_reestimated"
REESTIMATED = "val_acc_bn_reestimated"
CALIBRATION = ("ece", "conf_wrong")
# Factors that come with Dropout: the cell without Dropout has none of them (they are normalised away).
WITH_DROPOUT = ("dropout", "order", "dropout_kind", *RATE_FACTORS)
METHOD = (
    "stage-2 replicates; per cell the mean of each measure with a Student t 95% interval; accuracy gap to the "
    "same cell without Dropout with a Welch interval; the line of accuracy gap on variance shift by least squares "
    "over cells with BN and Dropout, slope with a t interval on n - 2 degrees of freedom"
)


def with_gain(trials: pd.DataFrame) -> pd.DataFrame:
    """The table with `acc_gain_bn_reestimated` (val_acc_bn_reestimated - val_acc, per run) where both exist,
    and a non-finite measure (a diverged network's) missing, as if not measured."""
    present = [c for c in (SHIFT, REESTIMATED, *CALIBRATION) if c in trials]
    trials = trials.assign(**{c: trials[c].where(np.isfinite(trials[c].astype(float))) for c in present})
    if REESTIMATED not in trials or "val_acc" not in trials:
        return trials
    return trials.assign(**{GAIN: trials[REESTIMATED] - trials["val_acc"]})


def measured(trials: pd.DataFrame, column: str) -> bool:
    return column in trials and bool(np.isfinite(trials[column].astype(float)).any())


def missing_measures(trials: pd.DataFrame) -> list[str]:
    """Why each measure the table lacks is skipped (older experiments have none of them)."""
    reasons = {
        SHIFT: "variance shift (no var_shift_max column with values: an experiment from before it was measured, or no BN)",
        REESTIMATED: "BN re-estimation (no val_acc_bn_reestimated column with values)",
        "ece": "calibration (no ece column with values)",
    }
    return [f"{what}: skipped" for column, what in reasons.items() if not measured(trials, column)]


def summarise_mechanism(design: Design, source: str) -> Mechanism:
    """Each cell's measures, the shift-loss line and calibration per BN setting (see the module docstring)."""
    if source == "search":
        return Mechanism([], None, {}, [f"the mechanism: skipped ({SEARCH_ONLY})"], METHOD)
    trials = with_gain(design.trials)
    skipped = missing_measures(trials)
    tables = {c: cell_table(trials, c) for c in (SHIFT, GAIN, *CALIBRATION) if measured(trials, c)}
    by_cell = {c: {r["cell"]: r for r in table.to_dict("records")} for c, table in tables.items()}
    scores = cell_table(trials, "score").to_dict("records")
    references = reference_cells(scores, design.cell_factors)
    score_of = {r["cell"]: r for r in scores}
    cells = []
    for row in scores:
        reference = references.get(row["cell"])
        gap = None
        if reference is not None:
            ref = score_of[reference]
            iv, _ = stats.linear_contrast([1.0, -1.0], [row["mean"], ref["mean"]], [row["se2"], ref["se2"]],
                                          [row["df"], ref["df"]])
            gap = Estimate(iv.estimate, iv.low, iv.high, int(row["n"]))
        measures = {c: _estimate(by_cell[c].get(row["cell"])) if c in by_cell else None for c in (SHIFT, GAIN, *CALIBRATION)}
        cells.append(MechanismCell(
            row["cell"], {f: _plain(row[f]) for f in design.cell_factors if f in row}, measures[SHIFT], gap, reference,
            measures[GAIN], measures["ece"], measures["conf_wrong"],
        ))
    # BN cells by their shift, smallest first, then the cells without BN (none to measure).
    cells.sort(key=lambda c: (c.var_shift is None, c.var_shift.mean if c.var_shift else 0.0))
    line = shift_line(cells)
    if line is None and SHIFT in tables:
        skipped.append("the line of accuracy gap on variance shift: skipped (fewer than 3 cells with BN, Dropout "
                       "and a cell without Dropout to compare with)")
    return Mechanism(cells, line, calibration_by_bn(trials, tables), skipped, METHOD)


def reference_cells(cells: list[dict], cell_factors) -> dict[str, str]:
    """For each cell with Dropout, the cell without Dropout that matches it on every factor that does not
    come with Dropout (its model, BN, augmentation, ...), where the study ran one."""
    if not cells or "dropout" not in cells[0]:
        return {}
    keys = [f for f in cell_factors if f not in WITH_DROPOUT and f in cells[0]]
    without = {tuple(r[k] for k in keys): r["cell"] for r in cells if r["dropout"] == "none"}
    return {r["cell"]: without[key] for r in cells if r["dropout"] != "none"
            and (key := tuple(r[k] for k in keys)) in without}


def shift_line(cells: list[MechanismCell], level: float = stats.LEVEL) -> LineEvidence | None:
    """Least-squares line of accuracy gap on variance shift over cells that have both, or None under 3 points;
    the slope's interval at `level`."""
    points = [(c.var_shift.mean, c.accuracy_gap.mean) for c in cells
              if c.var_shift is not None and c.accuracy_gap is not None
              and _finite(c.var_shift.mean) and _finite(c.accuracy_gap.mean)]
    if len(points) < 3:
        return None
    x, y = (np.array(v, dtype=float) for v in zip(*points))
    return fit_line(x, y, SHIFT, "accuracy gap to the cell without Dropout", level)


def fit_line(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str, level: float = stats.LEVEL) -> LineEvidence:
    """y = intercept + slope * x by least squares; the slope's t interval (at `level`) on n - 2 degrees of freedom."""
    n = len(x)
    sxx = float(((x - x.mean()) ** 2).sum())
    if sxx <= 0:
        return LineEvidence(x_name, y_name, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, n)
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * x.mean())
    residuals = y - intercept - slope * x
    sse, sst = float((residuals ** 2).sum()), float(((y - y.mean()) ** 2).sum())
    if n < 3:
        return LineEvidence(x_name, y_name, slope, math.nan, math.nan, math.nan, intercept, math.nan, n)
    se = math.sqrt(sse / (n - 2) / sxx)
    iv = stats.interval_from_se(slope, se, n - 2, level)
    p = float(2 * sps.t.sf(abs(slope) / se, n - 2)) if se > 0 else 0.0
    return LineEvidence(x_name, y_name, slope, iv.low, iv.high, p, intercept, 1 - sse / sst if sst > 0 else math.nan, n)


def line_band(line: LineEvidence, grid: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pointwise 95% band of the fitted mean at `grid`, for the line fitted on points (x, y)."""
    fitted = line.intercept + line.slope * grid
    n = len(x)
    sxx = float(((x - x.mean()) ** 2).sum())
    if n < 3 or sxx <= 0:
        return fitted, fitted
    residual_sd = math.sqrt(float(((y - line.intercept - line.slope * x) ** 2).sum()) / (n - 2))
    half = sps.t.ppf(0.975, n - 2) * residual_sd * np.sqrt(1 / n + (grid - x.mean()) ** 2 / sxx)
    return fitted - half, fitted + half


def calibration_by_bn(trials: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> dict[str, dict[str, Estimate]]:
    """Per BatchNorm setting, the mean over its cells of ece and conf_wrong, with a Satterthwaite interval."""
    out: dict[str, dict[str, Estimate]] = {}
    if "bn" not in trials:
        return out
    for bn in ordered_values("bn", trials["bn"]):
        entry = {}
        for column in CALIBRATION:
            cells = tables.get(column)
            if cells is None or not (cells["bn"] == bn).any():
                continue
            mine = (cells["bn"] == bn).to_numpy()
            iv, _ = stats.linear_contrast(mine / mine.sum(), cells["mean"], cells["se2"], cells["df"])
            entry[column] = Estimate(iv.estimate, iv.low, iv.high, int(cells.loc[mine, "n"].sum()))
        if entry:
            out[value_label(bn)] = entry
    return out


def _estimate(row: dict | None) -> Estimate | None:
    """A cell's mean with its t interval, from its `cell_table` row (None: the cell did not measure it)."""
    if row is None:
        return None
    iv = stats.interval_from_se(float(row["mean"]), math.sqrt(row["se2"]), float(row["df"])) if row["df"] >= 1 else None
    return Estimate(float(row["mean"]), iv.low if iv else math.nan, iv.high if iv else math.nan, int(row["n"]))


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
