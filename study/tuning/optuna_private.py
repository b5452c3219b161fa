"""The private Optuna API the searcher relies on, in one place (tested with Optuna 5.0).

`study.tuning.cell_search` tells Optuna about trials that Ray Tune runs: it stores
intermediate values by step on a trial it did not create through `optuna.Trial`,
reads a trial back by number, and marks orphaned trials. Optuna's public API offers
none of that for a trial identified by its number, so these helpers reach into
`Study._storage` and `Study._study_id` (and `FrozenTrial._trial_id`);
`tests/study/tuning/test_private_apis.py` pins what they rely on, and
pyproject.toml bounds Optuna to the versions tested.
"""

from __future__ import annotations

import optuna


def _internal_id(study: optuna.Study, number: int) -> int:
    return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)


def trial_by_number(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """The trial `number` of `study`, as stored now."""
    return study._storage.get_trial(_internal_id(study, number))


def set_intermediate_value(study: optuna.Study, number: int, step: int, value: float) -> None:
    """What `optuna.Trial.report(value, step)` does, but a repeated step keeps the newest value.

    Raises `optuna.exceptions.UpdateFinishedTrialError` when the trial is finished.
    """
    study._storage.set_trial_intermediate_value(_internal_id(study, number), int(step), value)


def set_user_attr(study: optuna.Study, trial: optuna.trial.FrozenTrial, key: str, value) -> None:
    """Set a user attribute on a running trial read back from the storage."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)
