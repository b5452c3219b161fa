"""Which replicate set the conclusions come from, and how the others compare with it.

An experiment may hold several stage-2 runs side by side (docs/command-line.md, 'Replicate sets'):
the seeds `study run` ends with, K folds from `study cv --folds K`, other counts or
top-k choices. Every conclusion is drawn from one of them, so that no test mixes
replicates of different kinds; the report names it, says why it was chosen, and
shows each other set's cell means beside it (do seeds and folds agree?).

The default choice is the set that compares the most cells, each with at least two
scored replicates (an interval needs two), then the one with the most scored
replicates (the narrowest intervals), then the experiment's own stage 2.
`study analyze --replicates NAME` chooses another.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.design import make_design
from analysis.errors import AnalysisError
from analysis.ranking import rank_cells
from analysis.replicates import SCORE, replicate_rows, replicate_unit
from analysis.results import Estimate, ReplicateSet


def choose_set(sets: dict[str, pd.DataFrame], trials: pd.DataFrame, asked: str | None = None,
               own: str | None = None) -> tuple[str | None, str]:
    """(name, why) of the set the conclusions come from; (None, why) when there is none.

    `asked`: a name given with --replicates (an `AnalysisError` naming the sets there
    are when it is not one of them).
    """
    if asked is not None:
        if asked not in sets:
            there = ", ".join(sorted(sets)) or "none (run `study run` without --search-only, or `study cv`)"
            raise AnalysisError(f"--replicates {asked!r}: the experiment has no such replicate set; its sets: {there}")
        return asked, "chosen with --replicates"
    if not sets:
        return None, "the experiment has no replicate set"
    if len(sets) == 1:
        return next(iter(sets)), "the experiment's only replicate set"
    sizes = {name: _size(cv, trials) for name, cv in sets.items()}
    best = max(sets, key=lambda name: (*sizes[name], name == own))
    cells, scored = sizes[best]
    return best, (f"of the {len(sets)} replicate sets, it compares the most cells with at least 2 scored replicates "
                  f"({cells}) and, among those, has the most scored replicates ({scored})")


def _size(cv: pd.DataFrame, trials: pd.DataFrame) -> tuple[int, int]:
    """(cells with at least 2 scored replicates, scored replicates) of one set's representative rows."""
    rows = replicate_rows(cv, trials)
    if rows is None:
        return 0, 0
    scored = rows[(rows["status"] == "completed") & rows[SCORE].notna()]
    per_cell = scored.groupby("cell").size()
    return int((per_cell >= 2).sum()), int(len(scored))


def summarise_sets(sets: dict[str, pd.DataFrame], trials: pd.DataFrame, chosen: str | None,
                   tuned: tuple[str, ...] = ()) -> list[ReplicateSet]:
    """Every set, the chosen one first, each with its cells' means and intervals and its agreement with the chosen."""
    summaries = {name: _summary(name, cv, trials, name == chosen, tuned) for name, cv in sets.items()}
    order = sorted(summaries, key=lambda name: (name != chosen, name))
    if chosen is None or chosen not in summaries:
        return [summaries[name] for name in order]
    reference = summaries[chosen]
    out = []
    for name in order:
        entry = summaries[name]
        if name != chosen:
            entry = ReplicateSet(**{**vars(entry), "agreement": agreement(entry, reference)})
        out.append(entry)
    return out


def _summary(name: str, cv: pd.DataFrame, trials: pd.DataFrame, chosen: bool, tuned: tuple[str, ...]) -> ReplicateSet:
    scored = int(((cv["status"] == "completed") & cv[SCORE].notna()).sum()) if "status" in cv else int(cv[SCORE].notna().sum())
    rows = replicate_rows(cv, trials)
    cells: dict[str, Estimate] = {}
    unit = "replicates"
    if rows is not None:
        unit = replicate_unit(rows)
        try:
            ranking = rank_cells(make_design(rows, SCORE, tuned=tuned), unit)
        except AnalysisError:
            ranking = None  # nothing to compare in this set (e.g. one configuration): its rows are still counted
        if ranking is not None:
            for rec in ranking.table.to_dict("records"):
                cells[str(rec["cell"])] = Estimate(_num(rec["score"]), _num(rec["ci_low"]), _num(rec["ci_high"]), int(rec["n"]))
    best = next(iter(cells), None)
    return ReplicateSet(name, unit, chosen, int(len(cv)), scored, cells, best)


def agreement(other: ReplicateSet, reference: ReplicateSet) -> str:
    """How `other` compares with the chosen set, in words: its best cell, the rank correlation, the overlap."""
    shared = [c for c in reference.cells if c in other.cells]
    if not shared:
        return f"no cell in common with {reference.name}, nothing to compare"
    if other.best_cell == reference.best_cell:
        words = [f"its best cell is {other.best_cell}, as in {reference.name}"]
    else:
        words = [f"its best cell is {other.best_cell}, {reference.name}'s is {reference.best_cell}"]
    if len(shared) >= 3:
        rho = sps.spearmanr([reference.cells[c].mean for c in shared], [other.cells[c].mean for c in shared]).statistic
        if np.isfinite(rho):
            words.append(f"rank correlation of the cell means {rho:+.2f} over {len(shared)} cells")
    overlapping = [c for c in shared if _overlap(reference.cells[c], other.cells[c])]
    with_intervals = [c for c in shared if _has_interval(reference.cells[c]) and _has_interval(other.cells[c])]
    if with_intervals:
        words.append(f"95% intervals overlap in {len([c for c in overlapping if c in with_intervals])} of "
                     f"{len(with_intervals)} cells")
    return "; ".join(words)


def _has_interval(e: Estimate) -> bool:
    return e.ci_low is not None and e.ci_high is not None


def _overlap(a: Estimate, b: Estimate) -> bool:
    return _has_interval(a) and _has_interval(b) and a.ci_low <= b.ci_high and b.ci_low <= a.ci_high


def _num(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
