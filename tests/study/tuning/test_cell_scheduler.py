"""CellScheduler: one ASHA per cell, so early stopping never compares trials of different cells.

Driven directly with stub `Trial` objects, as Tune's controller would call it.
"""

from __future__ import annotations

import pickle

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from study.tuning.cell_scheduler import CellScheduler

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
ASHA_ARGS = {"time_attr": "epoch", "max_t": 4, "grace_period": 1, "reduction_factor": 2}


def _trial(trial_id: str, cell: str) -> Trial:
    return Trial("trainable", config={"cell": cell}, trial_id=trial_id, stub=True)


def _cell_scheduler(**kwargs) -> CellScheduler:
    scheduler = CellScheduler(**{**ASHA_ARGS, **kwargs})
    assert scheduler.set_search_properties("val_acc", "max")
    return scheduler


def _global_asha() -> ASHAScheduler:
    scheduler = ASHAScheduler(**ASHA_ARGS)
    assert scheduler.set_search_properties("val_acc", "max")
    return scheduler


def _epoch(scheduler, trial: Trial, epoch: int, acc: float) -> str:
    return scheduler.on_trial_result(None, trial, {"epoch": epoch, "val_acc": acc})


def _cross_cell_story(scheduler) -> dict[str, str]:
    """Cell A's trials all score 0.9 at epoch 1 (BN learns fast); cell B's best scores 0.5."""
    a1, a2, b1 = _trial("a1", "A"), _trial("a2", "A"), _trial("b1", "B")
    for t in (a1, a2, b1):
        scheduler.on_trial_add(None, t)
    return {
        "a1": _epoch(scheduler, a1, 1, 0.9),
        "a2": _epoch(scheduler, a2, 1, 0.9),
        "b1": _epoch(scheduler, b1, 1, 0.5),
    }


def test_a_global_asha_stops_the_best_trial_of_a_slow_cell():
    # The failure CellScheduler exists to prevent: one ASHA compares B's best trial with A's.
    assert _cross_cell_story(_global_asha())["b1"] == STOP


def test_per_cell_rungs_keep_the_best_trial_of_a_slow_cell():
    decisions = _cross_cell_story(_cell_scheduler())
    assert decisions == {"a1": CONTINUE, "a2": CONTINUE, "b1": CONTINUE}


def test_asha_still_prunes_inside_a_cell():
    scheduler = _cell_scheduler()
    _cross_cell_story(scheduler)
    b2 = _trial("b2", "B")
    scheduler.on_trial_add(None, b2)
    assert _epoch(scheduler, b2, 1, 0.4) == STOP  # worse than B's own 0.5 at this rung
    rungs = scheduler.rungs()
    assert set(rungs) == {"A", "B"}
    assert {k for rung in rungs["A"] for k in rung} == {"a1", "a2"}  # no B trial in A's rungs
    assert {k for rung in rungs["B"] for k in rung} == {"b1", "b2"}


def test_max_t_stops_every_trial():
    scheduler = _cell_scheduler()
    t = _trial("t", "A")
    scheduler.on_trial_add(None, t)
    assert [_epoch(scheduler, t, e, 0.5 + e / 10) for e in (1, 2, 3, 4)] == [CONTINUE] * 3 + [STOP]


def test_without_early_stopping_only_max_t_stops():
    scheduler = _cell_scheduler(early_stopping=False)
    decisions = _cross_cell_story(scheduler)
    b2 = _trial("b2", "B")
    scheduler.on_trial_add(None, b2)
    assert set(decisions.values()) == {CONTINUE} and _epoch(scheduler, b2, 1, 0.1) == CONTINUE
    assert _epoch(scheduler, b2, 4, 0.1) == STOP


def test_trials_without_a_cell_share_one_asha():
    scheduler = _cell_scheduler()
    x, y = Trial("f", config={}, trial_id="x", stub=True), Trial("f", config={}, trial_id="y", stub=True)
    for t in (x, y):
        scheduler.on_trial_add(None, t)
    _epoch(scheduler, x, 1, 0.9)
    assert _epoch(scheduler, y, 1, 0.5) == STOP


def test_complete_and_remove_are_routed():
    scheduler = _cell_scheduler()
    a, b = _trial("a", "A"), _trial("b", "B")
    for t in (a, b):
        scheduler.on_trial_add(None, t)
    scheduler.on_trial_complete(None, a, {"epoch": 4, "val_acc": 0.9})
    scheduler.on_trial_remove(None, b)
    scheduler.on_trial_remove(None, b)  # twice: no error
    assert "a" not in scheduler.asha("A")._trial_info and "b" not in scheduler.asha("B")._trial_info
    assert "A:" in scheduler.debug_string()


def test_rungs_survive_a_restore_through_the_state_file(tmp_path):
    state_file = tmp_path / "optuna" / "asha_rungs.json"
    scheduler = _cell_scheduler(state_file=state_file)
    pristine = pickle.dumps(scheduler)  # what tuner.pkl holds: Tune does not checkpoint schedulers
    _cross_cell_story(scheduler)
    b2 = _trial("b2", "B")
    scheduler.on_trial_add(None, b2)
    assert _epoch(scheduler, b2, 1, 0.4) == STOP
    assert state_file.is_file()

    resumed = pickle.loads(pristine)
    assert resumed.rungs() == {}
    b3, b2_again = _trial("b3", "B"), _trial("b2", "B")
    for t in (b3, b2_again):
        resumed.on_trial_add(None, t)  # Tune re-adds every restored trial
    assert resumed.rungs() == scheduler.rungs()
    assert _epoch(resumed, b3, 1, 0.42) == STOP  # below the rung median of b1 (0.5) and b2 (0.4)
    assert _epoch(resumed, b2_again, 2, 0.9) == STOP  # a trial stopped before the interruption stays stopped


def test_metric_conflict_and_argument_validation():
    scheduler = CellScheduler(max_t=4, metric="val_acc", mode="max")
    assert scheduler.set_search_properties("val_acc", "max")
    assert not scheduler.set_search_properties("val_loss", "min")
    with pytest.raises(ValueError, match="grace_period"):
        CellScheduler(max_t=4, grace_period=5)
    with pytest.raises(ValueError, match="reduction_factor"):
        CellScheduler(max_t=4, reduction_factor=1)
    with pytest.raises(ValueError, match="max_t"):
        CellScheduler(max_t=0)
