"""Bad input to the command line: one paragraph on stderr, exit status 2, no traceback; a bug: its traceback, exit 1."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _study(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "STUDY_DEBIAN_DATA_DIR": str(tmp_path / "no-debian"), "STUDY_DATA_CACHE": str(tmp_path / "no-cache")}
    return subprocess.run(
        [sys.executable, "-m", "study", *args], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )


def _assert_clean_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert "\n\n" not in result.stderr.strip()  # one paragraph
    text = " ".join(result.stderr.split())  # the paragraph is wrapped
    for needle in needles:
        assert needle in text, (needle, result.stderr)


def test_unknown_space(tmp_path, fake_data_dir):
    result = _study("run", "--space", "nosuch", "--data-dir", str(fake_data_dir), tmp_path=tmp_path)
    _assert_clean_error(result, "'nosuch'", "default", "study spaces")


def test_rate_of_one_and_a_half_in_a_user_space(tmp_path, fake_data_dir):
    space = tmp_path / "bad.yaml"
    space.write_text("scientific:\n  bn: [none, pre_act]\nfixed:\n  dropout: fc\n  p_fc: 1.5\n")
    result = _study("run", "--space", str(space), "--data-dir", str(fake_data_dir), tmp_path=tmp_path)
    _assert_clean_error(result, "'p_fc'", "1.5", "[0, 1)")


def test_missing_dataset_names_the_three_ways_to_get_it(tmp_path):
    result = _study("run", "--budget", "smoke", tmp_path=tmp_path)
    _assert_clean_error(result, "--data-dir", "dataset-fashion-mnist", "torchvision")


def test_corrupt_file(tmp_path, fake_data_dir):
    bad = tmp_path / "corrupt"
    bad.mkdir()
    for f in fake_data_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    images = bad / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])  # truncated
    result = _study("run", "--budget", "smoke", "--data-dir", str(bad), tmp_path=tmp_path)
    _assert_clean_error(result, "train-images-idx3-ubyte")


def test_spaces_lists_the_shipped_spaces(tmp_path):
    result = subprocess.run([sys.executable, "-m", "study", "spaces"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"default", "blog_ablation", "placement", "dropout_rate", "full"} <= set(names)


def test_a_bug_keeps_its_traceback_and_says_it_is_a_bug(monkeypatch, capsys):
    """Anything but a UserError is the tool's fault: traceback, exit status 1, and no blame on the input."""
    from study import cli

    def broken(args):
        raise KeyError("a key the code forgot")

    monkeypatch.setattr(cli, "cmd_spaces", broken)
    assert cli.main(["spaces"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'a key the code forgot'" in err and "this is a bug" in err


def test_a_plain_value_error_from_deep_inside_is_a_bug_too(monkeypatch, capsys):
    from study import cli

    def broken(args):
        raise ValueError("shape mismatch in a helper")

    monkeypatch.setattr(cli, "cmd_spaces", broken)
    assert cli.main(["spaces"]) == 1
    assert "this is a bug" in capsys.readouterr().err


def test_every_input_error_of_the_project_is_a_user_error():
    from analysis.errors import AnalysisError
    from search_spaces.space import SpaceError
    from study.data.datasets import DatasetNotFoundError
    from study.data.idx import IdxFormatError
    from study.retraining.common import RetrainError
    from study.retraining.selection import SelectionError
    from study.runtime.lock import ExperimentInUse
    from study.tuning.planning import StudyError
    from study.tuning.state_files import StateFileError
    from study.vocabulary.config import ConfigError
    from study.vocabulary.errors import UserError

    for error in (AnalysisError, SpaceError, DatasetNotFoundError, IdxFormatError, RetrainError, SelectionError,
                  StudyError, ConfigError, ExperimentInUse, StateFileError):
        assert issubclass(error, UserError), error
    assert issubclass(DatasetNotFoundError, FileNotFoundError)


@pytest.mark.parametrize("option, value, needle", [
    ("--grace-period", "0", "--grace-period must be a whole number of at least 1, got 0"),
    ("--reduction-factor", "1", "--reduction-factor must be above 1"),
    ("--max-epochs", "0", "--max-epochs must be a whole number of at least 1"),
    ("--cpus-per-trial", "-1", "--cpus-per-trial must be a number of at least 0, got -1.0"),
    ("--train-size", "5", "--train-size must be a whole number of at least 10, got 5"),
    ("--max-concurrent", "0", "--max-concurrent must be a whole number of at least 1"),
    ("--seeds", "1", "--seeds must be a whole number of at least 2, got 1"),
    ("--num-samples", "0", "--num-samples must be a whole number of at least 1, got 0"),
    ("--seed", "-1", "--seed must be a whole number of at least 0, got -1"),
    ("--name", "../elsewhere", "--name '../elsewhere' is not one folder inside --storage"),
    ("--name", "..", "--name '..' is not one folder inside --storage"),
])
def test_out_of_range_numbers_are_refused_before_anything_starts(tmp_path, fake_data_dir, option, value, needle, capsys):
    from study.cli import main

    argv = ["run", "--budget", "smoke", "--data-dir", str(fake_data_dir), "--storage", str(tmp_path), option, value]
    assert main(argv) == 2
    assert needle in " ".join(capsys.readouterr().err.split())  # the message is wrapped
    assert not any(tmp_path.iterdir())  # nothing written, Ray never started


def test_a_second_run_on_an_experiment_in_use_stops_at_once(tmp_path, fake_data_dir):
    from study.runtime.lock import experiment_lock

    experiment = tmp_path / "experiments" / "default-smoke"
    with experiment_lock(str(experiment), "study run", create=True):  # the first `study run`, still running
        result = _study("run", "--budget", "smoke", "--data-dir", str(fake_data_dir), "--storage", "experiments",
                        tmp_path=tmp_path)
    _assert_clean_error(result, "is in use by `study run`", f"pid {os.getpid()}")
    assert sorted(p.name for p in experiment.iterdir()) == [".study.lock"]  # nothing started


@pytest.mark.parametrize("argv, needle", [
    (["--train-size", "100000"], "--train-size 100000 exceeds the"),
    (["--storage", "a_file/experiments"], "--storage 'a_file/experiments' cannot be written"),
    (["--storage", "file:///sys/experiments"], "--storage 'file:///sys/experiments' cannot be written"),
    (["--storage", "gs3://bucket/prefix"], "Unrecognized filesystem type in URI"),
    (["--space", "one_cell.yaml"], "has a single cell"),
])
def test_input_the_trials_would_fail_on_is_refused_before_ray_starts(tmp_path, fake_data_dir, argv, needle):
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "one_cell.yaml").write_text("scientific: {bn: [pre_act]}\nnuisance: {lr: {low: 0.01, high: 0.1}}\n")
    result = _study("run", "--budget", "smoke", "--data-dir", str(fake_data_dir), *argv, tmp_path=tmp_path)
    _assert_clean_error(result, needle)


@pytest.mark.skipif(__import__("shutil").which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_a_gpu_share_on_a_machine_without_gpu_fails_in_seconds_instead_of_waiting_forever(tmp_path, fake_data_dir):
    import time

    started = time.time()
    result = _study("run", "--budget", "smoke", "--data-dir", str(fake_data_dir), "--gpus-per-trial", "1",
                    tmp_path=tmp_path)
    # Ray's start-up lines come first (its token warning); then the one paragraph, and no traceback.
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    error = " ".join(result.stderr[result.stderr.index("error: "):].split())
    assert "sees no GPU on this machine" in error and "--gpus-per-trial 0" in error
    assert time.time() - started < 120


def test_an_address_where_nothing_listens_fails_in_seconds(tmp_path, fake_data_dir):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _study("run", "--budget", "smoke", "--data-dir", str(fake_data_dir), "--address", f"127.0.0.1:{port}",
                    tmp_path=tmp_path)
    _assert_clean_error(result, f"nothing answers at --address 127.0.0.1:{port} within 5 s")


@pytest.mark.parametrize("given, environment, joined", [
    (None, None, None),  # an embedded Ray
    (None, "10.0.0.5:6379", "10.0.0.5:6379"),  # inside `ray job submit`: the cluster's
    ("auto", "10.0.0.5:6379", "auto"),  # --address wins
    (None, "http://127.0.0.1:8265", None),  # the dashboard's job API is not a Ray to join
])
def test_ray_address_is_the_option_else_the_ray_named_by_RAY_ADDRESS(given, environment, joined, monkeypatch, capsys):
    from study.cli import ray_address

    if environment is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", environment)
    assert ray_address(given) == joined
    said = capsys.readouterr()
    assert ("Joining the Ray at RAY_ADDRESS" in said.out) == (given is None and joined is not None)
    assert ("a dashboard's address" in said.err) == (environment or "").startswith("http")
