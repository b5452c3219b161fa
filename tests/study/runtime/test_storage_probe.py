"""An unreachable store ends the command within the probe's time limit, and Ctrl-C ends it at any moment.

`gs://` without credentials is the case that hung: pyarrow's GCS client retries for over 20 minutes inside C++,
where Python's signal handlers never run (SIGINT and SIGTERM were ignored). No network is needed to see it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from study.runtime.storage_probe import StorageProbeError, probe_storage

HANGING = "gs://nonexistent-bucket-xyz/p"


def test_a_store_that_never_answers_is_given_up_on_in_time():
    started = time.monotonic()
    with pytest.raises(StorageProbeError) as caught:
        probe_storage(HANGING, timeout_s=3)
    assert time.monotonic() - started < 10
    # Without network or credentials: no answer (timed out). Elsewhere GCS may refuse at once: an error either way.
    assert caught.value.timed_out or str(caught.value)


def test_a_probe_that_fails_fast_gives_pyarrows_reason(tmp_path):
    with pytest.raises(StorageProbeError, match="Unrecognized filesystem type") as caught:
        probe_storage("gs3://bucket/prefix", timeout_s=30)
    assert not caught.value.timed_out
    probe_storage(f"file://{tmp_path}/ok", timeout_s=30)  # a writable one passes
    assert not list((tmp_path / "ok").iterdir())  # and keeps nothing


def test_study_run_on_a_hanging_store_exits_2_before_ray_starts(tmp_path, fake_data_dir, monkeypatch, capsys):
    from study.cli import main
    from study.runtime import storage_probe

    monkeypatch.setattr(storage_probe, "PROBE_TIMEOUT_S", 4.0)
    started = time.monotonic()
    code = main(["run", "--budget", "smoke", "--data-dir", str(fake_data_dir), "--storage", HANGING, "--name", "g"])
    assert code == 2 and time.monotonic() - started < 30
    err = " ".join(capsys.readouterr().err.split())
    assert f"--storage '{HANGING}'" in err and ("did not answer a test write in 4 s" in err or "cannot be written" in err)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in err or "cannot be written" in err


def test_ctrl_c_ends_study_run_while_the_store_hangs(tmp_path, fake_data_dir):
    env = {**os.environ, "STUDY_DEBIAN_DATA_DIR": str(tmp_path / "none"), "STUDY_DATA_CACHE": str(tmp_path / "none")}
    command = [sys.executable, "-m", "study", "run", "--budget", "smoke", "--data-dir", str(fake_data_dir),
               "--storage", HANGING, "--name", "g"]
    # As a terminal's foreground job, whose Ctrl-C Python turns into KeyboardInterrupt: a suite started in the
    # background of a script (`pytest &`) hands its children SIGINT ignored, and Python then leaves it ignored.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:  # wait until the probe is under way
            if any("study-write-check" in command for command in _children(process.pid)):
                break
            time.sleep(0.2)
        if process.poll() is not None:
            pytest.skip("the store answered at once here (network and credentials): nothing hangs")
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and time.monotonic() - started < 10
    assert "Traceback" not in err and "interrupted" in err.lower()


def _children(pid: int) -> list[str]:
    """The command lines of `pid`'s child processes (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            if parent == pid:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    out.append(cmdline.read().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            continue
    return out


@pytest.mark.parametrize("command", ["cv", "final"])
def test_cv_and_final_on_a_hanging_store_exit_2(command, monkeypatch, capsys):
    from study.cli import main
    from study.runtime import storage_probe

    monkeypatch.setattr(storage_probe, "PROBE_TIMEOUT_S", 3.0)
    started = time.monotonic()
    assert main([command, f"{HANGING}/g"]) == 2 and time.monotonic() - started < 30
    err = " ".join(capsys.readouterr().err.split())
    assert f"experiment '{HANGING}/g' cannot be written" in err


def test_analyze_of_a_hanging_store_exits_2(monkeypatch, capsys):
    from study.cli import main
    from study.runtime import storage_probe

    monkeypatch.setattr(storage_probe, "PROBE_TIMEOUT_S", 3.0)
    started = time.monotonic()
    assert main(["analyze", f"{HANGING}/g"]) == 2 and time.monotonic() - started < 30
    assert f"cannot read the experiment '{HANGING}/g'" in " ".join(capsys.readouterr().err.split())


def test_a_read_probe_lists_without_writing(tmp_path):
    probe_storage(f"file://{tmp_path}", timeout_s=30, read_only=True)
    assert not list(tmp_path.iterdir())
