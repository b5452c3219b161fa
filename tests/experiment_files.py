"""What a study left on disk, read by the tests that stop and resume studies (test_resume, test_node_loss)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna

# The states of a trial the searcher was told of as finished.
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def epoch_results(result_file: Path) -> list[dict]:
    """The epoch results in a trial's result.json, up to a last line still being written."""
    epochs = []
    for line in result_file.read_text().splitlines():
        try:
            result = json.loads(line)
        except json.JSONDecodeError:
            break
        if "epoch" in result:
            epochs.append(result)
    return epochs


def reported_epochs(experiment: Path) -> dict[str, list[dict]]:
    """trial_id -> the epoch results in the trial's result.json."""
    reported = {}
    for result_file in experiment.glob("*/result.json"):
        epochs = epoch_results(result_file)
        if epochs:
            reported[epochs[-1]["trial_id"]] = epochs
    return reported
