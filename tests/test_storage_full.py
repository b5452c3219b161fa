"""A full disk under the experiment: the stage stops with its own message and the resume command (exit 74), every
state file stays whole, and after room is made the same command resumes, retraining no finished trial.

The end-to-end test needs a small tmpfs (`mount`, as root); elsewhere it is skipped, and the unit tests below
cover the same paths with writes patched to raise ENOSPC.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from study.runtime.storage_full import StorageFull, is_storage_full, whole_file_copy

ENOSPC = OSError(errno.ENOSPC, "No space left on device")



def test_a_copy_cut_short_leaves_the_previous_file_whole(tmp_path):
    destination = tmp_path / "experiment"
    destination.mkdir()
    (destination / "experiment_state.json").write_text('{"old": "whole"}')

    def copy_that_fills_the_disk(source, target, **kwargs):
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / "experiment_state.json").write_text('{"new": "trunc')  # half written, then the disk is full
        raise ENOSPC

    with pytest.raises(OSError) as caught:
        whole_file_copy(copy_that_fills_the_disk, "src", str(destination), None, None)
    assert caught.value.errno == errno.ENOSPC
    assert json.loads((destination / "experiment_state.json").read_text()) == {"old": "whole"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment"]  # the partial copy is gone

    def copy_that_works(source, target, **kwargs):
        (Path(target) / "sub").mkdir(parents=True, exist_ok=True)
        (Path(target) / "experiment_state.json").write_text('{"new": "whole"}')
        (Path(target) / "sub" / "params.json").write_text("{}")

    whole_file_copy(copy_that_works, "src", str(destination), None, None)
    assert json.loads((destination / "experiment_state.json").read_text()) == {"new": "whole"}
    assert (destination / "sub" / "params.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment"]


def test_a_full_disk_is_recognised_however_ray_wraps_it():
    assert is_storage_full(ENOSPC) and is_storage_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    wrapped = RuntimeError("ray::ImplicitFunc.train() ... OSError: [Errno 28] Error writing bytes to file.")
    assert is_storage_full(wrapped)
    try:
        try:
            raise ENOSPC
        except OSError as inner:
            raise ValueError("journal append failed") from inner
    except ValueError as outer:
        assert is_storage_full(outer)
    assert not is_storage_full(OSError(errno.EACCES, "Permission denied")) and not is_storage_full(None)


@pytest.mark.parametrize("raised, saved_words", [
    (StorageFull("OSError: [Errno 28] No space left on device"), "stopped the stage at the first training"),
    (OSError(errno.ENOSPC, "No space left on device", "experiments/a/trials.csv"), "stopped where the write failed"),
])
def test_the_command_says_so_and_how_to_resume(raised, saved_words, monkeypatch, capsys, tmp_path):
    from study import cli

    def run(args):
        raise raised

    monkeypatch.setattr(cli, "cmd_analyze", run)
    assert cli.main(["analyze", str(tmp_path)]) == 74
    err = capsys.readouterr().err
    text = " ".join(err.split())
    assert "Traceback" not in err and "this is a bug" not in text
    assert "ran out of space" in text and saved_words in text and "No space left on device" in text
    assert err.rstrip().endswith(f"study analyze {tmp_path}")


def test_a_training_that_failed_before_its_first_epoch_is_named_by_its_params_json(tmp_path):
    # `result.config` comes from the last report: None for a training that never reported (what crashed cv.csv).
    from pyarrow.fs import LocalFileSystem

    from study.retraining.common import result_config

    (tmp_path / "params.json").write_text(json.dumps({"config_id": "abc", "replicate": 1}))

    class Unreported:
        config, path, filesystem = None, str(tmp_path), LocalFileSystem()

    assert result_config(Unreported()) == {"config_id": "abc", "replicate": 1}


def test_stage_two_and_final_train_errored_trainings_again_on_resume(monkeypatch):
    from study.runtime import resume

    seen = {}
    monkeypatch.setattr(resume.tune.Tuner, "can_restore", staticmethod(lambda path: True))
    monkeypatch.setattr(resume, "_recorded_plan", lambda *a: None)
    monkeypatch.setattr(resume, "check_snapshot", lambda *a: None)
    monkeypatch.setattr(resume, "keep_tuner_state_whole", lambda *a: None)
    monkeypatch.setattr(resume.tune.Tuner, "restore", staticmethod(lambda path, **kw: seen.update(kw) or "tuner"))
    assert resume.restore_or_build("p", "e", "r.json", {}, None, None, None, "x", resume_errored=True) == "tuner"
    assert seen["resume_errored"] is True
    import inspect

    from study.retraining import common
    assert "resume_errored=True" in inspect.getsource(common.fit_resumable)


# --------------------------------------------------------------------------- end to end, on a real full disk


@pytest.fixture
def small_disk(tmpfs):
    """A 2 MB tmpfs, grown later with `grow(mb)`."""
    return tmpfs(2)


def _run(argv, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "study", *argv], capture_output=True, text=True, timeout=400, cwd=cwd)


def _whole_state(experiment: Path) -> None:
    """Every JSON state file of the experiment (Tune's snapshots, the searcher's) parses."""
    for path in [*experiment.glob("experiment_state-*.json"), *experiment.glob("searcher-state-*.json"),
                 *experiment.glob("cv/experiment_state-*.json")]:
        json.loads(path.read_text())


@pytest.mark.faults
def test_a_full_disk_stops_the_search_and_stage_two_cleanly_and_both_resume(small_disk, fake_data_dir, tmp_path,
                                                                            two_cell_space):
    disk, grow = small_disk
    argv = ["run", "--budget", "smoke", "--space", str(two_cell_space), "--num-samples", "8", "--data-dir",
            str(fake_data_dir), "--storage", str(disk), "--name", "a", "--no-analyze"]
    experiment = disk / "a"

    # 1. The search fills 2 MB (it needs about 4): stopped, its own message, the resume command; state whole.
    first = _run(argv, tmp_path)
    err = " ".join(first.stderr.split())
    assert first.returncode == 74, first.stderr[-3000:]
    assert "ran out of space" in err and "this is a bug" not in err and err.endswith(" ".join(["study", *argv]))
    assert "--- Logging error ---" not in first.stderr  # ray.log on the full disk drops lines quietly
    assert not (experiment / "trials.csv").exists()
    _whole_state(experiment)
    snapshot = json.loads(max(experiment.glob("experiment_state-*.json")).read_text())
    finished = {json.loads(t[0])["trial_id"] for t in snapshot["trial_data"]
                if json.loads(t[0])["status"] == "TERMINATED"}

    # 2. Room for the rest of the search, not for stage 2: the search finishes, stage 2 stops (no cv.csv).
    grow(6)
    second = _run(argv, tmp_path)
    assert second.returncode == 74, second.stderr[-3000:]
    assert "ran out of space" in " ".join(second.stderr.split()) and "Traceback (most recent call last)" not in \
        second.stderr.split("stopped:")[-1]
    trials = pd.read_csv(experiment / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 8 and finished <= set(trials["trial_id"])  # the first run's finished trials kept
    assert not (experiment / "cv.csv").exists()
    _whole_state(experiment)

    # 3. Room made: the same command finishes stage 2; the search is not run again.
    grow(40)
    third = _run(argv, tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    assert pd.read_csv(experiment / "trials.csv", dtype={"trial_id": str}).equals(trials)
    cv = pd.read_csv(experiment / "cv.csv")
    assert len(cv) == 4 and set(cv["status"]) == {"completed"}  # each errored replicate trained again


def test_the_watch_stops_the_run_at_the_first_trial_that_ran_out_of_space(tmp_path, monkeypatch):
    import signal

    from study.runtime import storage_watch

    stops = []
    monkeypatch.setattr(signal, "getsignal", lambda signum: (lambda s, frame: stops.append(s)))

    class Trial:
        def __init__(self, text):
            self.path = str(tmp_path)
            self.error_file = str(tmp_path / f"error-{len(text)}.txt")
            Path(self.error_file).write_text(text)

    watch = storage_watch.StorageWatch()
    watch.on_trial_error(0, [], Trial("Traceback ...\nValueError: a bug of the trial"))
    assert watch.full == "" and stops == []  # another error: the stage goes on
    watch.on_trial_recover(0, [], Trial("Traceback ...\nOSError: [Errno 28] No space left on device"))
    assert "No space left on device" in watch.full and stops == [signal.SIGUSR1]
    watch.on_trial_error(0, [], Trial("OSError: [Errno 28] No space left on device"))
    assert stops == [signal.SIGUSR1]  # stopped once

    unreadable = type("Trial", (), {"path": str(tmp_path), "error_file": None})()
    later = storage_watch.StorageWatch()
    monkeypatch.setattr(storage_watch, "_nearly_full", lambda path: True)
    later.on_trial_error(0, [], unreadable)  # no error file to read, the disk itself full
    assert later.full.startswith("No space left on device") and len(stops) == 2
