"""Superseded checkpoints are deleted only once no experiment snapshot can still name them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from ray import tune

from study.runtime.checkpoint_retention import SupersededCheckpointCleaner


def saved_checkpoint(trial_dir: Path, index: int) -> tune.Checkpoint:
    directory = trial_dir / f"checkpoint_{index:06d}"
    directory.mkdir(parents=True)
    (directory / "state.pt").write_bytes(b"weights")
    return tune.Checkpoint.from_directory(directory)


def register(cleaner: SupersededCheckpointCleaner, trial, checkpoint: tune.Checkpoint) -> None:
    """What Tune does with a reported checkpoint: callbacks first, then the trial's latest."""
    cleaner.on_checkpoint(iteration=0, trials=[trial], trial=trial, checkpoint=checkpoint)
    trial.checkpoint = checkpoint


def test_superseded_checkpoint_is_kept_until_later_snapshots_were_saved(tmp_path):
    cleaner = SupersededCheckpointCleaner(snapshot_lag=3)
    trial = SimpleNamespace(checkpoint=None)
    first, second = saved_checkpoint(tmp_path, 0), saved_checkpoint(tmp_path, 1)
    register(cleaner, trial, first)
    register(cleaner, trial, second)
    for _ in range(3):  # snapshots that may not have reached storage when a kill comes
        assert cleaner.get_state() is None
        assert Path(first.path).is_dir()
    cleaner.get_state()
    assert not Path(first.path).exists()
    assert Path(second.path).is_dir()  # the latest is never deleted


def test_each_trial_loses_only_its_own_superseded_checkpoints(tmp_path):
    cleaner = SupersededCheckpointCleaner(snapshot_lag=1)
    a, b = SimpleNamespace(checkpoint=None), SimpleNamespace(checkpoint=None)
    a_first, a_second = saved_checkpoint(tmp_path / "a", 0), saved_checkpoint(tmp_path / "a", 1)
    b_only = saved_checkpoint(tmp_path / "b", 0)
    register(cleaner, a, a_first)
    register(cleaner, b, b_only)
    register(cleaner, a, a_second)
    cleaner.get_state()
    cleaner.get_state()
    assert not Path(a_first.path).exists()
    assert Path(a_second.path).is_dir() and Path(b_only.path).is_dir()


def test_a_checkpoint_already_gone_is_no_error(tmp_path):
    cleaner = SupersededCheckpointCleaner(snapshot_lag=0)
    trial = SimpleNamespace(checkpoint=None)
    first = saved_checkpoint(tmp_path, 0)
    register(cleaner, trial, first)
    register(cleaner, trial, saved_checkpoint(tmp_path, 1))
    (Path(first.path) / "state.pt").unlink()
    Path(first.path).rmdir()
    cleaner.get_state()  # nothing to delete, nothing raised
