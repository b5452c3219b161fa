"""`study run` on tiny synthetic IDX files, with the embedded Ray (the run is conftest's `smoke_study`):
the search, then stage 2 (each cell's best configuration on the smoke budget's 2 seeds), then the analysis."""

from __future__ import annotations

import json
import shutil

import pandas as pd

from study.vocabulary.factors import EPOCH_METRICS, NUISANCE, SCIENTIFIC_FACTORS
from study.vocabulary.tables import TRIAL_METRICS



def test_run_writes_one_row_per_trial_with_every_column(smoke_study):
    trials = pd.read_csv(smoke_study / "trials.csv")
    plan = json.loads((smoke_study / "study.json").read_text())["plan"]
    assert len(trials) == plan["num_samples"]
    assert trials["trial_id"].is_unique
    expected = {"trial_id", "cell", "status", "epochs", "best_val_acc", "best_epoch", "max_epochs"}
    expected |= set(SCIENTIFIC_FACTORS) | set(NUISANCE) | set(TRIAL_METRICS)
    assert expected <= set(trials.columns), expected - set(trials.columns)
    assert set(trials["status"]) <= {"completed", "pruned", "diverged", "error"}
    assert trials[trials.status != "error"]["val_acc"].notna().all()
    # The smoke budget's fixed precision, asked and used (no probe: fp32 in the contiguous layout).
    assert (trials["precision"] == "fp32").all() and (trials["numerics"] == "fp32").all()


def test_asha_pruned_some_trials_and_others_completed(smoke_study):
    trials = pd.read_csv(smoke_study / "trials.csv")
    pruned = trials[trials.status == "pruned"]
    completed = trials[trials.status == "completed"]
    assert len(pruned) >= 1
    assert len(completed) >= 1
    assert (pruned["epochs"] < pruned["max_epochs"]).all()
    assert (completed["epochs"] == completed["max_epochs"]).all()


def test_epochs_csv_agrees_with_trials_csv(smoke_study):
    trials = pd.read_csv(smoke_study / "trials.csv").set_index("trial_id")
    epochs = pd.read_csv(smoke_study / "epochs.csv")
    assert set(EPOCH_METRICS) | {"trial_id"} <= set(epochs.columns)
    per_trial = epochs.groupby("trial_id")
    assert set(per_trial.groups) == set(trials.index[trials.epochs > 0])
    assert (per_trial["epoch"].max() == trials.loc[list(per_trial.groups), "epochs"]).all()
    assert per_trial["val_acc"].max().round(6).equals(trials.loc[list(per_trial.groups), "best_val_acc"].round(6))
    last = epochs.sort_values("epoch").groupby("trial_id").last()
    assert (last["val_loss"].round(6) == trials.loc[last.index, "val_loss"].round(6)).all()
    # Calibration of the validation predictions, every epoch: an error and a confidence, both in [0, 1].
    assert epochs["ece"].between(0, 1).all() and epochs["conf_wrong"].dropna().between(0, 1).all()
    assert (last["ece"].round(6) == trials.loc[last.index, "ece"].round(6)).all()


def test_the_mechanism_is_measured_where_there_is_bn_and_empty_where_there_is_none(smoke_study):
    trials = pd.read_csv(smoke_study / "trials.csv").set_index("trial_id")
    epochs = pd.read_csv(smoke_study / "epochs.csv").join(trials[["bn", "status", "max_epochs"]], on="trial_id")
    per_layer = [c for c in epochs.columns if c.startswith("var_shift_bn")]
    assert per_layer == ["var_shift_bn0", "var_shift_bn1"]  # the small model: two conv blocks, one BN each
    with_bn, without = epochs[epochs["bn"] != "none"], epochs[epochs["bn"] == "none"]
    assert (with_bn[per_layer].max(axis=1).round(9) == with_bn["var_shift_max"].round(9)).all()
    assert (with_bn["var_shift_max"] >= 1).all() and (with_bn["var_shift_mean"] <= with_bn["var_shift_max"]).all()
    assert without[[*per_layer, "var_shift_max", "val_acc_bn_reestimated"]].isna().all().all()
    # Re-estimated BN after the last epoch only, so only in trials that trained it.
    reestimated = with_bn[with_bn["val_acc_bn_reestimated"].notna()]
    assert len(reestimated) and (reestimated["epoch"] == reestimated["max_epochs"]).all()
    completed = set(trials.index[(trials["bn"] != "none") & (trials["status"] == "completed")])
    assert completed and completed <= set(reestimated["trial_id"])
    cv = pd.read_csv(smoke_study / "cv.csv")
    assert cv.loc[cv["bn"] != "none", ["var_shift_max", "val_acc_bn_reestimated"]].notna().all().all()
    mechanism = json.loads((smoke_study / "report" / "conclusions.json").read_text())["mechanism"]
    assert {c["cell"] for c in mechanism["cells"] if c["var_shift"]} == {"bn=pre_act"}


def test_every_cell_gets_the_same_budget_and_a_report(smoke_study):
    trials = pd.read_csv(smoke_study / "trials.csv")
    assert trials.groupby("cell").size().to_dict() == {"bn=none": 4, "bn=pre_act": 4}
    for _, row in trials.iterrows():
        assert row["cell"] == f"bn={row['bn']}"
        assert row["p_conv"] == 0.0 and row["p_fc"] == 0.2  # normalised: no conv dropout in this space
    report = smoke_study / "report"
    assert (report / "conclusions.json").is_file() and (report / "report.html").is_file()


def test_stage_two_retrains_each_cells_best_configuration_on_new_seeds(smoke_study):
    trials = pd.read_csv(smoke_study / "trials.csv", dtype={"trial_id": str})
    cv = pd.read_csv(smoke_study / "cv.csv", dtype={"config_id": str})
    done = trials[trials.status == "completed"].sort_values(["best_val_acc", "trial_id"], ascending=[False, True])
    best = done.groupby("cell").head(1)
    assert sorted(cv["config_id"].unique()) == sorted(best["trial_id"])
    assert (cv["replicate_kind"] == "seed").all() and sorted(cv["replicate"].unique()) == [0, 1]
    assert (cv["status"] == "completed").all(), cv["error"].dropna().tolist()
    assert (cv["epochs"] == 3).all()  # the full smoke budget: no early stopping
    # New seeds, never the search trial's own; the configuration otherwise as selected.
    source = trials.set_index("trial_id").loc[cv["config_id"]]
    assert not set(cv["seed"]) & set(trials["seed"])
    assert list(source["lr"].round(12)) == list(cv["lr"].round(12))
    assert (cv["n_val"] == 100).all() and (cv["n_train"] == 400).all()


def test_the_report_draws_its_conclusions_from_the_replicates(smoke_study):
    conclusions = json.loads((smoke_study / "report" / "conclusions.json").read_text())
    assert conclusions["source"] == "replicates"
    assert conclusions["ranking"][0]["unit"] == "seeds" and conclusions["ranking"][0]["n"] == 2
    assert conclusions["search"]["best_trials"] and set(conclusions["diverged"]) == {"bn=none", "bn=pre_act"}


def test_running_again_resumes_both_stages_and_changes_nothing(smoke_study, smoke_data_dirs, capsys):
    from study.cli import main

    _, train_only = smoke_data_dirs
    before = pd.read_csv(smoke_study / "cv.csv")
    argv = ["run", "--space", str(smoke_study.parent.parent / "two_cells.yaml"), "--budget", "smoke",
            "--num-samples", "8", "--data-dir", str(train_only), "--storage", str(smoke_study.parent),
            "--name", "smoke", "--no-analyze"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"Resuming {smoke_study}\n" in out and f"Resuming {smoke_study}/cv" in out
    pd.testing.assert_frame_equal(pd.read_csv(smoke_study / "cv.csv"), before)


def test_a_broken_state_file_stops_the_resume_and_overwrites_nothing(smoke_study, smoke_data_dirs, tmp_path, capsys):
    """An emptied ASHA state file once made Tune start the experiment over, and trials.csv shrank to one row."""
    from study.cli import main

    experiment = tmp_path / "experiments" / "smoke"
    shutil.copytree(smoke_study, experiment)
    rungs = experiment / "optuna" / "asha_rungs.json"
    assert rungs.is_file()
    rungs.write_text("")
    before = {p.name: p.read_bytes() for p in experiment.iterdir() if p.is_file() and p.name != ".study.lock"}
    argv = ["run", "--space", str(smoke_study.parents[1] / "two_cells.yaml"), "--budget", "smoke", "--num-samples", "8",
            "--data-dir", str(smoke_data_dirs[1]), "--storage", str(tmp_path / "experiments"), "--name", "smoke"]
    assert main(argv) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert f"ASHA state {rungs} cannot be read" in message and "delete it to resume with empty rungs" in message
    assert {p.name: p.read_bytes() for p in experiment.iterdir() if p.is_file() and p.name != ".study.lock"} == before


def test_cv_on_folds_after_run_is_a_second_replicate_set_beside_the_seeds(smoke_study, smoke_data_dirs, tmp_path, capsys):
    """`study run` (stage 2 on seeds) then `study cv --folds 2`: both succeed, the seeds stay where they
    were, the folds go to replicates/folds-2/, and the report shows both sets."""
    from study.cli import main

    experiment = tmp_path / "smoke"
    shutil.copytree(smoke_study, experiment, ignore=shutil.ignore_patterns("report"))
    seeds = pd.read_csv(experiment / "cv.csv")
    assert main(["cv", str(experiment), "--folds", "2", "--data-dir", str(smoke_data_dirs[1])]) == 0
    out = capsys.readouterr().out
    folds_dir = experiment / "replicates" / "folds-2"
    assert "Replicate set folds-2" in out and f"Results: {folds_dir}/cv.csv" in out
    pd.testing.assert_frame_equal(pd.read_csv(experiment / "cv.csv"), seeds)  # the seeds are untouched
    folds = pd.read_csv(folds_dir / "cv.csv")
    # On 400 noisy images a fold can diverge; it is counted, never scored.
    assert set(folds["replicate_kind"]) == {"fold"} and len(folds) == 2 * 2
    assert set(folds["status"]) <= {"completed", "diverged"} and (folds["status"] == "completed").any()
    assert json.loads((folds_dir / "cv.json").read_text())["replicate_set"] == "folds-2"
    conclusions = json.loads((experiment / "report" / "conclusions.json").read_text())
    assert {s["name"] for s in conclusions["replicate_sets"]} == {"seeds-2", "folds-2"}
    assert conclusions["replicate_set"] in ("seeds-2", "folds-2") and conclusions["replicate_set_reason"]
    report = (experiment / "report" / "report.md").read_text()
    assert "## Replicate sets" in report and "seeds-2" in report and "folds-2" in report
    # Each set resumes on its own: the folds again only rewrite their tables.
    assert main(["cv", str(experiment), "--folds", "2", "--data-dir", str(smoke_data_dirs[1]), "--no-analyze"]) == 0
    assert f"Resuming {folds_dir}/tune" in capsys.readouterr().out
