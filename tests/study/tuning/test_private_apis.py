"""What the project relies on in Optuna's and Ray Tune's private APIs: a newer release that changes it fails here.

`study.tuning.optuna_private` and `study.tuning.ray_private` are the only modules that
touch those internals; pyproject.toml bounds both libraries to the versions tested.
"""

from __future__ import annotations

import optuna
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from study.tuning import optuna_private, ray_private


def test_an_intermediate_value_stored_by_number_reads_back_and_a_repeated_step_keeps_the_newest():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    optuna_private.set_intermediate_value(study, trial.number, 1, 0.5)
    optuna_private.set_intermediate_value(study, trial.number, 2, 0.6)
    optuna_private.set_intermediate_value(study, trial.number, 2, 0.7)  # a resumed trial re-reports epoch 2
    assert optuna_private.trial_by_number(study, trial.number).intermediate_values == {1: 0.5, 2: 0.7}
    study.tell(trial.number, 0.7)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        optuna_private.set_intermediate_value(study, trial.number, 3, 0.8)


def test_a_user_attribute_set_on_a_stored_running_trial_is_kept():
    study = optuna.create_study()
    study.ask()
    running = study.get_trials(deepcopy=False)[0]
    optuna_private.set_user_attr(study, running, "orphaned", True)
    assert optuna_private.trial_by_number(study, running.number).user_attrs == {"orphaned": True}


def _trial(trial_id: str) -> Trial:
    return Trial("trainable", config={}, trial_id=trial_id, stub=True)


def test_asha_rungs_read_and_restored_through_the_adapter_decide_the_next_trial():
    asha = ASHAScheduler(time_attr="epoch", metric="val_acc", mode="max", max_t=4, grace_period=1, reduction_factor=2)
    first, second = _trial("a"), _trial("b")
    for trial in (first, second):
        asha.on_trial_add(None, trial)
    assert ray_private.tracks(asha, "a") and not ray_private.tracks(asha, "zzz")
    assert asha.on_trial_result(None, first, {"epoch": 1, "val_acc": 0.9}) == TrialScheduler.CONTINUE
    milestones = [milestone for milestone, _ in ray_private.rungs(asha)]
    assert milestones == sorted(milestones, reverse=True) and 1 in milestones
    recorded = dict(ray_private.rungs(asha))[1]
    assert recorded == {"a": 0.9} and ray_private.rung_sizes(asha)[-1] == 1
    # A fresh ASHA with the rung put back (what a resume does) stops a worse trial, as the original would.
    fresh = ASHAScheduler(time_attr="epoch", metric="val_acc", mode="max", max_t=4, grace_period=1, reduction_factor=2)
    fresh.on_trial_add(None, second)
    dict(ray_private.rungs(fresh))[1].update(recorded)
    assert fresh.on_trial_result(None, second, {"epoch": 1, "val_acc": 0.1}) == TrialScheduler.STOP
    assert "Bracket" in ray_private.describe(asha)
