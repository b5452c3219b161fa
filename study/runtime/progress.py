"""One glance at a running stage: trials done of planned, running, pruned, diverged, failed, the best so far.

`StageProgress` is a Tune callback that replaces Tune's own console output (one boxed
configuration table per trial and a status table every few seconds). It reads the
state of every trial from the list Tune hands each callback, so a resumed stage shows
the trials finished before the interruption too. On a terminal it redraws one line in
place, a few times a second at most:

    search   23/48 ━━━━━━━━━━━━──────────── · running 2 · pruned 9 · diverged 0 · failed 0 · best val_acc 0.8120 (bn=pre_act,dropout=fc) · 1m12s, ~1m15s left

Elsewhere (CI, `ray job logs`, a file) it prints such a line at every fifth of the
planned trials and at least once a minute, so a log stays short and shows progress.

When Ctrl-C or SIGTERM stops a stage, Tune ends its running and starting trials as it
saves them; the last line counts those as "interrupted", not pruned: they resume.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from typing import TextIO

from pathlib import Path

from ray import tune

from study.runtime import interruption
from study.vocabulary.factors import is_diverged

BAR_WIDTH = 24
REDRAW_S = 0.25  # on a terminal
PLAIN_PERIOD_S = 60.0  # elsewhere, a line at least this often while trials run
PLAIN_STEPS = 5  # ... and one at every fifth of the planned trials
ENDED = ("TERMINATED", "ERROR")  # Tune's statuses of a trial that trains no more in this run


RAY_LOG = "ray.log"  # where Ray's own log lines go while the display runs


def ray_log_to_file(folder: str | Path) -> Path:
    """Send Ray's own log lines (its start, its warnings, Tune's notes) to `folder`/ray.log instead of the
    console, where they would break up the display; errors still reach the console too. Returns the file."""
    path = Path(folder) / RAY_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("ray")
    if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path.resolve() for h in logger.handlers):
        handler = _LogFile(path, delay=True)  # written when Ray first logs
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    for handler in logger.handlers:
        if type(handler) is not logging.FileHandler:  # Ray's console handler
            handler.setLevel(logging.ERROR)
    return path


class _LogFile(logging.FileHandler):
    """ray.log. A line that cannot be written (a full disk) is dropped without a word: logging's default prints a
    traceback per line, hundreds of them, over the one message that says what happened."""

    def handleError(self, record):  # noqa: N802 - logging's name
        pass


def tune_console_output(on: bool) -> None:
    """Tune's own console output on or off (with the run config's verbosity 0). Off needs Tune's older
    output engine: the newer one prints each experiment's configuration box even at verbosity 0."""
    if on:
        os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
    else:
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"


def duration(seconds: float) -> str:
    """'45s', '3m07s', '2h05m'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def outcome(trial, max_epochs: int) -> str:
    """running, completed, pruned, diverged, failed or pending, from a Tune trial's status and last result."""
    if trial.status == "ERROR":
        return "failed"
    if trial.status == "RUNNING":
        return "running"
    if trial.status != "TERMINATED":
        return "pending"
    last = trial.last_result or {}
    epoch = int(last.get("epoch") or 0)
    if last.get("diverged") or is_diverged(float(last.get("train_loss", 0.0)), last.get("val_acc"), epoch >= max_epochs):
        return "diverged"
    return "completed" if epoch >= max_epochs else "pruned"


class StageProgress(tune.Callback):
    """The compact display of one stage (`stage`: 'search', 'stage 2', 'final') of `planned` trials.

    `metric` is the score whose maximum over a trial's results is "best so far" (with the
    trial's `cell`, or its `config_id` in stage 2), or None for a stage with none to show.
    `to_max_epochs` says that every trial trains `max_epochs` unless it diverges or fails (no
    early stopping: stage 2, the final): the time left is then paced by the epochs trained,
    known from the first epoch, not by the trials finished (the final's first seed takes a
    third of the run).
    """

    def __init__(self, stage: str, planned: int, max_epochs: int, metric: str | None = "val_acc",
                 stream: TextIO | None = None, to_max_epochs: bool = False):
        self.stage, self.planned, self.max_epochs, self.metric = stage, planned, max_epochs, metric
        self.to_max_epochs = to_max_epochs
        self._stream = stream
        self._reset()

    def _reset(self) -> None:
        self._started = time.monotonic()
        self._work_at_start: int | None = None  # trials finished, or epochs trained, when the stage started
        self._last_work: tuple[int, float] = (0, 0.0)  # (that count, elapsed s) when the count was first seen
        self._last_draw = self._last_look = -math.inf
        self._last_step = 0  # a log gets its first line once a fifth of the trials are done, or after a minute
        self._line = ""
        self._unfinished: set[str] = set()  # trial ids neither terminated nor failed at Tune's last step
        self._interrupted: set[str] = set()  # those a signal stopped: Tune ends them, but they resume

    # Tune pickles its callbacks with the experiment (tuner.pkl): the stream stays out (`setup` resets the rest).
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_stream"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _stream=None)

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout

    def setup(self, **info) -> None:
        self._reset()

    def on_step_end(self, iteration, trials, **info) -> None:
        # Every step, not only when the line is redrawn: at a signal's stop this must be exact.
        self._unfinished = {t.trial_id for t in trials if t.status not in ENDED}
        self._update(trials)

    def on_experiment_end(self, trials, **info) -> None:
        if interruption.stop_requested():
            self._interrupted = self._unfinished  # rebound at every step, never changed in place
        self._update(trials, force=True)
        if self._terminal():
            self.stream.write("\n")
            self.stream.flush()

    def status(self, trials, now: float | None = None, width: int | None = None) -> tuple[int, str]:
        """(trials finished, the line the display shows) for these trials; within `width` columns when given,
        the bar and the zero counts go first, so the counts, the best and the time left stay on screen."""
        counts = {name: 0 for name in ("running", "completed", "pruned", "diverged", "failed", "pending",
                                       "interrupted")}
        for trial in trials:
            name = outcome(trial, self.max_epochs)
            if trial.trial_id in self._interrupted and name in ("pruned", "diverged"):  # ended short by Tune
                name = "interrupted"
            counts[name] += 1
        done = counts["completed"] + counts["pruned"] + counts["diverged"] + counts["failed"]
        elapsed = (now if now is not None else time.monotonic()) - self._started
        planned = max(self.planned, len(trials))
        filled = round(BAR_WIDTH * done / planned) if planned else BAR_WIDTH
        head = f"{self.stage:<8} {done:>{len(str(planned))}}/{planned}"
        bar = f" {'━' * filled}{'─' * (BAR_WIDTH - filled)}"
        shown = ("running", "pruned", "diverged", "failed", *(["interrupted"] if counts["interrupted"] else []))
        best = self._best(trials)
        tail = ([f"best {self.metric} {best[0]:.4f} ({best[1]})"] if best is not None else []) + [
            duration(elapsed) + self._remaining(done >= planned, *self._work(trials, done, planned), elapsed)]

        def line(with_bar: bool, zero_counts: bool) -> str:
            counts_part = " · ".join(f"{name} {counts[name]}" for name in shown if zero_counts or counts[name])
            return " · ".join([head + (bar if with_bar else ""), *([counts_part] if counts_part else []), *tail])

        for with_bar, zero_counts in ((True, True), (False, True), (False, False)):
            text = line(with_bar, zero_counts)
            if width is None or len(text) < width:
                break
        return done, text

    def _work(self, trials, done: int, planned: int) -> tuple[int, int]:
        """(units done, units left): trials finished and to finish, or with `to_max_epochs` epochs trained and to
        train (a trial that ended early, diverged or failed, has none left)."""
        if not self.to_max_epochs:
            return done, planned - done
        trained = left = 0
        for trial in trials:
            epoch = int((trial.last_result or {}).get("epoch") or 0)
            trained += epoch
            if trial.status not in ENDED:
                left += max(self.max_epochs - epoch, 0)
        return trained, left + max(planned - len(trials), 0) * self.max_epochs

    def _remaining(self, finished: bool, work_done: int, work_left: int, elapsed: float) -> str:
        """The time left at the pace of the work this stage did itself (a resumed stage's earlier work took no
        time here), counted from the last unit to finish: while the next runs, the estimate counts down instead
        of growing with the time since."""
        if self._work_at_start is None:
            self._work_at_start = work_done
        if work_done != self._last_work[0]:
            self._last_work = (work_done, elapsed)
        if finished:
            return ""
        done_here = work_done - self._work_at_start
        if done_here <= 0:
            return ", time left not known yet"
        at_last_work = self._last_work[1]
        left = at_last_work / done_here * work_left - (elapsed - at_last_work)
        return f", ~{duration(left)} left" if left >= 1 else ", about to finish"

    def _best(self, trials) -> tuple[float, str] | None:
        if self.metric is None:
            return None
        best = None
        for trial in trials:
            value = (trial.metric_analysis.get(self.metric) or {}).get("max")
            if value is not None and math.isfinite(value) and (best is None or value > best[0]):
                config = trial.config or {}
                best = (value, str(config.get("cell") or config.get("config_id") or trial.trial_id))
        return best

    def _terminal(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def _update(self, trials, force: bool = False) -> None:
        # Tune calls on_step_end many times a second: look at most every REDRAW_S.
        now = time.monotonic()
        if not force and now - self._last_look < REDRAW_S:
            return
        self._last_look = now
        width = shutil.get_terminal_size((120, 20)).columns if self._terminal() else None
        done, line = self.status(trials, now, width)
        if width is not None:
            self.stream.write("\r" + line[: width - 1].ljust(min(len(self._line), width - 1)))
        else:
            step = done * PLAIN_STEPS // max(self.planned, 1)
            if not (force and line != self._line or step > self._last_step or now - self._last_draw >= PLAIN_PERIOD_S):
                return
            self.stream.write(line + "\n")
            self._last_step = step
        self.stream.flush()
        self._line, self._last_draw = line, now
