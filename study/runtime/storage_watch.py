"""`StorageWatch`: the Tune callback that stops a stage at the first trial that ran out of space
(`study.runtime.storage_full` says why)."""

from __future__ import annotations

import os
import signal

from ray import tune

from study.runtime.storage_full import FULL_WORDS


class StorageWatch(tune.Callback):
    """Stops the run (Tune's graceful stop, the handler Tune installs for SIGUSR1) when a trial failed for lack of
    space: every later trial would fail the same way, and a stage that goes on writes a table of failures."""

    def __init__(self):
        self.full = ""

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._check(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._check(trial)

    def _check(self, trial) -> None:
        text = _error_text(trial)
        if self.full or not any(word in text for word in FULL_WORDS):
            return
        self.full = next((line.strip() for line in reversed(text.splitlines()) if any(w in line for w in FULL_WORDS)),
                         "No space left on device")
        stop = signal.getsignal(signal.SIGUSR1)
        if callable(stop):
            stop(signal.SIGUSR1, None)


def _error_text(trial) -> str:
    """The error Tune recorded for the trial (its error file in the driver's staging folder), or ''."""
    try:
        path = trial.error_file
        if path and os.path.isfile(path):
            with open(path, errors="replace") as stream:
                return stream.read()[-20000:]
    except (OSError, AttributeError):
        pass
    return ""
