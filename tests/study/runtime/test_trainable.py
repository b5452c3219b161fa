"""The Ray trainable: resumes from a checkpoint (loaded with weights_only=True), and a
diverged trial ends normally, alone, with status `diverged`."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from study.runtime import trainable

from study.runtime import trial_worker
from study.runtime.results import tables_from_results

EPOCH_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")


def _config(data_dir, **overrides) -> dict:
    config = {
        "model": "small", "bn": "pre_act", "dropout": "fc", "p_fc": 0.2, "data_dir": str(data_dir),
        "val_size": 100, "batch_size": 64, "max_epochs": 3, "lr": 0.05, "augment": True, "device": "cpu",
    }
    config.update(overrides)
    return config


class Interrupted(Exception):
    pass


class FakeTune:
    """Stands in for `ray.tune` inside the trainable: records reports, keeps checkpoints."""

    def __init__(self, checkpoint=None, stop_after: int | None = None):
        self.reports: list[dict] = []
        self.checkpoints: list[Path] = []
        self.start_checkpoint = checkpoint
        self.stop_after = stop_after
        self.Checkpoint = self  # tune.Checkpoint.from_directory(...)
        self.keep = Path(tempfile.mkdtemp())

    def from_directory(self, directory):
        saved = self.keep / f"ckpt{len(self.checkpoints)}"
        shutil.copytree(directory, saved)  # Tune persists the directory before it is deleted
        return FakeCheckpoint(saved)

    def get_checkpoint(self):
        return self.start_checkpoint

    def get_context(self):
        raise RuntimeError("no Tune session")

    def report(self, metrics, checkpoint=None):
        self.reports.append(dict(metrics))
        self.checkpoints.append(checkpoint)
        if self.stop_after is not None and len(self.reports) >= self.stop_after:
            raise Interrupted


class FakeCheckpoint:
    def __init__(self, path):
        self.path = path

    def as_directory(self):
        import contextlib

        return contextlib.nullcontext(str(self.path))


def _rows(reports):
    return [tuple(r[k] for k in EPOCH_KEYS) for r in reports]


def test_a_trial_handed_a_checkpoint_continues_where_it_stopped(fake_data_dir, monkeypatch):
    straight = FakeTune()
    monkeypatch.setattr(trial_worker, "tune", straight)
    trainable.train_trial(_config(fake_data_dir))
    assert [r["epoch"] for r in straight.reports] == [1, 2, 3]

    first = FakeTune(stop_after=2)
    monkeypatch.setattr(trial_worker, "tune", first)
    with pytest.raises(Interrupted):
        trainable.train_trial(_config(fake_data_dir))

    resumed = FakeTune(checkpoint=first.checkpoints[-1])
    monkeypatch.setattr(trial_worker, "tune", resumed)
    trainable.train_trial(_config(fake_data_dir))
    assert [r["epoch"] for r in resumed.reports] == [3]  # did not start over
    assert _rows(first.reports + resumed.reports) == _rows(straight.reports)


# Each optimizer and each schedule at least once: their state dicts must all load with
# weights_only=True (LambdaLR keeps no lambda in its state dict; OneCycleLR a string).
@pytest.mark.parametrize(("optimizer", "schedule"), [("sgd", "onecycle"), ("adamw", "cosine"), ("sgd", "none")])
def test_a_checkpoint_loads_weights_only_and_resumes_the_same_numbers(fake_data_dir, monkeypatch, optimizer, schedule):
    config = _config(fake_data_dir, max_epochs=2, optimizer=optimizer, schedule=schedule,
                     lr=0.05 if optimizer == "sgd" else 0.003)
    straight = FakeTune()
    monkeypatch.setattr(trial_worker, "tune", straight)
    trainable.train_trial(config)

    first = FakeTune(stop_after=1)
    monkeypatch.setattr(trial_worker, "tune", first)
    with pytest.raises(Interrupted):
        trainable.train_trial(config)
    saved = torch.load(first.checkpoints[-1].path / trial_worker.CHECKPOINT_FILE, weights_only=True)
    assert set(saved) == {"model", "optimizer", "scheduler", "epoch", "history", "rng", "config", "numerics"}

    resumed = FakeTune(checkpoint=first.checkpoints[-1])
    monkeypatch.setattr(trial_worker, "tune", resumed)
    trainable.train_trial(config)
    assert [r["epoch"] for r in resumed.reports] == [2]
    assert _rows(first.reports + resumed.reports) == _rows(straight.reports)


class Payload:
    """Unpickling this runs code (`__reduce__`): what weights_only=True must refuse."""

    def __reduce__(self):
        return (print, ("code ran from a checkpoint",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, monkeypatch):
    torch.save({"model": Payload()}, tmp_path / trial_worker.CHECKPOINT_FILE)
    monkeypatch.setattr(trial_worker, "tune", FakeTune(checkpoint=FakeCheckpoint(tmp_path)))
    with pytest.raises(Exception, match="Weights only load failed"):
        trial_worker._saved_state(torch.device("cpu"))


def test_a_diverging_trial_reports_its_last_epoch_and_returns(fake_data_dir, monkeypatch):
    tune = FakeTune()
    monkeypatch.setattr(trial_worker, "tune", tune)
    trainable.train_trial(_config(fake_data_dir, lr=9.0, optimizer="sgd"))  # returns: no exception for Ray to retry
    assert [r["epoch"] for r in tune.reports] == [1]  # stopped after the diverged epoch, of 3
    last = tune.reports[-1]
    assert last["diverged"] is True and last["train_loss"] != last["train_loss"]  # NaN
    assert "val_acc" in last  # validated as usual

    # Handed the diverged epoch's checkpoint (a retry, a resumed study): it does not train NaN weights.
    again = FakeTune(checkpoint=tune.checkpoints[-1])
    monkeypatch.setattr(trial_worker, "tune", again)
    trainable.train_trial(_config(fake_data_dir, lr=9.0, optimizer="sgd"))
    assert again.reports == []


def test_bad_config_value_names_the_key(fake_data_dir, monkeypatch):
    monkeypatch.setattr(trial_worker, "tune", FakeTune())
    with pytest.raises(ValueError, match="'p_fc' has invalid value 1.5"):
        trainable.train_trial(_config(fake_data_dir, p_fc=1.5))


def test_a_diverging_trial_ends_diverged_and_the_others_complete(fake_data_dir, ray_session, tmp_path):
    from ray import tune

    from study.runtime.ray_session import run_config

    tuner = tune.Tuner(
        trainable.train_trial,
        param_space=_config(fake_data_dir, max_epochs=2, lr=tune.grid_search([0.05, 10.0]), momentum=0.99, schedule="none"),
        # One trial at a time: the healthy trial's worker is reused, one PyTorch import instead of two.
        tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=True),
        # The study's own run settings: its result loggers are what trials.csv is read from.
        run_config=run_config(str(tmp_path), "diverge"),
    )
    results = tuner.fit()
    by_lr = {r.config["lr"]: r for r in results}
    assert by_lr[10.0].error is None  # ended normally: not an error, nothing to retry
    assert by_lr[10.0].metrics["diverged"] is True and by_lr[10.0].metrics["epoch"] == 1
    assert by_lr[0.05].error is None
    assert by_lr[0.05].metrics["epoch"] == 2 and by_lr[0.05].metrics["diverged"] is False
    trials, epochs = tables_from_results(results, ["bn"])
    status = dict(zip(trials["lr"], trials["status"]))
    assert status == {10.0: "diverged", 0.05: "completed"}
    assert {"train_eval_loss", "train_eval_acc"} <= set(epochs.columns) and trials["train_eval_loss"].notna().any()



def test_checkpoint_folders_of_ended_workers_are_removed_and_live_ones_kept(tmp_path):
    import subprocess

    from study.runtime.trial_worker import STAGING_PREFIX, remove_abandoned_staging

    ended = subprocess.Popen(["true"])
    ended.wait()
    abandoned = tmp_path / f"{STAGING_PREFIX}{ended.pid}-abc"
    live = tmp_path / f"{STAGING_PREFIX}{os.getpid()}-def"
    for folder in (abandoned, live):
        folder.mkdir()
        (folder / "state.pt").write_bytes(b"x")
    remove_abandoned_staging(str(tmp_path))
    assert not abandoned.exists() and live.exists()
