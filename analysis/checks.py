"""Warnings: what a reader should know before trusting the conclusions.

Each function returns a list of sentences (empty when all is well): trials that
were not compared, cells with too few trials, best nuisance values at the edge of
their search range (the tuning playbook's boundary check), diverged trials, a best
drop rate at the edge of the rates tried, cells missing from cross-validation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.design import Design

MIN_TRIALS = 3
FAILED_FRACTION = 0.10
EDGE_FRACTION = 0.10  # of the range's width, in log space for log-scale ranges
CHANCE = 0.2  # FashionMNIST has 10 classes; a trial below 20% accuracy diverged
NUMERIC_NUISANCE = ("lr", "weight_decay", "momentum")
LOG_SCALE = ("lr", "weight_decay")


def status_warnings(counts: dict, budget: int) -> list[str]:
    out = []
    total = counts["trials"]
    if counts["pruned"] or counts["error"] or counts["short"] or counts["unscored"]:
        parts = []
        if counts["pruned"]:
            parts.append(f"{counts['pruned']} pruned early by the scheduler")
        if counts["error"]:
            parts.append(f"{counts['error']} failed")
        if counts["short"]:
            parts.append(f"{counts['short']} completed before the {budget}-epoch budget")
        if counts["unscored"]:
            parts.append(f"{counts['unscored']} without a score")
        out.append(
            f"Of {total} trials, {', '.join(parts)}; only the {counts['analysed']} trials that trained the full "
            f"{budget} epochs are compared."
        )
    if total and counts["error"] / total > FAILED_FRACTION:
        out.append(
            f"Many trials failed: {counts['error']} of {total} ({counts['error'] / total:.0%}); "
            "check the error column of trials.csv and the trial logs."
        )
    return out


def few_trials(design: Design, minimum: int = MIN_TRIALS) -> list[str]:
    small = design.cells[design.cells["n"] < minimum]
    if small.empty:
        return []
    listed = ", ".join(f"{c} (n={n})" for c, n in zip(small["cell"], small["n"]))
    out = [f"{len(small)} cell(s) have fewer than {minimum} full-budget trials, so their scores are uncertain: {listed}."]
    single = small[small["n"] < 2]
    if len(single):
        out.append(
            f"{len(single)} cell(s) have a single full-budget trial and no variance estimate; they are ranked "
            "but left out of the tests: " + ", ".join(single["cell"]) + "."
        )
    return out


def missing_cells(trials: pd.DataFrame, design: Design) -> list[str]:
    missing = sorted(set(trials["cell"]) - set(design.cells["cell"]))
    if not missing:
        return []
    return [
        f"{len(missing)} cell(s) have no full-budget trial (all pruned or failed) and are missing from the "
        "ranking: " + ", ".join(missing) + "."
    ]


def nuisance_edges(trials: pd.DataFrame, design: Design, search_ranges: dict | None) -> list[str]:
    """Best trial of a cell with a nuisance value within 10% of its range's edge."""
    out = []
    best = design.trials.set_index("trial_id").loc[design.cells["best_trial_id"]]
    for name in NUMERIC_NUISANCE:
        if name not in trials or trials[name].nunique() < 2:
            continue
        known = (search_ranges or {}).get(name)
        if known is not None:
            lo, hi, log = known
            where = "search range"
        else:
            values = trials[name].dropna()
            lo, hi = float(values.min()), float(values.max())
            log = name in LOG_SCALE and lo > 0
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


def diverged(design: Design) -> list[str]:
    low = design.trials[design.trials["score"] < CHANCE]
    if low.empty:
        return []
    cells = low["cell"].value_counts()
    listed = ", ".join(f"{c} ({n})" for c, n in cells.items())
    return [
        f"{len(low)} full-budget trial(s) scored below {CHANCE:.0%} (training diverged); they pull their cells' "
        f"means down: {listed}. A narrower learning-rate range would make cells easier to compare."
    ]


def rate_edges(rate_fits) -> list[str]:
    out = []
    for fit in rate_fits:
        if fit.at_edge:
            lo, hi = fit.range
            out.append(
                f"The best {fit.rate} with bn={fit.bn} ({fit.best:.2f}) is at the edge of the rates tried "
                f"[{lo:.2f}, {hi:.2f}]; the best rate may lie outside them."
            )
    return out


def cv_coverage(ranking, design: Design) -> list[str]:
    if ranking.source != "cv":
        return []
    out = []
    missing = sorted(set(design.cells["cell"]) - set(ranking.table["cell"]))
    if missing:
        out.append(
            f"{len(missing)} cell(s) were not cross-validated and are ranked only in ranking_trials: "
            + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "") + "."
        )
    several = ranking.table[ranking.table.get("configs_in_cell", pd.Series(1, index=ranking.table.index)) > 1]
    if len(several):
        out.append(
            "Some cells had several cross-validated configurations; each is ranked by its best one, "
            "which flatters cells with more configurations."
        )
    return out


def effect_warnings(effects: dict) -> list[str]:
    out = []
    for factor, effect in effects.items():
        if effect.test.get("matched") is False and effect.test.get("p_value") is not None and "trial-level" not in effect.test["method"]:
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
