"""Kill or interrupt a running study, in the search or in stage 2, resume it, and lose or repeat nothing.

The first run is a real `study run` in its own process, joined to this test
session's Ray (`--address`) as a driver on a cluster's head node would be: it is
killed once a few trials have finished, and Ray ends the trials it owned. The
same command then resumes it in this process (through `Tuner.restore`).
Joining saves starting a second Ray on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from study.tuning.cells import load_cell_studies
from study.tuning.state_files import RUNGS_FILE
from study.cli import main
from study.vocabulary.factors import is_diverged
from study.data.fake_data import write_fake_fashion_mnist
from experiment_files import FINISHED, reported_epochs

SPACE = """
description: two cells for the resume test
scientific:
  bn: [none, pre_act]
nuisance:
  lr: {low: 0.002, high: 0.5, log: true}
fixed: {model: small}
"""
MAX_EPOCHS = 3  # the smoke budget's
TRIALS = 12
FINISHED_BEFORE_KILL = 2  # the first trial of each cell: ASHA cannot stop those
# The first run must still be running when a snapshot on disk records finished trials.
# Tune snapshots the experiment every 10 s or more by default, and a smoke trial lasts
# a fraction of a second on a fast machine and several seconds on a busy one. So the
# killed run snapshots every half-second and trains one trial at a time: once the
# first two trials end, 10 more are left to run one after another (several seconds
# even on a fast machine), while a busy machine never gets far past the first two.
SNAPSHOT_PERIOD_S = "0.5"
KILLED_RUN_CONCURRENCY = "1"


def snapshot_statuses(experiment: Path) -> dict[str, str]:
    """trial_id -> status, in the newest experiment snapshot Tune wrote to the experiment
    directory: what a resume starts from. A trial that ended after it resumes as running."""
    snapshots = sorted(experiment.glob("experiment_state-*.json"))  # named by start time
    if not snapshots:
        return {}
    try:
        trial_data = json.loads(snapshots[-1].read_text())["trial_data"]
    except (json.JSONDecodeError, KeyError):  # caught mid-copy: ask again
        return {}
    states = [json.loads(trial_state) for trial_state, _run_metadata in trial_data]
    return {state["trial_id"]: state["status"] for state in states}


def terminated(experiment: Path) -> set[str]:
    return {trial_id for trial_id, status in snapshot_statuses(experiment).items() if status == "TERMINATED"}


@pytest.fixture
def study_argv(tmp_path):
    data = write_fake_fashion_mnist(tmp_path / "data", n_train=600, n_test=100, seed=3, noise=1.0)
    space = tmp_path / "two_cells.yaml"
    space.write_text(SPACE)
    return ["run", "--space", str(space), "--budget", "smoke", "--num-samples", str(TRIALS),
            "--data-dir", str(data), "--storage", str(tmp_path / "experiments"), "--name", "resume", "--no-analyze"]


def start(argv: list[str], ray_address: str, log: Path, tmpdir: Path | None = None) -> tuple[subprocess.Popen, list[str]]:
    """The study in its own process group, joined to this session's Ray; returns the process and its argv."""
    argv = [*argv, "--address", ray_address, "--max-concurrent", KILLED_RUN_CONCURRENCY]
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": SNAPSHOT_PERIOD_S, **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "study", *argv], stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=env)
    return process, argv


def wait_until_finished(process: subprocess.Popen, experiment: Path, log: Path, finished: int) -> None:
    """Until the Tune snapshot on disk in `experiment` (the search's folder, or stage 2's
    `cv/`) records `finished` finished trials."""
    deadline = time.time() + 600
    while len(terminated(experiment)) < finished:
        if process.poll() is not None:
            pytest.fail(f"the study ended (exit {process.returncode}) before it could be stopped:\n"
                        + log.read_text()[-3000:])
        if time.time() > deadline:
            pytest.fail("no trial finished within 10 minutes:\n" + log.read_text()[-3000:])
        time.sleep(0.2)


def driver_output(log: str) -> str:
    """The driver's own lines of a log, without what Ray forwards from its workers ("(train_trial pid=12) ..."):
    a worker that loses its driver may print a traceback of its own exit."""
    return "\n".join(line for line in log.splitlines() if not re.match(r"(\x1b\[\d+m)?\(\w+ pid=\d+", line))


def start_and_kill(argv: list[str], ray_address: str, experiment: Path, log: Path,
                   finished_before_kill: int = FINISHED_BEFORE_KILL, tmpdir: Path | None = None) -> str:
    """Run the study; SIGKILL its process group once `finished_before_kill` trials have finished.

    Returns the driver's memory map (/proc/PID/maps) just before the kill: the shared
    libraries it loaded.
    """
    process, _ = start(argv, ray_address, log, tmpdir)
    try:
        wait_until_finished(process, experiment, log, finished_before_kill)
        return Path(f"/proc/{process.pid}/maps").read_text()
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver, with no chance to save anything
        process.wait()


def start_and_stop(argv: list[str], ray_address: str, watched: Path, log: Path, finished: int,
                   signum: int) -> tuple[int, str, list[str]]:
    """Run the study until `watched` records `finished` finished trials, then stop it: SIGKILL to its whole
    process group (nothing can be saved), or `signum` to the driver alone (as `kill` or a job manager
    sends it). Returns the exit code, the driver's output and the argv it ran with."""
    process, full_argv = start(argv, ray_address, log)
    try:
        wait_until_finished(process, watched, log, finished)
        if signum == signal.SIGKILL:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.send_signal(signum)
        exit_code = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return exit_code, driver_output(log.read_text()), full_argv


def assert_interrupted(exit_code: int, output: str, signum: int, full_argv: list[str]) -> None:
    """Exit 128 + signal, said so without a traceback, and the printed resume command is the one that ran."""
    assert exit_code == 128 + signum, output[-3000:]
    assert f"interrupted by {signal.Signals(signum).name}" in output and "Traceback" not in output
    resume = output.split("Resume with the same command:\n")[1].splitlines()[0].strip()
    assert shlex.split(resume) == ["study", *full_argv]


def finished_epochs(watched: Path) -> dict[str, list[dict]]:
    """The reported epochs of the trials the last snapshot in `watched` records as finished: what a resume keeps."""
    finished = terminated(watched)
    return {trial_id: epochs for trial_id, epochs in reported_epochs(watched).items() if trial_id in finished}


def assert_not_trained_again(after: dict[str, list[dict]], kept: dict[str, list[dict]], resumed_at: float) -> None:
    """The trainings `kept` after a SIGKILL were not trained again by the run that began at `resumed_at`: their
    epochs are still there, and none was reported after it began. (The kill can land between Tune's upload of the
    snapshot that marks a training finished and that of its last result line; the resumed run uploads that line,
    so the file may grow by it.)"""
    for trial_id, epochs in kept.items():
        assert after[trial_id][:len(epochs)] == epochs, trial_id
        assert all(epoch["timestamp"] <= resumed_at for epoch in after[trial_id]), trial_id


def rung_entries(experiment: Path) -> dict[tuple[str, int, str], float]:
    """(cell, rung index, trial_id) -> recorded score, from the experiment's ASHA rungs file."""
    rungs = json.loads((experiment / "optuna" / RUNGS_FILE).read_text())["rungs"]
    return {(cell, i, trial): score for cell, levels in rungs.items() for i, level in enumerate(levels)
            for trial, score in level.items()}


@pytest.mark.faults
def test_killed_study_resumes_without_losing_or_repeating_a_trial(study_argv, tmp_path, ray_session, monkeypatch):
    """The driver's machine is lost (SIGKILL of the whole process group) mid-search, and the
    study resumes on a new head node from remote storage (a `file://` URI, as s3:// would be):
    the experiment holds the whole state, journals and ASHA rungs included."""
    argv = list(study_argv)
    argv[argv.index("--storage") + 1] = f"file://{tmp_path}/bucket"
    experiment = tmp_path / "bucket" / "resume"
    ray_address = ray_session.get_runtime_context().gcs_address
    driver_libraries = start_and_kill(argv, ray_address, experiment, tmp_path / "first_run.log",
                                      tmpdir=tmp_path / "first_head")
    # The trials trained in Ray's workers; the driver that scheduled them never loaded PyTorch.
    assert "libtorch" not in driver_libraries
    assert not (experiment / "trials.csv").exists(), "the first run was meant to be killed mid-study"
    # What the resume starts from: the finished trials of the last snapshot on disk.
    # (A trial that ended after that snapshot resumes from its last checkpoint.)
    finished = terminated(experiment)
    before = {trial_id: epochs for trial_id, epochs in reported_epochs(experiment).items() if trial_id in finished}
    assert len(before) >= FINISHED_BEFORE_KILL
    rungs_before = {key: score for key, score in rung_entries(experiment).items() if key[2] in finished}
    assert rungs_before, "the remote experiment holds no ASHA rungs of its finished trials"

    # A new head: no local copy of the journals, and none of Tune's staging files of the first run.
    (tmp_path / "new_head").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "new_head"))
    session = Path(ray_session._private.worker._global_node.get_session_dir_path())
    for staging in session.glob("artifacts/*/resume"):
        shutil.rmtree(staging)
    assert main(argv) == 0  # the same command resumes

    trials = pd.read_csv(experiment / "trials.csv")
    assert len(trials) == TRIALS and trials["trial_id"].is_unique
    assert trials.groupby("cell").size().to_dict() == {"bn=none": TRIALS // 2, "bn=pre_act": TRIALS // 2}
    assert set(trials["status"]) <= {"completed", "pruned", "diverged"}
    # The resumed run, too, writes no TensorBoard files (whose logger imports PyTorch).
    assert not list(experiment.glob("*/events.out.tfevents*"))
    after = reported_epochs(experiment)
    for trial_id, epochs in before.items():
        # Kept, with its results, and not trained again: no epoch reported a second time.
        assert after[trial_id] == epochs
        row = trials.set_index("trial_id").loc[trial_id]
        full = epochs[-1]["epoch"] == MAX_EPOCHS
        diverged = is_diverged(epochs[-1]["train_loss"], epochs[-1]["val_acc"], full_budget=full)
        assert row["status"] == ("diverged" if diverged else "completed" if full else "pruned")
        assert row["val_acc"] == pytest.approx(epochs[-1]["val_acc"])
    # The searcher kept its state: every finished Tune trial is one finished Optuna
    # trial of its cell, none twice, and no cell asked for more than its budget.
    studies = load_cell_studies(experiment / "optuna")
    told = [t.user_attrs.get("tune_trial_id") for s in studies.values() for t in s.trials if t.state in FINISHED]
    assert sorted(told) == sorted(trials["trial_id"])
    # ASHA judged the resumed trials against the rungs of the ones finished before the loss.
    assert rungs_before.items() <= rung_entries(experiment).items()
    # The same command then ran stage 2: each cell's best configuration on the smoke budget's 2 seeds.
    cv = pd.read_csv(experiment / "cv.csv")
    assert set(cv["replicate"]) == {0, 1} and (cv["replicate_kind"] == "seed").all()


def test_stage_two_stopped_twice_the_same_command_finishes_it(study_argv, tmp_path, ray_session):
    """Stopped while retraining the selected configurations, first by SIGTERM (it says so, exits 143 and
    prints the command that resumes it), then, resumed, by SIGKILL (nothing saved): the same command
    skips the finished search and continues stage 2 without retraining a finished replicate."""
    experiment = tmp_path / "experiments" / "resume"
    # 2 trials per cell, then 2 cells x 6 seeds one at a time: stage 2 runs long enough to be caught twice, with
    # trainings left after the second stop even where they finish between its look and its signal (with 4 seeds
    # an idle AMD EPYC sometimes finished them all before the SIGKILL).
    argv = [*study_argv, "--seeds", "6"]
    argv[argv.index("--num-samples") + 1] = "4"
    ray_address = ray_session.get_runtime_context().gcs_address
    exit_code, output, full_argv = start_and_stop(argv, ray_address, experiment / "cv", tmp_path / "first_run.log",
                                                  2, signal.SIGTERM)
    assert_interrupted(exit_code, output, signal.SIGTERM, full_argv)
    assert (experiment / "trials.csv").exists() and not (experiment / "cv.csv").exists()
    before = finished_epochs(experiment / "cv")
    assert len(before) >= 2

    start_and_stop(argv, ray_address, experiment / "cv", tmp_path / "second_run.log", len(before) + 2, signal.SIGKILL)
    assert not (experiment / "cv.csv").exists(), "a killed stage wrote its results table"
    kept = finished_epochs(experiment / "cv")
    for trial_id, epochs in before.items():
        assert kept[trial_id] == epochs  # the second run resumed them, and did not train them again

    resumed_at = time.time()
    assert main(argv) == 0  # the same command: the search is done, stage 2 resumes

    cv = pd.read_csv(experiment / "cv.csv", dtype={"config_id": str})
    assert len(cv) == 12 and not cv.duplicated(["config_id", "replicate"]).any()
    assert sorted(cv["replicate"].unique()) == list(range(6))
    assert not (cv["status"] == "error").any(), cv["error"].dropna().tolist()[:3]
    assert_not_trained_again(reported_epochs(experiment / "cv"), kept, resumed_at)


def test_interrupted_search_says_so_and_the_command_it_prints_resumes_it(study_argv, tmp_path, ray_session,
                                                                        monkeypatch):
    """Ctrl-C mid-search: exit 130, no trials.csv, no analysis, and the printed command finishes the
    study without retraining what had finished.

    The experiment and the dataset are then moved and the space is named by a relative
    path: a resume compares what the study is, not where its files lie, and the resumed
    trials read the dataset where it is now."""
    experiment = tmp_path / "experiments" / "resume"
    study_argv = [*study_argv, "--search-only"]  # the search is what is stopped; stage 2 is another test's
    exit_code, output, full_argv = start_and_stop(study_argv, ray_session.get_runtime_context().gcs_address,
                                                  experiment, tmp_path / "first_run.log", 2, signal.SIGINT)
    assert_interrupted(exit_code, output, signal.SIGINT, full_argv)
    assert not (experiment / "trials.csv").exists(), "an interrupted stage wrote its results table"
    argv, experiment = move_study(study_argv, tmp_path, monkeypatch)
    before = finished_epochs(experiment)

    assert main(argv) == 0  # the printed command, run where Ray already is

    rows = pd.read_csv(experiment / "trials.csv")
    assert len(rows) == TRIALS
    assert not (rows["status"] == "error").any(), rows["error"].dropna().tolist()[:3]
    after = reported_epochs(experiment)
    for trial_id, epochs in before.items():
        assert after[trial_id] == epochs  # kept, not trained again
    # The journals moved with the experiment, and are the ones the resumed search kept.
    assert not (tmp_path / "experiments").exists()
    studies = load_cell_studies(experiment / "optuna")
    told = [t.user_attrs.get("tune_trial_id") for s in studies.values() for t in s.trials if t.state in FINISHED]
    assert sorted(told) == sorted(rows["trial_id"])


def move_study(argv: list[str], tmp_path: Path, monkeypatch) -> tuple[list[str], Path]:
    """Move the experiment and the dataset elsewhere and work from tmp_path with relative paths;
    returns the new argv and experiment directory."""
    argv = list(argv)
    for flag, new_place in (("--storage", "moved_experiments"), ("--data-dir", "moved_data")):
        i = argv.index(flag) + 1
        shutil.move(argv[i], tmp_path / new_place)
        argv[i] = new_place
    space = argv.index("--space") + 1
    argv[space] = Path(argv[space]).name
    monkeypatch.chdir(tmp_path)
    return argv, tmp_path / "moved_experiments" / argv[argv.index("--name") + 1]


def test_study_final_interrupted_then_killed_resumes_without_retraining_a_seed(smoke_study, smoke_data_dirs,
                                                                             tmp_path, ray_session):
    """`study final` stopped once its first seed has finished: Ctrl-C says so and exits 130 with no
    final.csv. Resumed, and killed (SIGKILL) once a second seed has finished, it says nothing. Each
    time the same command trains only the seeds left."""
    full, _ = smoke_data_dirs
    experiment = tmp_path / "smoke"
    shutil.copytree(smoke_study, experiment, ignore=shutil.ignore_patterns("final", "final.*", "report"))
    # 6 seeds: after each stop some are left to be caught, even where the seeds left finish between the stop's
    # look and its signal (with 4, an idle AMD EPYC finished them all before the SIGKILL).
    argv = ["final", str(experiment), "--seeds", "6", "--data-dir", str(full), "--no-analyze"]
    ray_address = ray_session.get_runtime_context().gcs_address
    exit_code, output, full_argv = start_and_stop(argv, ray_address, experiment / "final", tmp_path / "first_run.log",
                                                  1, signal.SIGINT)
    assert_interrupted(exit_code, output, signal.SIGINT, full_argv)
    assert not (experiment / "final.csv").exists()
    display = [line for line in output.splitlines() if line.startswith("final ")]
    assert display and all("pruned 0" in line for line in display)  # a seed the signal stopped resumes
    before = finished_epochs(experiment / "final")
    assert before

    exit_code, _, _ = start_and_stop(argv, ray_address, experiment / "final", tmp_path / "second_run.log",
                                     len(before) + 1, signal.SIGKILL)
    assert exit_code == -signal.SIGKILL and not (experiment / "final.csv").exists()
    kept = finished_epochs(experiment / "final")
    for trial_id, epochs in before.items():
        assert kept[trial_id] == epochs  # that seed kept, not trained again

    resumed_at = time.time()
    assert main(argv) == 0

    final = pd.read_csv(experiment / "final.csv")
    assert sorted(final["seed"]) == [0, 1, 2, 3, 4, 5] and final["test_acc"].notna().all()
    assert_not_trained_again(reported_epochs(experiment / "final"), kept, resumed_at)  # those seeds
