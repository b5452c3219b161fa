"""`interruption.fit`: SIGINT and SIGTERM become Tune's graceful stop, then `Interrupted`.

A stand-in for Tune's loop installs a SIGUSR1 handler as `tune.run` does, and stops
when it fires; the whole-study behaviour is tested in tests/test_resume.py.
"""

import os
import signal

import pytest

from study.runtime import interruption
from study.runtime.interruption import Interrupted


class LoopLikeTune:
    """Installs a SIGUSR1 stop handler, signals itself mid-loop, and returns when stopped."""

    def __init__(self, signum):
        self.signum, self.stopped, self.steps = signum, False, 0

    def fit(self):
        def tune_stop(sig, frame):
            self.stopped = True

        signal.signal(signal.SIGUSR1, tune_stop)
        while not self.stopped and self.steps < 1000:
            self.steps += 1
            if self.steps == 3:
                os.kill(os.getpid(), self.signum)
        return "results"


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_run_stops_the_loop_gracefully_then_raises(signum, code):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    tuner = LoopLikeTune(signum)
    with pytest.raises(Interrupted) as raised:
        interruption.fit(tuner)
    assert tuner.stopped and tuner.steps < 1000  # the loop ended through its own stop, not by an exception
    assert raised.value.exit_code == code and raised.value.signal_name == signal.Signals(signum).name
    assert raised.value.saved
    assert {s: signal.getsignal(s) for s in before} == before  # the driver's handlers are back
    assert interruption.TUNE_SIGINT_VARIABLE not in os.environ


def test_an_uninterrupted_run_returns_its_results():
    class Quiet:
        def fit(self):
            return "results"

    assert interruption.fit(Quiet()) == "results"


def test_a_signal_before_the_loop_runs_stops_at_once():
    class NotStarted:
        def fit(self):  # restoring, connecting: Tune's handler is not installed yet
            os.kill(os.getpid(), signal.SIGTERM)
            return "never"

    with pytest.raises(Interrupted) as raised:
        interruption.fit(NotStarted())
    assert not raised.value.saved and raised.value.exit_code == 143  # SIGTERM's code, not Ctrl-C's


def test_sigterm_outside_a_stage_says_no_stage_was_running(monkeypatch):
    previous = signal.getsignal(signal.SIGTERM)
    try:
        interruption.stop_on_sigterm()
        with pytest.raises(Interrupted) as raised:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
        assert raised.value.saved is None and raised.value.exit_code == 143
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_ray_init_does_not_take_sigterm_over(monkeypatch, init_calls):
    from study.runtime import ray_session

    def ray_init(**kwargs):  # what ray.init does to the driver: a handler that exits without a word
        signal.signal(signal.SIGTERM, lambda signum, frame: None)

    monkeypatch.setattr(ray_session.ray, "init", ray_init)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        interruption.stop_on_sigterm()
        ray_session.connect(None)
        assert signal.getsignal(signal.SIGTERM) is interruption._outside_a_stage
    finally:
        signal.signal(signal.SIGTERM, previous)
