"""The Ray trainable: resumes from a checkpoint, and a diverged trial fails alone."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from study import trainable, trial_worker

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


def test_bad_config_value_names_the_key(fake_data_dir, monkeypatch):
    monkeypatch.setattr(trial_worker, "tune", FakeTune())
    with pytest.raises(ValueError, match="'p_fc' has invalid value 1.5"):
        trainable.train_trial(_config(fake_data_dir, p_fc=1.5))


def test_a_diverging_trial_errors_and_the_others_complete(fake_data_dir, ray_session, tmp_path):
    from ray import tune

    tuner = tune.Tuner(
        trainable.train_trial,
        param_space=_config(fake_data_dir, max_epochs=2, lr=tune.grid_search([0.05, 10.0]), momentum=0.99, schedule="none"),
        # One trial at a time: the healthy trial's worker is reused, one PyTorch import instead of two.
        tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="diverge", verbose=0),
    )
    results = tuner.fit()
    by_lr = {r.config["lr"]: r for r in results}
    assert by_lr[10.0].error is not None and "nan" in str(by_lr[10.0].error)
    assert by_lr[0.05].error is None
    assert by_lr[0.05].metrics["epoch"] == 2

