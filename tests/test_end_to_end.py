"""The whole command line on tiny synthetic IDX files, with the embedded Ray."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from study.cli import main
from study.factors import EPOCH_METRICS, NUISANCE, SCIENTIFIC_FACTORS
from study.results import FINAL_METRICS


from study.fake_data import write_fake_fashion_mnist

# Two cells and four trials each: enough for per-cell ASHA to stop someone.
TWO_CELL_SPACE = """
description: two cells for the end-to-end test
scientific:
  bn: [none, pre_act]
nuisance:
  lr: {low: 0.002, high: 0.5, log: true}
fixed: {model: small, dropout: fc, p_fc: 0.2}
"""


@pytest.fixture(scope="module")
def smoke_experiment(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("e2e")
    # Noisy images, so that accuracies differ between trials instead of all reaching 1.0.
    data = write_fake_fashion_mnist(root / "data", n_train=600, n_test=100, seed=1, noise=1.0)
    space = root / "two_cells.yaml"
    space.write_text(TWO_CELL_SPACE)
    argv = ["run", "--space", str(space), "--budget", "smoke", "--num-samples", "8", "--data-dir", str(data),
            "--storage", str(root / "experiments"), "--name", "smoke"]
    assert main(argv) == 0
    return root / "experiments" / "smoke"


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


def test_every_cell_gets_the_same_budget_and_a_report(smoke_experiment):
    trials = pd.read_csv(smoke_experiment / "trials.csv")
    assert trials.groupby("cell").size().to_dict() == {"bn=none": 4, "bn=pre_act": 4}
    for _, row in trials.iterrows():
        assert row["cell"] == f"bn={row['bn']}"
        assert row["p_conv"] == 0.0 and row["p_fc"] == 0.2  # normalised: no conv dropout in this space
    report = smoke_experiment / "report"
    assert (report / "conclusions.json").is_file() and (report / "report.html").is_file()
