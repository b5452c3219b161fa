"""Stage 2 as the rows the analysis compares: each cell's confirmed configuration, replicate by replicate.

The study's question is how well a placement works once its nuisance
hyperparameters are tuned. The search (stage 1) finds each cell's best
configuration; its trials differ in their nuisance draws, so their mean measures
how forgiving a cell is of the search range, not how good it is. Stage 2 retrains
the selected configurations on replicates (seeds on the fixed split, or CV folds)
to the full budget with no early stopping, and every conclusion is computed from
those replicates.

`replicate_rows` turns cv.csv into a table shaped like trials.csv (one row per
replicate of the configuration that represents its cell), so the same design,
tests and effects serve both stages. A replicate's score is its validation
accuracy after the last epoch. Each row carries `se_ratio`, the Nadeau-Bengio
``n_val/n_train`` term for folds (folds share training images; see
`analysis.stats.cv_se2`) and 0 for seeds (independent retrainings, plain t).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats import nadeau_bengio_ratio
from study.vocabulary.factors import SCIENTIFIC_FACTORS

SCORE = "val_acc"  # after the last epoch: nothing is chosen per epoch in stage 2 (the design's metric)
UNITS = {"seed": "seeds", "fold": "folds"}


def replicate_rows(cv: pd.DataFrame | None, trials: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """The replicates of each cell's representative configuration, or None when none is scored.

    A cell with several confirmed configurations (``study cv --top-k``) is
    represented by the one with the best mean over its completed replicates; the
    analysis warns that this flatters such cells. A configuration whose `config_id`
    is a trial of `trials` (as `study cv` writes them) takes its cell and factor
    values from that trial where cv.csv lacks them (a hand-made table of scores).
    """
    if cv is None or cv.empty:
        return None
    if trials is not None:
        cv = with_trial_factors(cv, trials)
    scored = cv[(cv["status"] == "completed") & cv[SCORE].notna()]
    if scored.empty:
        return None
    means = scored.groupby("config_id", sort=False)[SCORE].mean()
    cells = cv.drop_duplicates("config_id").set_index("config_id")["cell"]
    ranked = means.sort_values(ascending=False, kind="stable")
    representative = ranked.groupby(cells.loc[ranked.index].to_numpy(), sort=False).head(1).index
    rows = cv[cv["config_id"].isin(representative)].copy()
    configs_per_cell = cells.groupby(cells).size()
    rows["configs_in_cell"] = rows["cell"].map(configs_per_cell).astype(int)
    rows["trial_id"] = rows["config_id"] + "/" + rows["replicate"].map(_replicate_label)
    if "max_epochs" not in rows.columns:
        rows["max_epochs"] = rows["epochs"].max() if "epochs" in rows.columns else 1
    if "epochs" not in rows.columns:
        rows["epochs"] = rows["max_epochs"]
    rows["se_ratio"] = _se_ratio(rows)
    return rows.reset_index(drop=True)


def with_trial_factors(cv: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """cv.csv with `cell` and the factor columns it lacks filled from the trial each configuration came from."""
    source = trials.drop_duplicates("trial_id").set_index("trial_id")
    known = cv["config_id"].isin(source.index)
    if not known.any():
        return cv
    cv = cv.copy()
    for column in ("cell", *SCIENTIFIC_FACTORS):
        if column not in source.columns:
            continue
        from_trials = cv["config_id"].map(source[column])
        # `cell` equal to config_id everywhere is `analysis.io`'s stand-in for a table without cells.
        if column not in cv.columns or (column == "cell" and (cv["cell"] == cv["config_id"]).all()):
            cv[column] = from_trials.where(known, cv.get(column))
    return cv


def replicate_unit(rows: pd.DataFrame) -> str:
    """'seeds', 'folds', or 'replicates' when a table mixes both."""
    kinds = set(rows["replicate_kind"])
    return UNITS[kinds.pop()] if len(kinds) == 1 else "replicates"


def _replicate_label(value) -> str:
    return f"r{int(value)}" if pd.notna(value) else "r?"


def _se_ratio(rows: pd.DataFrame) -> np.ndarray:
    """Nadeau-Bengio n_val/n_train for folds (1/(k-1) when sizes are unknown), 0 for seeds."""
    k = rows.groupby("config_id")["replicate"].transform("nunique").to_numpy(dtype=int)
    n_val = rows["n_val"] if "n_val" in rows.columns else pd.Series(np.nan, index=rows.index)
    n_train = rows["n_train"] if "n_train" in rows.columns else pd.Series(np.nan, index=rows.index)
    return np.array([
        nadeau_bengio_ratio(v, t, n) if kind == "fold" else 0.0
        for kind, v, t, n in zip(rows["replicate_kind"], n_val.astype(float), n_train.astype(float), k)
    ])

