"""The private Ray Tune API the per-cell scheduler relies on, in one place (tested with Ray 2.60).

`study.tuning.cell_scheduler` runs one `ASHAScheduler` per cell and persists each
cell's rungs so a resumed study keeps them. ASHA keeps its rungs in
`_brackets[i]._rungs` (a list of ``(milestone, {trial_id: recorded metric})``,
highest milestone first) and the trials it knows in `_trial_info`; no public API
reads or restores them.

An experiment moved (or synced back to another place) resumes: Tune points the
trials it restores at the experiment's new place, but its search generator keeps
the experiment as it was pickled, so a trial created after the resume would write
to the old place. `follow_moved_experiment` (called by the schedulers' `on_trial_add`)
gives such a trial the storage of the running `TuneController` (`_storage`), as Tune
does for restored trials.

The searcher and scheduler come back from ``tuner.pkl`` too, with the journal folder
of the first run; `tune_config_of` reaches them (`Tuner._local_tuner._tune_config`)
so `study.tuning.run` can point them at the experiment's current place.

`set_callbacks` sets the console output and the trackers of a fit, restored Tuners'
included (`Tuner._local_tuner.get_run_config()`).

`tests/study/tuning/test_private_apis.py` pins what these helpers rely on (and
tests/test_resume.py the move), and pyproject.toml bounds Ray to the versions tested.
"""

from __future__ import annotations

import copy

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from study.runtime.progress import StageProgress, tune_console_output
from study.runtime.storage_watch import StorageWatch
from study.runtime.tracking import is_tracker


def rungs(asha: ASHAScheduler) -> list[tuple[float, dict]]:
    """The single bracket's rungs, highest milestone first: (milestone, {trial_id: recorded metric}).

    The dicts are ASHA's own: updating one changes what ASHA compares against.
    """
    return asha._brackets[0]._rungs


def rung_sizes(asha: ASHAScheduler) -> tuple[int, ...]:
    """How many results each rung of each bracket has recorded (a change means the state moved)."""
    return tuple(len(recorded) for bracket in asha._brackets for _, recorded in bracket._rungs)


def tracks(asha: ASHAScheduler, trial_id: str) -> bool:
    """Whether ASHA was told about the trial (on_trial_add) and still holds it."""
    return trial_id in asha._trial_info


def describe(asha: ASHAScheduler) -> str:
    """ASHA's own one-line description of every bracket."""
    return " | ".join(bracket.debug_str() for bracket in asha._brackets)


def follow_moved_experiment(tune_controller, trial) -> None:
    """Give `trial` the experiment's current storage when it still points at an earlier place."""
    current, storage = getattr(tune_controller, "_storage", None), trial.storage
    if current is None or storage is None:
        return
    if (storage.storage_fs_path, storage.experiment_dir_name) == (current.storage_fs_path, current.experiment_dir_name):
        return
    moved = copy.copy(storage)
    moved.storage_filesystem = current.storage_filesystem
    moved.storage_fs_path = current.storage_fs_path
    moved.experiment_dir_name = current.experiment_dir_name
    trial.set_storage(moved)  # as TuneController._restore_trials does for the trials it restores


class MovableFIFOScheduler(FIFOScheduler):
    """Tune's default scheduler, with trials created after a resume following a moved experiment."""

    def on_trial_add(self, tune_controller, trial) -> None:
        follow_moved_experiment(tune_controller, trial)
        super().on_trial_add(tune_controller, trial)


def tune_config_of(tuner) -> "tune.TuneConfig":
    """The TuneConfig a (restored) Tuner will run with: its searcher and scheduler are the ones `fit` uses."""
    return tuner._local_tuner._tune_config


def set_callbacks(tuner: tune.Tuner, display: tune.Callback | None, trackers: list | None = None) -> StorageWatch:
    """The console output and the trackers of `tuner`'s fit: `display` alone (Tune's own output off:
    verbose 0), or Tune's own (verbose 1) when it is None; `trackers` (`study.runtime.tracking`) log it.

    A restored Tuner brings back the run config pickled with it, callbacks and verbosity
    included (`Tuner._local_tuner.get_run_config()`: no public API changes them), so this
    runs for new and restored Tuners alike and replaces the display and trackers a first run pickled.
    Returns the `StorageWatch` it adds, for `interruption.fit`.
    """
    config = tuner._local_tuner.get_run_config()
    kept = [callback for callback in (config.callbacks or [])
            if not isinstance(callback, (StageProgress, StorageWatch)) and not is_tracker(callback)]
    watch = StorageWatch()  # a trial that ran out of space stops the stage (study.runtime.storage_full)
    config.callbacks = kept + [watch] + list(trackers or []) + ([display] if display is not None else [])
    config.verbose = 0 if display is not None else 1
    tune_console_output(on=display is None)
    return watch
