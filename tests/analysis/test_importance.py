"""PED-ANOVA importance: above MAX_TRIALS full-budget trials it sees an even sample in score order, and says so."""

from __future__ import annotations

import math

import pytest

from analysis import importance
from analysis.design import make_design
from synthetic import cells, make_trials


def _design(n_per_cell: int):
    trials = make_trials(3, cell_list=cells(bn=["none", "pre_act"], dropout=["none", "fc"]), n_per_cell=n_per_cell,
                         rate_range={"p_fc": (0.05, 0.6)}, effect=lambda f: 0.004 * (f["bn"] != "none"),
                         lr_effect=lambda lr, f: -0.01 * abs(math.log10(lr / 0.05)))
    return make_design(trials, "best_val_acc")


def test_a_sample_in_score_order_gives_the_importances_of_all_trials(monkeypatch):
    design = _design(1500)  # 6,000 full-budget trials
    monkeypatch.setattr(importance, "MAX_TRIALS", 10_000)
    exact, _ = importance.hyperparameter_importance(design)
    monkeypatch.setattr(importance, "MAX_TRIALS", 2000)
    sampled, _ = importance.hyperparameter_importance(design)
    assert "evenly spaced" not in exact.method and "2000 of the 6000 trials, evenly spaced in score order" in sampled.method
    assert sampled.n_trials == exact.n_trials == 6000 and set(sampled.values) == set(exact.values)
    for name, value in exact.values.items():
        assert sampled.values[name] == pytest.approx(value, abs=0.03), name
    assert list(sampled.values)[0] == list(exact.values)[0] == "lr"


def test_below_the_cap_every_trial_counts():
    design = _design(20)
    result, _ = importance.hyperparameter_importance(design)
    assert result.method == importance.METHOD and result.n_trials == 80
