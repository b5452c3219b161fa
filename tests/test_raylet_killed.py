"""The embedded Ray's raylet killed mid-search: the command ends with its own message and the resume command (it
ended 14 s later with exit 1, Ray's log dump and ActorDiedError tracebacks), and that command resumes it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from study.runtime import raylet_watch
from study.runtime.raylet_watch import EXIT_CODE, raylet_message



def _descendants(pid: int) -> list[int]:
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    children.setdefault(int(stat.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _raylet_of(pid: int) -> int | None:
    for child in _descendants(pid):
        try:
            with open(f"/proc/{child}/comm") as comm:
                if comm.read().strip() == "raylet":
                    return child
        except OSError:
            pass
    return None


def test_the_message_names_the_raylet_and_the_resume_command():
    text = raylet_message(123, -9, ["run", "--name", "my study"])
    assert "raylet, pid 123" in text and "killed by signal 9" in text
    assert text.endswith("Resume with the same command:\n  study run --name 'my study'")


class _EndedRaylet:
    pid = 4242

    def poll(self):
        return -9


@pytest.mark.parametrize(("connected", "exits"), [(True, True), (False, False)])
def test_the_watch_ends_the_process_only_while_the_driver_is_connected(monkeypatch, connected, exits):
    """A raylet that ends under a connected driver was killed; after `ray.shutdown()` (the driver disconnected
    first) it ended on purpose, and a later command in the same process must not be ended by an old watch."""
    exited = []

    def record_exit(code):
        exited.append(code)
        raise SystemExit(code)  # as os._exit would, the watch goes no further

    monkeypatch.setattr(raylet_watch, "_driver_connected", lambda: connected)
    monkeypatch.setattr(raylet_watch.os, "_exit", record_exit)
    monkeypatch.setattr(raylet_watch, "POLL_S", 0.01)
    raylet_watch._stopped.clear()
    with pytest.raises(SystemExit) if exits else contextlib.nullcontext():
        raylet_watch._watch(_EndedRaylet())  # the first poll sees the raylet ended
    assert exited == ([EXIT_CODE] if exits else [])


@pytest.mark.faults
def test_a_killed_raylet_ends_the_search_with_the_resume_command_and_it_resumes(tmp_path, fake_data_dir, two_cell_space):
    argv = ["run", "--budget", "smoke", "--space", str(two_cell_space), "--num-samples", "8", "--data-dir", str(fake_data_dir),
            "--storage", str(tmp_path / "e"), "--name", "a", "--no-analyze"]
    process = subprocess.Popen([sys.executable, "-m", "study", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:  # a trial under way: the search is running
            if list((tmp_path / "e" / "a").glob("train_trial_*")):
                break
            time.sleep(0.2)
        raylet = _raylet_of(process.pid)
        assert raylet is not None and process.poll() is None
        os.kill(raylet, signal.SIGKILL)
        killed = time.monotonic()
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == EXIT_CODE, err[-3000:]
    assert time.monotonic() - killed < 15
    text = " ".join(err.split())
    assert f"raylet, pid {raylet}) ended unexpectedly (killed by signal 9" in text and "this is a bug" not in text
    assert err.rstrip().endswith("study " + " ".join(argv))

    again = subprocess.run([sys.executable, "-m", "study", *argv], capture_output=True, text=True, cwd=tmp_path,
                           timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(pd.read_csv(tmp_path / "e" / "a" / "trials.csv")) == 8
