"""Turn Tune's results into the experiment-directory tables (docs/experiment-directory.md).

`trials.csv` has one row per trial and `epochs.csv` one row per trial and epoch
(written with `study.vocabulary.storage`, to a local directory or a URI).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import pandas as pd

from study.vocabulary.config import TrialConfig
from study.vocabulary import tables
from study.vocabulary.factors import (
    EPOCH_METRICS, NUISANCE, SCIENTIFIC_FACTORS, VAR_SHIFT_LAYER_PREFIX, cell_name, is_diverged,
)


def trial_row(
    trial_id: str, config: dict, epochs: pd.DataFrame, errored: bool, error: str, factors: Iterable[str]
) -> dict[str, Any]:
    """One trials.csv row from a trial's config and its per-epoch metrics.

    status: `error` when the trial raised; else `diverged` (`study.vocabulary.factors.is_diverged`)
    when any epoch's train_loss was not finite, or it trained the full budget and its
    last val_acc is below DIVERGED_ACCURACY; else `completed` when it trained
    `max_epochs` epochs and `pruned` when the scheduler stopped it earlier.
    """
    cfg = TrialConfig.from_flat(config)
    flat = cfg.to_row()
    row: dict[str, Any] = {"trial_id": trial_id, "cell": config.get("cell") or cell_name(flat, tuple(factors))}
    if "experiment" in config:
        row["experiment"] = config["experiment"]
    row.update({name: flat[name] for name in SCIENTIFIC_FACTORS})
    row.update({name: flat[name] for name in NUISANCE})
    row.update({name: flat[name] for name in tables.FIXED_COLUMNS})
    n_epochs = int(epochs["epoch"].max()) if len(epochs) else 0
    if errored:
        status = "error"
    elif _diverged(epochs, full_budget=n_epochs >= cfg.max_epochs):
        status = "diverged"
    else:
        status = "completed" if n_epochs >= cfg.max_epochs else "pruned"
    row.update(status=status, epochs=n_epochs)
    last = epochs.iloc[-1] if len(epochs) else {}
    row.update({m: _number(last, m) for m in tables.TRIAL_METRICS})
    if len(epochs) and epochs["val_acc"].notna().any():
        best = epochs.loc[epochs["val_acc"].idxmax()]
        row.update(best_val_acc=float(best["val_acc"]), best_epoch=int(best["epoch"]))
    else:
        row.update(best_val_acc=float("nan"), best_epoch=0)
    row["error"] = error
    return row


def _diverged(epochs: pd.DataFrame, full_budget: bool) -> bool:
    """Any epoch with a non-finite train_loss, or (full budget only) the last reported val_acc near chance."""
    if not len(epochs):
        return False
    losses = pd.to_numeric(epochs["train_loss"], errors="coerce").astype(float)
    if any(is_diverged(loss, None) for loss in losses):
        return True
    reported = pd.to_numeric(epochs["val_acc"], errors="coerce").dropna() if "val_acc" in epochs else []
    return len(reported) > 0 and is_diverged(float(losses.iloc[-1]), float(reported.iloc[-1]), full_budget)


def _number(last, name: str) -> float:
    """A final-epoch metric as a float; NaN where the trial has no epochs or no such column."""
    try:
        return float(last[name])
    except (KeyError, TypeError, ValueError):
        return float("nan")


def tables_from_results(results, factors: Iterable[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, epochs) DataFrames from a Tune `ResultGrid`."""
    rows, epoch_frames = [], []
    for result in results:
        trial_id = _trial_id(result)
        epochs = epoch_frame(result.metrics_dataframe, trial_id)
        error = "" if result.error is None else one_line(result.error)
        row = trial_row(trial_id, result.config, epochs, result.error is not None, error, factors)
        # The precision and layout the trial computed with (`precision` is what was asked: auto chooses).
        row["numerics"] = (result.metrics or {}).get("numerics")
        rows.append(row)
        epoch_frames.append(epochs)
    trials = pd.DataFrame(rows)
    epochs = pd.concat(epoch_frames, ignore_index=True) if epoch_frames else pd.DataFrame(columns=["trial_id", *EPOCH_METRICS])
    return trials.sort_values("trial_id", ignore_index=True), epochs


def _trial_id(result) -> str:
    if result.metrics and "trial_id" in result.metrics:
        return str(result.metrics["trial_id"])
    return str(result.path).rstrip("/").rsplit("/", 1)[-1]  # a trial that never reported


def epoch_frame(frame: pd.DataFrame | None, trial_id: str) -> pd.DataFrame:
    columns = ["trial_id", *EPOCH_METRICS]
    if frame is None or "epoch" not in frame:
        return pd.DataFrame(columns=columns)
    # One column per BN layer the trial has (var_shift_bn0, ...): a model without BN has none.
    columns += sorted((c for c in frame.columns if re.fullmatch(rf"{VAR_SHIFT_LAYER_PREFIX}\d+", str(c))),
                      key=lambda c: int(c[len(VAR_SHIFT_LAYER_PREFIX):]))
    frame = frame.dropna(subset=["epoch"]).assign(trial_id=trial_id)
    frame["epoch"] = frame["epoch"].astype(int)
    # A trial resumed from a checkpoint may have logged an epoch twice; keep the last.
    frame = frame.drop_duplicates("epoch", keep="last").sort_values("epoch")
    # reindex: an epoch metric a trial never reported (e.g. one logged before it existed) is NaN
    return frame.reindex(columns=columns).reset_index(drop=True)


def one_line(error: BaseException) -> str:
    """An error's last line (its message), at most 500 characters: what the tables' `error` column holds."""
    text = str(error).strip().splitlines()
    return (text[-1] if text else type(error).__name__)[:500]
