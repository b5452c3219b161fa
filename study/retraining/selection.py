"""Which trials of a finished search go on to cross-validation.

Pure functions on a trials table (docs/experiment-directory.md; from `study run` or written
by hand). Only trials with status `completed` (trained the full epoch budget) are
candidates, ranked by `best_val_acc`; ties go to the smaller `trial_id`, so the
same table always gives the same pick.
"""

from __future__ import annotations

import pandas as pd

from study.vocabulary.errors import UserError

METRIC = "best_val_acc"


class SelectionError(UserError):
    """The trials cannot be picked as asked; the message says what to change."""


def _check_k(option: str, k) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SelectionError(f"{option} must be a whole number of at least 1, got {k!r}")
    return k


def completed_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The completed trials, best first (by `best_val_acc`, then `trial_id`)."""
    missing = [c for c in ("trial_id", "cell", "status", METRIC) if c not in trials.columns]
    if missing:
        raise SelectionError(
            f"the trials table lacks column(s) {', '.join(missing)}; pass a trials.csv written by "
            "`study run` (docs/experiment-directory.md, lists its columns)"
        )
    done = trials[(trials["status"] == "completed") & trials[METRIC].notna()]
    if done.empty:
        counts = trials["status"].value_counts().to_dict()
        raise SelectionError(
            f"no completed trial to pick from ({len(trials)} trials, by status: {counts or 'none'}); "
            "finish or resume the study first (`study run` with the same options)"
        )
    return done.sort_values([METRIC, "trial_id"], ascending=[False, True], kind="stable")


def pick_configs(trials: pd.DataFrame, top_k: int | None = None, overall: int | None = None) -> pd.DataFrame:
    """The picked trials' rows, best first.

    Default: the best completed trial of every cell. `top_k`: the K best of every
    cell (fewer where a cell completed fewer). `overall`: the K best of the whole
    study, whatever their cells. A cell without a completed trial is left out.
    """
    if top_k is not None and overall is not None:
        raise SelectionError(
            f"--top-k {top_k} and --overall {overall} pick in different ways; give one of them "
            "(--top-k K per cell, or --overall K in the whole study)"
        )
    done = completed_trials(trials)
    if overall is not None:
        picked = done.head(_check_k("--overall", overall))
    else:
        k = 1 if top_k is None else _check_k("--top-k", top_k)
        picked = done.groupby("cell", sort=False).head(k)
    return picked.reset_index(drop=True)


def cells_left_out(trials: pd.DataFrame, picked: pd.DataFrame) -> list[str]:
    """Cells of the study that no picked trial comes from (worth a note when picking per cell)."""
    return sorted(set(trials["cell"].astype(str)) - set(picked["cell"].astype(str)))


def find_trial(trials: pd.DataFrame, trial_id: str) -> pd.Series:
    """The row of `trial_id`; an unknown id is an error listing some known ones."""
    match = trials[trials["trial_id"].astype(str) == str(trial_id)]
    if match.empty:
        known = ", ".join(trials["trial_id"].astype(str).head(5))
        raise SelectionError(
            f"no trial {trial_id!r} in the trials table; name a trial_id from trials.csv or a config_id "
            f"from cv_summary.csv (trials.csv starts with: {known})"
        )
    return match.iloc[0]
