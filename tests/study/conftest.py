"""A hand-made experiment directory (trials.csv and study.json) on the fake dataset, and
a stand-in for `ray.tune` that runs the trainables in-process."""

from __future__ import annotations

import json

import pytest

from study.runtime import trial_worker

TRIALS_CSV = """trial_id,cell,model,bn,dropout,p_fc,status,epochs,max_epochs,best_val_acc,lr,weight_decay,batch_size,train_size,seed
t1,bn=none,small,none,fc,0.2,completed,2,2,0.80,0.05,0.0005,64,200,0
t2,bn=none,small,none,fc,0.2,completed,2,2,0.70,0.02,0.0001,64,200,0
t3,bn=pre_act,small,pre_act,fc,0.2,completed,2,2,0.90,0.03,0.0002,64,200,0
t4,bn=pre_act,small,pre_act,fc,0.2,pruned,1,2,0.95,0.01,0.0003,64,200,0
"""


@pytest.fixture
def small_experiment(tmp_path, fake_data_dir):
    """Four trials in two cells, and the shared settings `study run` records in study.json."""
    experiment = tmp_path / "experiment"
    experiment.mkdir()
    (experiment / "trials.csv").write_text(TRIALS_CSV)
    shared = {"model": "small", "dropout": "fc", "p_fc": 0.2, "max_epochs": 2, "batch_size": 64, "train_size": 200,
              "val_size": 100, "data_dir": str(fake_data_dir), "seed": 0, "device": "cpu"}
    plan = {"param_space": shared, "budget": {"cpus_per_trial": 1, "gpus_per_trial": 0}, "seed": 3}
    (experiment / "study.json").write_text(json.dumps({"plan": plan}))
    return experiment


class FakeTune:
    """Stands in for `ray.tune` inside the trainables: records reports, hands no checkpoint."""

    def __init__(self):
        self.reports: list[dict] = []
        self.Checkpoint = self  # tune.Checkpoint.from_directory(...)

    def from_directory(self, directory):
        return None

    def get_checkpoint(self):
        return None

    def get_context(self):
        raise RuntimeError("no Tune session")

    def report(self, metrics, checkpoint=None):
        self.reports.append(dict(metrics))


@pytest.fixture
def fake_tune(monkeypatch):
    """The trainables' `tune`, replaced for this test; returns the stand-in with its reports."""
    fake = FakeTune()
    monkeypatch.setattr(trial_worker, "tune", fake)
    return fake
