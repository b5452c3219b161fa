"""Ctrl-C and SIGTERM stop a stage cleanly, and say so.

`fit` runs `Tuner.fit()` with the driver's SIGINT and SIGTERM turned into Ray Tune's
own graceful stop: the signal handler that Tune installs for SIGUSR1 while its loop
runs (the documented way to stop a run), which ends the loop after the current step,
saves the experiment state one last time and returns. Running trials are saved as
unfinished, so the same command resumes them from their last checkpoint. `fit` then
raises `Interrupted` instead of returning partial results, so no stage writes
final-looking tables from a run that did not finish, and the command line exits with
the shell's code for the signal (130 for SIGINT, 143 for SIGTERM).

A signal that arrives inside `fit` before Tune's loop has installed its handler, or
a second signal, stops at once: `Interrupted` with `saved` false (a resume then
starts from the last snapshot Tune wrote, as after a kill). Outside `fit`, a Ctrl-C
is Python's `KeyboardInterrupt`, and SIGTERM, once `stop_on_sigterm` has run (the
command line does so), is `Interrupted` with `saved` None: no stage was running.
`ray.init` installs a SIGTERM handler of its own (exit at once, no message);
`keep_sigterm` puts ours back after it.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager

from study.runtime.storage_full import StorageFull, install_whole_file_uploads, is_storage_full

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Tune reads this when its run starts: it then leaves SIGINT to the handler below.
TUNE_SIGINT_VARIABLE = "TUNE_DISABLE_SIGINT_HANDLER"
_stopping = threading.Event()  # set from the signal until `fit` returns: Tune's loop is winding down


class Interrupted(KeyboardInterrupt):
    """A command stopped by a signal; `saved`: after Tune saved the stage (True), at once (False), or when no
    stage was running (None)."""

    def __init__(self, signum: int, saved: bool | None = True):
        self.signum, self.saved = signum, saved
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process ended by that signal


def _outside_a_stage(signum, frame):
    raise Interrupted(signum, saved=None)


def stop_on_sigterm() -> None:
    """SIGTERM outside a stage's run raises `Interrupted` (in the main thread), as Ctrl-C raises KeyboardInterrupt."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _outside_a_stage)


def keep_sigterm(previous) -> None:
    """After `ray.init`: put back `previous` where it was ours (Ray's own handler exits without a word)."""
    if previous is _outside_a_stage and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _outside_a_stage)


def stop_requested() -> bool:
    """Whether a signal has asked the running stage to stop (for callbacks, which see Tune end its trials)."""
    return _stopping.is_set()


def fit(tuner, watch=None):
    """`tuner.fit()`; raises `Interrupted` when SIGINT or SIGTERM stopped it (Tune saved its state first), and
    `StorageFull` when a write ran out of space: one of the driver's (Tune's loop ends there; the last whole
    snapshot is kept) or a trial's, which `watch` (a `StorageWatch` among the callbacks) saw and stopped the run on."""
    install_whole_file_uploads()  # a snapshot cut short by a full disk never replaces the previous one
    with _graceful_stop() as received:
        try:
            results = tuner.fit()
        except Exception as exc:
            if is_storage_full(exc):
                raise StorageFull(_last_line(exc), saved=False) from exc
            raise
    if received:
        raise Interrupted(received[0])
    if watch is not None and watch.full:
        raise StorageFull(watch.full)
    return results


def _last_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__


@contextmanager
def _graceful_stop():
    if threading.current_thread() is not threading.main_thread():  # signals reach only the main thread
        yield []
        return
    received: list[int] = []

    def stop(signum, frame):
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if received or not callable(tune_stop) or tune_stop is stop:
            raise Interrupted(signum, saved=False)  # a second signal, or Tune's loop not running yet: stop now
        received.append(signum)
        _stopping.set()
        tune_stop(signal.SIGUSR1, frame)

    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    previous_usr1 = signal.signal(signal.SIGUSR1, stop)  # until Tune installs its own
    previous_variable = os.environ.get(TUNE_SIGINT_VARIABLE)
    os.environ[TUNE_SIGINT_VARIABLE] = "1"
    try:
        yield received
    finally:
        _stopping.clear()
        for s, handler in previous.items():
            signal.signal(s, handler)
        signal.signal(signal.SIGUSR1, previous_usr1)
        if previous_variable is None:
            os.environ.pop(TUNE_SIGINT_VARIABLE, None)
        else:
            os.environ[TUNE_SIGINT_VARIABLE] = previous_variable
