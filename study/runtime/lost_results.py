"""Trials whose folder is missing or damaged keep the rows trials.csv and epochs.csv already hold for them.

Tune's experiment state remembers each trial's last reported epoch, but its per-epoch results live in the trial's
folder (result.json, progress.csv). With the folder deleted, moved or cut short, Tune still returns the trial, with
no epochs: written as found it would become a `pruned` trial of 0 epochs, its metrics and its epochs.csv rows gone,
and stage 2 would then refuse the changed table. So a trial whose folder holds fewer epochs than Tune remembers is
*lost*: its rows come from the tables already written when they hold it, and from the last epoch Tune remembers
otherwise (its best_val_acc is then that epoch's); either way the command names its folder.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class LostTrial:
    trial_id: str
    folder: str
    remembered_epochs: int  # the last epoch Tune's state holds for it
    found_epochs: int  # the epochs its folder still holds
    fallback: dict  # its trials.csv row from that last epoch alone, when no table holds it yet


def lost_trials(results, trials: pd.DataFrame, factors) -> list[LostTrial]:
    """The trials of a Tune `ResultGrid` whose folder holds fewer epochs than Tune's state remembers."""
    from study.runtime.results import epoch_frame, one_line, trial_row

    found = dict(zip(trials["trial_id"].astype(str), trials["epochs"].astype(int)))
    lost = []
    for result in results:
        metrics = result.metrics or {}
        if "trial_id" not in metrics or metrics.get("epoch") is None:
            continue
        remembered, trial_id = int(metrics["epoch"]), str(metrics["trial_id"])
        if found.get(trial_id, 0) < remembered and result.config is not None:
            last = epoch_frame(pd.DataFrame([metrics]), trial_id)
            error = "" if result.error is None else one_line(result.error)
            fallback = trial_row(trial_id, result.config, last, result.error is not None, error, factors)
            lost.append(LostTrial(trial_id, str(result.path), remembered, found.get(trial_id, 0), fallback))
    return lost


def keep_recorded_rows(trials: pd.DataFrame, epochs: pd.DataFrame, lost: list[LostTrial],
                       previous_trials: str | None, previous_epochs: str | None) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                                            list[str]]:
    """(trials, epochs, warnings): each lost trial's rows as the previous tables (CSV text, or None) hold them."""
    if not lost:
        return trials, epochs, []
    old_trials = _read(previous_trials)
    old_epochs = _read(previous_epochs)
    warnings = []
    for item in lost:
        kept = old_trials is not None and item.trial_id in set(old_trials["trial_id"])
        if kept:
            row = old_trials[old_trials["trial_id"] == item.trial_id]
            trials = pd.concat([trials[trials["trial_id"] != item.trial_id], row], ignore_index=True)
            if old_epochs is not None:
                rows = old_epochs[old_epochs["trial_id"] == item.trial_id]
                epochs = pd.concat([epochs[epochs["trial_id"] != item.trial_id], rows], ignore_index=True)
            status = row["status"].iloc[0]
            what = f"its rows in trials.csv and epochs.csv are kept as they were ({status}, {item.remembered_epochs} epochs)"
        else:
            row = pd.DataFrame([item.fallback])
            trials = pd.concat([trials[trials["trial_id"] != item.trial_id], row], ignore_index=True)
            what = ("no table held it yet, so its row comes from the last epoch Ray Tune remembers "
                    f"(epoch {item.remembered_epochs}); its earlier epochs are not in epochs.csv")
        warnings.append(
            f"trial {item.trial_id}: its folder {item.folder} is missing or damaged (it holds {item.found_epochs} of "
            f"the {item.remembered_epochs} epochs Ray Tune remembers); {what}. Put the folder back (from a copy of "
            "the experiment) to restore its files."
        )
    epochs = epochs.sort_values(["trial_id", "epoch"], kind="stable", ignore_index=True)
    return trials.sort_values("trial_id", ignore_index=True), epochs, warnings


def _read(text: str | None) -> pd.DataFrame | None:
    if text is None:
        return None
    try:
        return pd.read_csv(io.StringIO(text), dtype={"trial_id": str, "cell": str})
    except (ValueError, pd.errors.ParserError):
        return None
