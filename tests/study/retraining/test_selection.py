"""Picking configurations for cross-validation from a hand-made trials.csv."""

from __future__ import annotations

import pytest

from study.retraining.common import RetrainError, open_experiment
from study.retraining.selection import SelectionError, cells_left_out, find_trial, pick_configs

# Three cells. Pruned and errored trials carry the highest scores: they must never be picked.
TRIALS_CSV = """trial_id,cell,bn,dropout,status,epochs,max_epochs,best_val_acc,lr
a1,bn=none,none,none,completed,4,4,0.80,0.01
a2,bn=none,none,none,completed,4,4,0.85,0.02
a3,bn=none,none,none,pruned,2,4,0.99,0.03
a4,bn=none,none,none,completed,4,4,0.70,0.04
b1,bn=pre_act,pre_act,none,completed,4,4,0.90,0.01
b2,bn=pre_act,pre_act,none,error,1,4,0.95,0.50
b3,bn=pre_act,pre_act,none,completed,4,4,0.88,0.02
c1,bn=post_act,post_act,none,pruned,2,4,0.97,0.01
c2,bn=post_act,post_act,none,completed,4,4,0.86,0.02
c3,bn=post_act,post_act,none,completed,4,4,0.86,0.03
"""


@pytest.fixture
def trials(tmp_path):
    (tmp_path / "trials.csv").write_text(TRIALS_CSV)
    return open_experiment(str(tmp_path)).trials


def _ids(frame) -> list[str]:
    return list(frame["trial_id"])


def test_default_picks_the_best_completed_trial_of_every_cell(trials):
    # c2 and c3 tie at 0.86: the smaller trial_id wins, so the pick is reproducible.
    assert _ids(pick_configs(trials)) == ["b1", "c2", "a2"]


def test_top_k_picks_the_k_best_of_every_cell(trials):
    assert _ids(pick_configs(trials, top_k=2)) == ["b1", "b3", "c2", "c3", "a2", "a1"]
    # A cell with fewer completed trials than K gives what it has.
    assert sorted(_ids(pick_configs(trials, top_k=3))) == ["a1", "a2", "a4", "b1", "b3", "c2", "c3"]


def test_overall_picks_the_k_best_of_the_study(trials):
    assert _ids(pick_configs(trials, overall=3)) == ["b1", "b3", "c2"]
    assert _ids(pick_configs(trials, overall=100)) == ["b1", "b3", "c2", "c3", "a2", "a1", "a4"]


@pytest.mark.parametrize("option, value", [("top_k", 0), ("overall", -1), ("top_k", 1.5), ("overall", True)])
def test_k_below_one_or_not_whole_is_refused(trials, option, value):
    with pytest.raises(SelectionError, match=f"at least 1, got {value!r}"):
        pick_configs(trials, **{option: value})


def test_top_k_and_overall_together_are_refused(trials):
    with pytest.raises(SelectionError, match="--top-k 2 and --overall 3"):
        pick_configs(trials, top_k=2, overall=3)


def test_nothing_completed_is_an_error_with_the_counts(trials):
    unfinished = trials[trials["status"] != "completed"]
    with pytest.raises(SelectionError, match=r"no completed trial .*'pruned': 2.*'error': 1.*study run"):
        pick_configs(unfinished)


def test_cells_without_a_completed_trial_are_reported(trials):
    only_none_and_pre = trials[~((trials["cell"] == "bn=post_act") & (trials["status"] == "completed"))]
    picked = pick_configs(only_none_and_pre)
    assert _ids(picked) == ["b1", "a2"]
    assert cells_left_out(only_none_and_pre, picked) == ["bn=post_act"]


def test_find_trial_by_id_and_unknown_id(trials):
    assert find_trial(trials, "b3")["lr"] == 0.02
    with pytest.raises(SelectionError, match="no trial 'zz'.*trials.csv starts with: a1, a2"):
        find_trial(trials, "zz")


def test_missing_experiment_directory_or_trials_csv(tmp_path):
    with pytest.raises(RetrainError, match="does not exist.*study run"):
        open_experiment(str(tmp_path / "nope"))
    with pytest.raises(RetrainError, match="has no trials.csv"):
        open_experiment(str(tmp_path))
