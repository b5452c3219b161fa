"""Delete superseded trial checkpoints only once a resumed study can no longer need them.

Tune's `CheckpointConfig(num_to_keep=1)` deletes a trial's previous checkpoint the
moment the next one arrives, but the experiment snapshot that `Tuner.restore` reads
records the new one only at the next snapshot (Tune forces one right after, and
copies it to storage in the background). A study killed in between resumes that
trial from a checkpoint that no longer exists: Tune raises "Could not recover from
checkpoint as it does not exist on storage anymore" and the trial ends in error.
The kill-and-resume test hit exactly that window, because a trial's completion (what
the test waits for) is recorded in the same step that deletes its checkpoint.

So Tune keeps every checkpoint (`num_to_keep=None`) and this callback deletes a
superseded one only after `SNAPSHOT_LAG` more experiment snapshots have been saved,
at least `SNAPSHOT_LAG - 1` snapshot periods (Tune's period is 10 s or more) after one
that records its successor, time for that snapshot to reach storage (Tune warns when
a copy takes over 30 s). A trial's disk use stays bounded by the checkpoints of its
last few snapshot periods; trials that ended in the last periods of a study keep a
few superseded checkpoints next to their latest.
"""

from __future__ import annotations

import logging

from ray import tune

logger = logging.getLogger(__name__)

SNAPSHOT_LAG = 3


class SupersededCheckpointCleaner(tune.Callback):
    """Deletes each trial's superseded checkpoints, `SNAPSHOT_LAG` experiment snapshots late."""

    def __init__(self, snapshot_lag: int = SNAPSHOT_LAG):
        self._snapshot_lag = snapshot_lag
        self._snapshots = 0
        self._superseded: list[tuple[int, tune.Checkpoint]] = []  # (snapshots saved then, checkpoint)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        # Tune calls this before it makes `checkpoint` the trial's latest, so
        # `trial.checkpoint` is still the one it supersedes.
        previous = trial.checkpoint
        if previous is not None and previous.path != checkpoint.path:
            self._superseded.append((self._snapshots, previous))

    def get_state(self):
        """Tune asks every callback for its state while it saves an experiment snapshot:
        the snapshot clock. Nothing is saved (a resumed study starts a new list)."""
        self._snapshots += 1
        ripe = [c for n, c in self._superseded if self._snapshots - n > self._snapshot_lag]
        self._superseded = [(n, c) for n, c in self._superseded if self._snapshots - n <= self._snapshot_lag]
        for checkpoint in ripe:
            _delete(checkpoint)
        return None


def _delete(checkpoint: tune.Checkpoint) -> None:
    try:
        checkpoint.filesystem.delete_dir(checkpoint.path)
    except FileNotFoundError:
        pass
    except OSError as error:  # a storage hiccup costs disk space, never the study
        logger.warning("could not delete superseded checkpoint %s: %s", checkpoint.path, error)
