"""Optuna's own views of the best cells: the learning curves ASHA saw, and the nuisance response.

Each cell's search is rebuilt as an in-memory Optuna study from the tables (trials.csv
and epochs.csv: a trial's nuisance values, its per-epoch `val_acc` as intermediate
values, COMPLETE at the full budget and PRUNED otherwise), so the views need neither
the journals nor the storage they live in: an experiment synced back from S3, or a
hand-made table, draws the same. `optuna.visualization.matplotlib` then draws them:
`plot_intermediate_values` (pruned trials' curves end early) and `plot_contour` of
lr × weight decay (`plot_slice` when one nuisance value was tuned).

Optuna's plotting functions draw through pyplot and switch it to their ggplot style; each
figure is drawn inside `rc_context` (the style comes back) and closed once saved, so no
figure or style outlives its file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.plots.common import DPI
from study.vocabulary.factors import LOG_SCALE_NUISANCE

TUNED = ("lr", "weight_decay", "momentum")
MAX_CELLS = 2  # the best cells of the search
# Optuna's curves view gives each trial a line and a legend entry: past a few dozen it is unreadable, and drawing
# thousands of legend entries takes minutes. A larger cell shows this many, evenly spaced in trial order.
MAX_CURVES = 48
# A cell's study is rebuilt from at most this many trials, evenly spaced in trial order (Optuna copies each trial it
# is given: seconds per cell of thousands); the contour of so many is the same picture.
MAX_VIEW_TRIALS = 2_000


@dataclass(frozen=True)
class OptunaViewsInfo:
    studies: dict  # cell -> optuna.Study rebuilt from the tables
    params: list  # the nuisance values that varied


def cell_study(trials: pd.DataFrame, epochs: pd.DataFrame, cell: str, params: list[str], ranges: dict | None):
    """The search of one cell as an in-memory Optuna study (maximising val_acc)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=cell, direction="maximize")
    mine = trials[trials["cell"] == cell]
    if len(mine) > MAX_VIEW_TRIALS:
        mine = mine.iloc[np.unique(np.linspace(0, len(mine) - 1, MAX_VIEW_TRIALS).round().astype(int))]
    own = epochs[epochs["trial_id"].isin(mine["trial_id"])]  # pivoting only the cell's rows: seconds less at scale
    curves = own.pivot_table(index="trial_id", columns="epoch", values="val_acc", aggfunc="last")
    distributions = {}
    for name in params:
        low, high, log = (ranges or {}).get(
            name, (float(trials[name].min()), float(trials[name].max()), name in LOG_SCALE_NUISANCE))
        distributions[name] = optuna.distributions.FloatDistribution(low, high, log=log)
    # Rows of the pivot by position: a label lookup per trial costs seconds in a cell of thousands.
    row_of = {trial_id: i for i, trial_id in enumerate(curves.index)}
    grid, epoch_axis = curves.to_numpy(float), [int(e) for e in curves.columns]
    made = []
    for row in mine.to_dict("records"):
        i = row_of.get(row["trial_id"])
        if row["status"] not in ("completed", "pruned") or i is None:
            continue
        curve = {epoch: float(value) for epoch, value in zip(epoch_axis, grid[i]) if not np.isnan(value)}
        if not curve:
            continue
        state = optuna.trial.TrialState.COMPLETE if row["status"] == "completed" else optuna.trial.TrialState.PRUNED
        made.append(optuna.trial.create_trial(
            params={name: float(np.clip(row[name], distributions[name].low, distributions[name].high)) for name in params},
            distributions=distributions,
            value=float(row["best_val_acc"]) if state == optuna.trial.TrialState.COMPLETE else None,
            intermediate_values=curve,
            state=state,
        ))
    study.add_trials(made)
    return study


def thinned(study, most: int):
    """`study` itself when it has at most `most` trials, else an in-memory copy of `most` of them, evenly spaced in
    trial order (pruned and complete in the proportions the search had)."""
    import optuna

    every = study.get_trials(deepcopy=False)  # `study.trials` copies them all at each access
    if len(every) <= most:
        return study
    keep = np.unique(np.linspace(0, len(every) - 1, most).round().astype(int))
    out = optuna.create_study(study_name=study.study_name, direction="maximize")
    out.add_trials([every[i] for i in keep])
    return out


def optuna_views_info(trials: pd.DataFrame, epochs: pd.DataFrame | None, ranked_cells: list[str],
                      ranges: dict | None = None) -> OptunaViewsInfo | None:
    """Rebuilt studies of the first `MAX_CELLS` of `ranked_cells`, or None without epochs.csv or a tuned nuisance value."""
    if epochs is None or epochs.empty or "val_acc" not in epochs:
        return None
    params = [p for p in TUNED if p in trials and trials.groupby("cell")[p].nunique().max() > 1]
    if not params:
        return None
    studies = {cell: cell_study(trials, epochs, cell, params, ranges) for cell in ranked_cells[:MAX_CELLS]}
    studies = {cell: s for cell, s in studies.items() if s.get_trials(deepcopy=False)}
    return OptunaViewsInfo(studies, params) if studies else None


def plot_optuna_views(info: OptunaViewsInfo, folder: Path) -> dict[str, Path]:
    """Two PNGs per cell: optuna_curves_K.png and optuna_nuisance_K.png (K = the cell's rank); name -> path."""
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as views

    files = {}
    for rank, (cell, study) in enumerate(info.studies.items(), start=1):
        shown = thinned(study, MAX_CURVES)
        drawings = {"curves": lambda: views.plot_intermediate_values(shown)}
        every = study.get_trials(deepcopy=False)
        completed = [t for t in every if t.state.name == "COMPLETE"]
        if len(completed) >= 2:
            drawings["nuisance"] = (lambda: views.plot_contour(study, params=info.params[:2])) if len(info.params) >= 2 \
                else (lambda: views.plot_slice(study, params=info.params))
        for kind, draw in drawings.items():
            path = Path(folder) / f"optuna_{kind}_{rank}.png"
            # Optuna's views switch matplotlib to its ggplot style for good: rc_context puts the style back.
            with plt.rc_context(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib views experimental
                figure = np.ravel(draw())[0].figure
                what = "nuisance response"
                if kind == "curves":
                    what = "learning curves ASHA saw" + (
                        f": {len(shown.trials)} of {len(every)} trials, evenly spaced in trial order"
                        if shown is not study else "")
                figure.suptitle(f"{cell} ({what})", fontsize=9)
                figure.savefig(path, dpi=DPI, bbox_inches="tight")
            plt.close(figure)
            files[f"optuna_{kind}_{rank}"] = path
    return files
