"""One command at a time per experiment directory; a lock left by a dead process is taken over."""

import json
import os
import socket
import subprocess

import pytest

from study.runtime.lock import LOCK_FILE, ExperimentInUse, experiment_lock


def plant(experiment, pid, host=None):
    experiment.mkdir(parents=True, exist_ok=True)
    (experiment / LOCK_FILE).write_text(json.dumps(
        {"host": host or socket.gethostname(), "pid": pid, "command": "study run", "started": "2026-12-01T10:00:00"}))


def test_a_live_holder_stops_the_second_command_at_once_and_says_whose_it_is(tmp_path):
    other = subprocess.Popen(["sleep", "30"])
    try:
        plant(tmp_path / "exp", other.pid)
        with pytest.raises(ExperimentInUse, match=f"in use by `study run` \\(pid {other.pid} on host"):
            with experiment_lock(str(tmp_path / "exp"), "study cv"):
                pytest.fail("the block ran although the experiment is in use")
        assert json.loads((tmp_path / "exp" / LOCK_FILE).read_text())["pid"] == other.pid  # left to its holder
    finally:
        other.kill()
        other.wait()


def test_a_lock_of_a_process_that_ended_is_taken_over_and_released(tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()
    plant(tmp_path / "exp", ended.pid)
    with experiment_lock(str(tmp_path / "exp"), "study run"):
        assert json.loads((tmp_path / "exp" / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / "exp" / LOCK_FILE).exists()


def test_a_lock_held_on_another_host_is_not_guessed_at(tmp_path):
    plant(tmp_path / "exp", 1, host="head-node-7")
    with pytest.raises(ExperimentInUse, match="on host head-node-7.*delete .*\\.study\\.lock"):
        with experiment_lock(str(tmp_path / "exp"), "study run"):
            pass


def test_the_lock_is_released_when_the_command_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with experiment_lock(str(tmp_path / "exp"), "study run", create=True):
            raise RuntimeError("a failing stage")
    assert not (tmp_path / "exp" / LOCK_FILE).exists()


def test_a_missing_experiment_is_not_created_by_the_lock(tmp_path):
    with experiment_lock(str(tmp_path / "nope"), "study cv"):
        pass
    assert not (tmp_path / "nope").exists()
