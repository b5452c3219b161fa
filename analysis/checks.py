"""Warnings: what a reader should know before trusting the conclusions.

Each function returns a list of sentences (empty when all is well): trials or
replicates that were not scored, cells with too few replicates, best nuisance values
at the edge of their search range (the tuning playbook's boundary check),
near-optimal drop rates at the edge of the rates tried, cells that several
configurations stand for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.design import Design
from analysis.rates import NEAR_OPTIMAL
from analysis.results import Counts
from study.vocabulary.factors import LOG_SCALE_NUISANCE, RANGED_NUISANCE

MIN_TRIALS = 3
FAILED_FRACTION = 0.10
EDGE_FRACTION = 0.10  # of the range's width, in log space for log-scale ranges


def status_warnings(counts: Counts, budget: int, rows: str = "trials") -> list[str]:
    out = []
    total = counts.trials
    parts = []
    if counts.pruned:
        parts.append(f"{counts.pruned} pruned early by the scheduler")
    if counts.diverged:
        parts.append(f"{counts.diverged} diverged")
    if counts.error:
        parts.append(f"{counts.error} failed")
    if counts.short:
        parts.append(f"{counts.short} completed before the {budget}-epoch budget")
    if counts.unscored:
        parts.append(f"{counts.unscored} without a score")
    if parts:
        out.append(
            f"Of {total} {rows}, {', '.join(parts)}; only the {counts.analysed} that trained the full "
            f"{budget} epochs are scored."
        )
    if total and counts.error / total > FAILED_FRACTION:
        out.append(
            f"Many {rows} failed: {counts.error} of {total} ({counts.error / total:.0%}); "
            "check the error column of trials.csv (cv.csv for replicates) and the trial logs."
        )
    return out


def few_replicates(design: Design, unit: str, minimum: int = MIN_TRIALS) -> list[str]:
    """Cells with too few scored replicates for a trustworthy mean and variance."""
    small = design.cells[design.cells["n"] < minimum]
    if small.empty:
        return []
    listed = ", ".join(f"{c} (n={n})" for c, n in zip(small["cell"], small["n"]))
    out = [f"{len(small)} cell(s) have fewer than {minimum} scored {unit}, so their scores are uncertain: {listed}."]
    single = small[small["n"] < 2]
    if len(single):
        out.append(
            f"{len(single)} cell(s) have a single scored replicate and no variance estimate; they are ranked "
            "but left out of the tests: " + ", ".join(single["cell"]) + "."
        )
    return out


def missing_cells(trials: pd.DataFrame, design: Design, stage: str) -> list[str]:
    """Cells of the study that `design` (search or replicates) has no scored row for."""
    missing = sorted(set(trials["cell"]) - set(design.cells["cell"]))
    if not missing:
        return []
    why = ("no full-budget search trial (all pruned, diverged or failed)" if stage == "search"
           else "no scored replicate (not retrained, or every replicate diverged or failed)")
    return [f"{len(missing)} cell(s) have {why} and are missing from the ranking: " + ", ".join(missing) + "."]


def nuisance_edges(trials: pd.DataFrame, design: Design, search_ranges: dict | None) -> list[str]:
    """Best trial of a cell with a nuisance value within 10% of its range's edge."""
    out = []
    best = design.trials.set_index("trial_id").loc[design.cells["best_trial_id"]]
    for name in RANGED_NUISANCE:
        if name not in trials or trials[name].nunique() < 2:
            continue
        known = (search_ranges or {}).get(name)
        if known is not None:
            lo, hi, log = known
            where = "search range"
        else:
            values = trials[name].dropna()
            lo, hi = float(values.min()), float(values.max())
            log = name in LOG_SCALE_NUISANCE and lo > 0
            where = "range of values tried"
        if not hi > lo or (log and lo <= 0):
            continue
        f = np.log if log else (lambda x: x)
        position = (f(best[name].to_numpy(dtype=float)) - f(lo)) / (f(hi) - f(lo))
        scale = "log scale" if log else "linear scale"
        for edge, mask in (("lower", position <= EDGE_FRACTION), ("upper", position >= 1 - EDGE_FRACTION)):
            if mask.any():
                cells = list(design.cells["cell"][mask])
                out.append(
                    f"The best trial's {name} is within {EDGE_FRACTION:.0%} of the {edge} edge of its {where} "
                    f"[{lo:.3g}, {hi:.3g}] ({scale}) in {len(cells)} of {len(design.cells)} cell(s): "
                    f"{', '.join(cells[:6])}{' ...' if len(cells) > 6 else ''}; better values may lie outside the range."
                )
    return out


def rate_edges(rate_fits) -> list[str]:
    out = []
    for fit in rate_fits:
        if fit.at_edge:
            lo, hi = fit.range
            near_lo, near_hi = fit.near_optimal
            out.append(
                f"The rates of {fit.rate} within {100 * NEAR_OPTIMAL:g} pp of the best fit with bn={fit.bn} "
                f"({near_lo:.2f}-{near_hi:.2f}) "
                f"reach the edge of the rates tried [{lo:.2f}, {hi:.2f}]; better rates may lie outside them."
            )
    return out


def several_configs(replicates: pd.DataFrame | None) -> list[str]:
    if replicates is None or not (replicates["configs_in_cell"] > 1).any():
        return []
    return [
        "Some cells had several retrained configurations; each is represented by its best one, "
        "which flatters cells with more configurations."
    ]


def effect_warnings(effects: dict) -> list[str]:
    out = []
    for factor, effect in effects.items():
        if not effect.test.matched and effect.test.p_value is not None and "trial-level" not in effect.test.method:
            out.append(
                f"The values of {factor} were never all run with the same other factors, so its effect is "
                "estimated unmatched and may be confounded with them."
            )
    return out


def single_cell(design: Design) -> list[str]:
    if len(design.cells) > 1:
        return []
    return [
        "Only one cell was run: the ranking has one entry and there is no difference between cells to test; "
        f"the factor(s) {', '.join(design.factors)} vary inside it."
    ]
