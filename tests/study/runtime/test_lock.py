"""One command at a time per experiment directory; the lock ends with its holder, however it ends."""

import fcntl
import json
import os
import subprocess
import sys

import pytest

from study.runtime.lock import LOCK_FILE, ExperimentInUse, experiment_lock

HOLDER = {"host": "head-node-7", "pid": 4242, "command": "study run", "started": "2026-12-01T10:00:00"}


def hold(experiment):
    """Take the lock as another command would (a separate open file), naming HOLDER; returns its fd."""
    experiment.mkdir(parents=True, exist_ok=True)
    fd = os.open(experiment / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, json.dumps(HOLDER).encode())
    return fd


def test_a_held_lock_stops_the_second_command_at_once_and_says_whose_it_is(tmp_path):
    fd = hold(tmp_path / "exp")
    try:
        with pytest.raises(ExperimentInUse, match="in use by `study run` \\(pid 4242 on host head-node-7"):
            with experiment_lock(str(tmp_path / "exp"), "study cv"):
                pytest.fail("the block ran although the experiment is in use")
    finally:
        os.close(fd)
    with experiment_lock(str(tmp_path / "exp"), "study cv"):  # its holder gone: free
        held = json.loads((tmp_path / "exp" / LOCK_FILE).read_text())
        assert held["pid"] == os.getpid() and held["command"] == "study cv"
    assert (tmp_path / "exp" / LOCK_FILE).read_text() == ""  # released: nobody named


def test_a_killed_holder_leaves_the_experiment_free(tmp_path):
    code = ("import sys, time; from study.runtime.lock import experiment_lock\n"
            f"with experiment_lock({str(tmp_path / 'exp')!r}, 'study run', create=True):\n"
            "    print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ExperimentInUse, match=f"pid {holder.pid}"):
            with experiment_lock(str(tmp_path / "exp"), "study run"):
                pass
    finally:
        holder.kill()  # SIGKILL: no chance to release anything
        holder.wait()
    with experiment_lock(str(tmp_path / "exp"), "study run"):
        pass


def test_the_lock_is_released_when_the_command_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with experiment_lock(str(tmp_path / "exp"), "study run", create=True):
            raise RuntimeError("a failing stage")
    with experiment_lock(str(tmp_path / "exp"), "study run"):
        pass


def test_a_missing_experiment_is_not_created_by_the_lock(tmp_path):
    with experiment_lock(str(tmp_path / "nope"), "study cv"):
        pass
    assert not (tmp_path / "nope").exists()
