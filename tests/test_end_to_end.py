"""The whole command line on tiny synthetic IDX files, with the embedded Ray."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from study.cli import main
from study.factors import EPOCH_METRICS, NUISANCE, SCIENTIFIC_FACTORS
from study.results import FINAL_METRICS


@pytest.fixture(scope="module")
def smoke_experiment(tmp_path_factory, fake_data_dir, ray_session):
    storage = tmp_path_factory.mktemp("experiments")
    code = main(["run", "--budget", "smoke", "--data-dir", str(fake_data_dir), "--storage", str(storage), "--name", "smoke"])
    assert code == 0
    return storage / "smoke"


def test_run_writes_one_row_per_trial_with_every_column(smoke_experiment):
    trials = pd.read_csv(smoke_experiment / "trials.csv")
    plan = json.loads((smoke_experiment / "study.json").read_text())["plan"]
    assert len(trials) == plan["num_samples"]
    assert trials["trial_id"].is_unique
    expected = {"trial_id", "cell", "status", "epochs", "best_val_acc", "best_epoch", "max_epochs"}
    expected |= set(SCIENTIFIC_FACTORS) | set(NUISANCE) | set(FINAL_METRICS)
    assert expected <= set(trials.columns), expected - set(trials.columns)
    assert set(trials["status"]) <= {"completed", "pruned", "error"}
    assert trials[trials.status != "error"]["val_acc"].notna().all()


def test_asha_pruned_some_trials_and_others_completed(smoke_experiment):
    trials = pd.read_csv(smoke_experiment / "trials.csv")
    pruned = trials[trials.status == "pruned"]
    completed = trials[trials.status == "completed"]
    assert len(pruned) >= 1
    assert len(completed) >= 1
    assert (pruned["epochs"] < pruned["max_epochs"]).all()
    assert (completed["epochs"] == completed["max_epochs"]).all()


def test_epochs_csv_agrees_with_trials_csv(smoke_experiment):
    trials = pd.read_csv(smoke_experiment / "trials.csv").set_index("trial_id")
    epochs = pd.read_csv(smoke_experiment / "epochs.csv")
    assert set(EPOCH_METRICS) | {"trial_id"} <= set(epochs.columns)
    per_trial = epochs.groupby("trial_id")
    assert set(per_trial.groups) == set(trials.index[trials.epochs > 0])
    assert (per_trial["epoch"].max() == trials.loc[list(per_trial.groups), "epochs"]).all()
    assert per_trial["val_acc"].max().round(6).equals(trials.loc[list(per_trial.groups), "best_val_acc"].round(6))
    last = epochs.sort_values("epoch").groupby("trial_id").last()
    assert (last["val_loss"].round(6) == trials.loc[last.index, "val_loss"].round(6)).all()


def test_cells_follow_the_space_and_rates_are_normalised(smoke_experiment):
    trials = pd.read_csv(smoke_experiment / "trials.csv")
    for _, row in trials.iterrows():
        assert row["cell"] == f"bn={row['bn']},dropout={row['dropout']}"
        if row["dropout"] in ("none", "fc"):
            assert row["p_conv"] == 0.0
        if row["dropout"] in ("none", "conv"):
            assert row["p_fc"] == 0.0
