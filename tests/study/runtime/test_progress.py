"""The one-line progress display: what it counts, how it draws on a terminal and in a log, and that it pickles."""

from __future__ import annotations

import io
import pickle
from types import SimpleNamespace

from study.runtime import progress
from study.runtime.progress import StageProgress, duration, outcome

MAX_EPOCHS = 4


def trial(status: str, epoch: int = MAX_EPOCHS, best: float | None = None, cell: str = "bn=none", **last):
    result = {"epoch": epoch, "train_loss": 0.5, "val_acc": best, **last} if status != "PENDING" else {}
    return SimpleNamespace(status=status, last_result=result, config={"cell": cell}, trial_id=f"t{id(result)}",
                           metric_analysis={"val_acc": {"max": best}} if best is not None else {})


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def study_trials():
    return [
        trial("TERMINATED", best=0.81, cell="bn=pre_act"),  # completed
        trial("TERMINATED", epoch=2, best=0.70),  # pruned by ASHA
        trial("TERMINATED", epoch=1, best=0.10, diverged=True, train_loss=float("nan")),
        trial("TERMINATED", best=0.12),  # the full budget near chance: diverged too
        trial("ERROR"),
        trial("RUNNING", epoch=1, best=0.85, cell="bn=post_act"),  # the best result so far, still running
        trial("PENDING"),
    ]


def test_each_trial_is_counted_once_by_its_outcome():
    outcomes = [outcome(t, MAX_EPOCHS) for t in study_trials()]
    assert outcomes == ["completed", "pruned", "diverged", "diverged", "failed", "running", "pending"]
    display = StageProgress("search", planned=10, max_epochs=MAX_EPOCHS, stream=io.StringIO())
    display.status([], now=display._started)  # the stage's first look: nothing finished yet
    done, line = display.status(study_trials(), now=display._started + 75)
    assert done == 5
    assert line.startswith("search    5/10 ")
    assert "running 1 · pruned 1 · diverged 2 · failed 1" in line
    assert "best val_acc 0.8500 (bn=post_act)" in line
    assert line.endswith("1m15s, ~1m15s left")  # 5 finished in 75 s, 5 to go


def test_a_resumed_stage_estimates_from_what_it_finished_itself():
    display = StageProgress("stage 2", planned=4, max_epochs=MAX_EPOCHS, stream=io.StringIO())
    before = [trial("TERMINATED", best=0.8), trial("TERMINATED", best=0.8), trial("PENDING"), trial("PENDING")]
    assert display.status(before, now=display._started + 1)[1].endswith("1s, time left not known yet")
    after = [*before[:2], trial("TERMINATED", best=0.8), trial("RUNNING", epoch=1)]
    assert display.status(after, now=display._started + 30)[1].endswith("30s, ~30s left")  # 1 of its own in 30 s


def test_the_time_left_counts_down_while_the_last_trials_run():
    display = StageProgress("final", planned=3, max_epochs=MAX_EPOCHS, stream=io.StringIO())
    two_of_three = [trial("TERMINATED", best=0.9), trial("TERMINATED", best=0.9), trial("RUNNING", epoch=1)]
    display.status([], now=display._started)  # the stage's first look: nothing finished yet
    display.status(two_of_three[:1] + [trial("RUNNING", epoch=1)] * 2, now=display._started + 1000)
    assert display.status(two_of_three, now=display._started + 2000)[1].endswith("33m20s, ~16m40s left")
    assert display.status(two_of_three, now=display._started + 2600)[1].endswith("43m20s, ~6m40s left")
    assert display.status(two_of_three, now=display._started + 3100)[1].endswith("51m40s, about to finish")


def test_a_stage_without_early_stopping_is_paced_by_epochs_from_the_first_one():
    """The final's three 30-epoch seeds: the time left is known after an epoch, not after the first seed."""
    display = StageProgress("final", planned=3, max_epochs=30, metric=None, stream=io.StringIO(), to_max_epochs=True)
    display.status([], now=display._started)
    assert display.status([trial("RUNNING", epoch=2)], now=display._started + 100)[1].endswith(
        "1m40s, ~1h13m left")  # 50 s an epoch, 28 + 2 x 30 epochs to go
    assert display.status([trial("RUNNING", epoch=2)], now=display._started + 130)[1].endswith("~1h12m left")
    by_trials = StageProgress("final", planned=3, max_epochs=30, metric=None, stream=io.StringIO())
    by_trials.status([], now=by_trials._started)
    assert by_trials.status([trial("RUNNING", epoch=2)], now=by_trials._started + 100)[1].endswith("not known yet")


def test_epochs_pace_leaves_out_what_ended_early_and_what_was_trained_before_a_resume():
    display = StageProgress("stage 2", planned=3, max_epochs=MAX_EPOCHS, stream=io.StringIO(), to_max_epochs=True)
    resumed = [trial("TERMINATED", epoch=1, best=0.1, diverged=True, train_loss=float("nan")),
               trial("RUNNING", epoch=2, best=0.8)]
    assert display.status(resumed, now=display._started + 5)[1].endswith("5s, time left not known yet")
    later = [resumed[0], trial("RUNNING", epoch=3, best=0.8), trial("RUNNING", epoch=1, best=0.7)]
    # 2 epochs in 20 s since the resume; 1 + 3 to go (the diverged trial has none left)
    assert display.status(later, now=display._started + 20)[1].endswith("20s, ~40s left")


def test_in_a_log_it_prints_a_line_per_fifth_of_the_planned_trials_and_a_last_one(monkeypatch):
    log = io.StringIO()
    display = StageProgress("search", planned=100, max_epochs=MAX_EPOCHS, stream=log)
    clock = iter(range(0, 10_000))
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(clock)))
    display.setup()
    trials = [trial("PENDING") for _ in range(100)]
    for i in range(100):  # one trial ends per step, one second apart
        trials[i] = trial("TERMINATED", best=0.8)
        display.on_step_end(iteration=i, trials=trials)
    display.on_experiment_end(trials=trials)
    lines = log.getvalue().splitlines()
    # At 20, 40, 60, 80 and 100 trials, and once a minute: the 60 s line falls on the 60th trial.
    assert 5 <= len(lines) <= 7 and "\r" not in log.getvalue()
    assert lines[-1].startswith("search   100/100 ")


def test_on_a_terminal_it_redraws_one_line_in_place(monkeypatch):
    screen = Terminal()
    display = StageProgress("final", planned=3, max_epochs=MAX_EPOCHS, metric=None, stream=screen)
    clock = iter(range(0, 1000))
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(clock)))
    display.setup()
    trials = [trial("RUNNING", epoch=1), trial("PENDING"), trial("PENDING")]
    for step in range(3):
        trials[step] = trial("TERMINATED")
        display.on_step_end(iteration=step, trials=trials)
    display.on_experiment_end(trials=trials)
    text = screen.getvalue()
    assert text.count("\r") == 4 and text.count("\n") == 1 and text.endswith("\n")
    assert "best" not in text  # no score to rank final seeds by
    assert text.rstrip().rsplit("\r", 1)[-1].startswith("final    3/3 ")


def test_it_pickles_with_the_experiment_without_its_stream():
    display = StageProgress("search", planned=8, max_epochs=MAX_EPOCHS, stream=Terminal())
    copy = pickle.loads(pickle.dumps(display))
    assert copy.stream is not display.stream and copy.planned == 8


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (4.6, 187, 7500)] == ["5s", "3m07s", "2h05m"]


def test_on_a_narrow_terminal_the_bar_and_zero_counts_go_before_the_time_left():
    display = StageProgress("search", planned=10, max_epochs=MAX_EPOCHS, stream=io.StringIO())
    display.status([], now=display._started)
    trials = [trial("TERMINATED", best=0.80), trial("RUNNING", epoch=1), trial("PENDING")]
    wide = display.status(trials, now=display._started + 10)[1]
    assert "━" in wide and "diverged 0" in wide
    narrow = display.status(trials, now=display._started + 10, width=len(wide) - 10)[1]
    assert "━" not in narrow and "─" not in narrow and "diverged 0" in narrow
    narrowest = display.status(trials, now=display._started + 10, width=80)[1]
    assert narrowest == "search    1/10 · running 1 · best val_acc 0.8000 (bn=none) · 10s, ~1m30s left"


def test_trials_a_signal_stops_are_counted_interrupted_not_pruned(monkeypatch):
    log = io.StringIO()
    display = StageProgress("final", planned=4, max_epochs=MAX_EPOCHS, metric=None, stream=log)
    display.setup()
    trials = [trial("TERMINATED"), trial("RUNNING", epoch=2), trial("PENDING"), trial("PENDING")]
    display.on_step_end(iteration=0, trials=trials)
    for i in (1, 2):  # Tune ends the running seed and the one whose worker was starting, as it saves them
        trials[i] = SimpleNamespace(**{**vars(trials[i]), "status": "TERMINATED"})
    monkeypatch.setattr(progress.interruption, "stop_requested", lambda: True)
    display.on_experiment_end(trials=trials)
    last = log.getvalue().splitlines()[-1]
    assert last.startswith("final    1/4 ") and "pruned 0" in last and "interrupted 2" in last
    monkeypatch.setattr(progress.interruption, "stop_requested", lambda: False)
    display.setup()  # a new stage forgets the interruption: a trial ended short of its epochs is pruned
    line = display.status(trials)[1]
    assert "interrupted" not in line and "pruned 2" in line
