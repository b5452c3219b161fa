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
        if self.full:
            return
        text = _error_text(trial)
        if any(word in text for word in FULL_WORDS):
            self.full = next(line.strip() for line in reversed(text.splitlines()) if any(w in line for w in FULL_WORDS))
        elif not text and _nearly_full(getattr(trial, "path", None)):
            # No error file to read (the driver's staging folder may be on the full disk too): the disk says it.
            self.full = f"No space left on device: {trial.path}"
        else:
            return
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


NEARLY_FULL_BYTES = 1 << 20  # less than this free under a trial's folder: not even a checkpoint of the small model fits


def _nearly_full(path) -> bool:
    """Whether the local disk under `path` (a trial's folder; a URI is not local) has next to no space left."""
    if not path or "://" in str(path):
        return False
    folder = str(path)
    while folder and not os.path.exists(folder):
        folder = os.path.dirname(folder)
    try:
        stats = os.statvfs(folder or ".")
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < NEARLY_FULL_BYTES
