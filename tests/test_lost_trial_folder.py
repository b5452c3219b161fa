"""A trial folder deleted (or cut short) after the search: the next run names it and keeps the trial's rows as
trials.csv and epochs.csv hold them, never rewriting it as a pruned trial of 0 epochs (which also made stage 2
refuse the changed table)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pandas as pd

from study.runtime.lost_results import LostTrial, keep_recorded_rows, lost_trials


class _Result:
    def __init__(self, trial_id, epoch, path, config=None):
        self.metrics = {"trial_id": trial_id, "epoch": epoch, "val_acc": 0.8, "train_loss": 0.5}
        self.path, self.config, self.error = path, config, None


def test_a_trial_with_fewer_epochs_on_disk_than_tune_remembers_is_lost():
    trials = pd.DataFrame({"trial_id": ["a", "b"], "epochs": [3, 0]})
    found = lost_trials([_Result("a", 3, "/e/a"), _Result("b", 3, "/e/b", config=None)], trials, ["bn"])
    assert found == []  # b has no config to rebuild from: not judged (a never-reported trial)
    config = {"cell": "bn=none", "bn": "none", "dropout": "none", "model": "small", "max_epochs": 3, "lr": 0.1,
              "data_dir": "/d"}
    [lost] = lost_trials([_Result("a", 3, "/e/a"), _Result("b", 3, "/e/b", config=config)], trials, ["bn"])
    assert (lost.trial_id, lost.folder, lost.remembered_epochs, lost.found_epochs) == ("b", "/e/b", 3, 0)
    assert lost.fallback["status"] == "completed" and lost.fallback["epochs"] == 3


def test_the_previous_rows_are_kept_and_the_folder_named():
    trials = pd.DataFrame({"trial_id": ["a", "b"], "status": ["completed", "pruned"], "epochs": [3, 0]})
    epochs = pd.DataFrame({"trial_id": ["a"] * 3, "epoch": [1, 2, 3]})
    before_trials = "trial_id,status,epochs\na,completed,3\nb,completed,3\n"
    before_epochs = "trial_id,epoch\na,1\na,2\na,3\nb,1\nb,2\nb,3\n"
    lost = [LostTrial("b", "/e/train_trial_b_x", 3, 0, {})]
    kept_trials, kept_epochs, warnings = keep_recorded_rows(trials, epochs, lost, before_trials, before_epochs)
    assert kept_trials.to_dict("list") == {"trial_id": ["a", "b"], "status": ["completed", "completed"], "epochs": [3, 3]}
    assert kept_epochs.groupby("trial_id").size().to_dict() == {"a": 3, "b": 3}
    [warning] = warnings
    assert "/e/train_trial_b_x is missing or damaged" in warning and "kept as they were (completed, 3 epochs)" in warning


def test_deleting_the_best_trials_folder_loses_nothing_and_stage_two_still_resumes(smoke_study, tmp_path,
                                                                                   smoke_data_dirs):
    # A fresh process, as a user's next command is: this session's Ray still holds the trials' files in its staging
    # folder, where Tune would find them.

    copy = tmp_path / "experiments" / "smoke"
    shutil.copytree(smoke_study, copy, ignore=shutil.ignore_patterns("report"))
    before = pd.read_csv(copy / "trials.csv", dtype={"trial_id": str})
    epochs_before = pd.read_csv(copy / "epochs.csv", dtype={"trial_id": str})
    best = before[before["status"] == "completed"].sort_values("best_val_acc").iloc[-1]["trial_id"]
    [folder] = copy.glob(f"train_trial_{best}_*")
    shutil.rmtree(folder)
    space = smoke_study.parent.parent / "two_cells.yaml"
    _, train_only = smoke_data_dirs
    argv = ["run", "--space", str(space), "--budget", "smoke", "--num-samples", "8", "--data-dir", str(train_only),
            "--storage", str(copy.parent), "--name", "smoke", "--no-analyze"]
    done = subprocess.run([sys.executable, "-m", "study", *argv], capture_output=True, text=True, timeout=400,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]  # stage 2 resumes: the table it was planned from is unchanged
    err = " ".join(done.stderr.split())
    assert f"trial {best}: its folder" in err and "is missing or damaged" in err and folder.name in err
    after = pd.read_csv(copy / "trials.csv", dtype={"trial_id": str})
    pd.testing.assert_frame_equal(after, before)
    key = ["trial_id", "epoch"]
    pd.testing.assert_frame_equal(
        pd.read_csv(copy / "epochs.csv", dtype={"trial_id": str}).sort_values(key, ignore_index=True),
        epochs_before.sort_values(key, ignore_index=True))
