"""Optuna's own views, rebuilt from the tables: each trial's state, values and curve as the search saw them."""

from __future__ import annotations

import matplotlib
import optuna

from analysis.plots.optuna_views import cell_study, optuna_views_info, plot_optuna_views
from synthetic import make_epochs, make_trials


def test_a_cells_search_comes_back_as_an_optuna_study():
    trials = make_trials(0, n_per_cell=4, pruned=2)
    epochs = make_epochs(trials)
    cell = trials["cell"].iloc[0]
    study = cell_study(trials, epochs, cell, ["lr", "weight_decay"], {"lr": (0.005, 0.3, True)})
    mine = trials[(trials["cell"] == cell) & trials["status"].isin(["completed", "pruned"])].set_index("trial_id")
    states = sorted(t.state.name for t in study.trials)
    assert states == sorted({"completed": "COMPLETE", "pruned": "PRUNED"}[s] for s in mine["status"])
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.value for t in complete) == sorted(mine.loc[mine["status"] == "completed", "best_val_acc"])
    for t in study.trials:  # every epoch's val_acc, as ASHA saw it
        assert len(t.intermediate_values) == int(mine["epochs"][mine["lr"] == t.params["lr"]].iloc[0])
    assert study.trials[0].distributions["lr"].log and study.trials[0].distributions["lr"].high == 0.3


def test_the_best_cells_are_drawn_and_tables_without_curves_are_skipped(tmp_path):
    trials = make_trials(1, n_per_cell=4, pruned=1)
    ranked = list(trials["cell"].unique())
    assert optuna_views_info(trials, None, ranked) is None
    info = optuna_views_info(trials, make_epochs(trials), ranked)
    assert list(info.studies) == ranked[:2] and info.params == ["lr", "weight_decay"]
    style = dict(matplotlib.rcParams)
    files = plot_optuna_views(info, tmp_path)
    assert dict(matplotlib.rcParams) == style  # Optuna's ggplot style stays inside its own figures
    assert sorted(files) == sorted(f"optuna_{kind}_{k}" for kind in ("curves", "nuisance") for k in (1, 2))
    assert all(path.stat().st_size > 1000 for path in files.values())


def test_a_cell_of_thousands_is_drawn_from_an_even_sample_and_says_so(tmp_path, monkeypatch):
    # Optuna's curves view gives every trial a legend entry: 8,000 of them took minutes to draw.
    from analysis.plots import optuna_views

    monkeypatch.setattr(optuna_views, "MAX_VIEW_TRIALS", 60)
    trials = make_trials(2, n_per_cell=70, pruned=30)
    ranked = list(trials["cell"].unique())
    info = optuna_views_info(trials, make_epochs(trials), ranked)
    study = info.studies[ranked[0]]
    assert len(study.trials) == 60  # of the cell's 100, evenly spaced in trial order
    assert {t.state.name for t in study.trials} == {"COMPLETE", "PRUNED"}
    shown = optuna_views.thinned(study, optuna_views.MAX_CURVES)
    assert len(shown.trials) == optuna_views.MAX_CURVES
    assert [t.number for t in shown.trials] == list(range(optuna_views.MAX_CURVES))
    assert optuna_views.thinned(shown, optuna_views.MAX_CURVES) is shown
    files = plot_optuna_views(info, tmp_path)
    assert files["optuna_curves_1"].stat().st_size > 1000
