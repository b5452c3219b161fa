"""A worker node of a two-node Ray is lost mid-study: the study still finishes its whole budget.

The cluster is `ray.cluster_utils.Cluster` on this machine: a head that runs no trials
(as cluster.yaml's head) and two 1-CPU worker nodes. `study run` joins it as a driver
would on the head. Once the first trial has finished and the second is training,
the node that trains it is killed (all its processes, SIGKILL). Tune retries that
trial on the other node from its last checkpoint (`FailureConfig(max_failures=1)`),
and every other trial runs there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from study.data.fake_data import write_fake_fashion_mnist
from study.tuning.cells import load_cell_studies
from experiment_files import FINISHED, reported_epochs

# A learning-rate range where no trial diverges: the second trial then trains every epoch.
SPACE = """
description: two cells for the node-loss test
scientific:
  bn: [none, pre_act]
nuisance:
  lr: {low: 0.01, high: 0.1, log: true}
fixed: {model: small}
"""
TRIALS = 8
MAX_EPOCHS = 3  # the smoke budget's
TRAIN_IMAGES = 3000


@pytest.fixture
def cluster():
    from ray._private import ray_constants, utils
    from ray.cluster_utils import Cluster

    before = utils.read_ray_address()
    # A lost node is declared dead after 1.5 s instead of Ray's 30 s default.
    health_checks = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": health_checks})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    raylets = {node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid: node for node in workers}
    yield cluster, raylets
    cluster.shutdown()
    # Cluster records itself as the machine's latest Ray, which a later `ray.init()` would join.
    address_file = Path(utils.get_ray_address_file(None))
    if before is None:
        address_file.unlink(missing_ok=True)
    else:
        utils.write_ray_address(before)


def node_of(pid: int, raylets: dict) -> object | None:
    """The worker node whose raylet started process `pid` (its ancestor), if any."""
    while pid > 1:
        if pid in raylets:
            return raylets[pid]
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    return None


def second_trial_training(experiment: Path) -> str | None:
    """The second trial's id while it trains its second epoch: it has saved one checkpoint, not two.

    The first trial of each cell is never stopped early (its cell's rungs are empty),
    the two cells take turns, and no trial diverges in SPACE, so the second trial
    trains all MAX_EPOCHS epochs. Tune numbers its trial folders
    (``train_trial_<id>_<n>_<config>``), and a trial writes each checkpoint there as it
    reports (its result.json is synced later, so it lags).
    """
    for folder in experiment.glob("train_trial_*_2_*"):
        if (folder / "checkpoint_000000").is_dir() and not (folder / "checkpoint_000001").exists():
            return folder.name.split("_")[2]
    return None


def node_training(raylets: dict) -> object | None:
    """The worker node of this cluster where a trial actor process runs (titled ``ray::ImplicitFunc.train``
    while it trains; other Rays on the machine, such as the test session's, have their own)."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::ImplicitFunc.train"):
                node = node_of(int(proc.name), raylets)
                if node is not None:
                    return node
        except OSError:
            continue
    return None


def failures(experiment: Path) -> dict[str, int]:
    """trial_id -> how many times it failed, in the newest experiment snapshot."""
    snapshot = sorted(experiment.glob("experiment_state-*.json"))[-1]
    trials = [(json.loads(state), json.loads(run)) for state, run in json.loads(snapshot.read_text())["trial_data"]]
    return {state["trial_id"]: run["num_failures"] for state, run in trials}


@pytest.mark.faults
def test_a_lost_worker_node_loses_no_trial(cluster, tmp_path):
    cluster, raylets = cluster
    # Epochs long enough to catch the second trial between two of them: with 1,000 images the fastest machine
    # trained all 8 trials in 7 s, before the test saw the second on a node; with 3,000 it passed 10 of 10.
    data = write_fake_fashion_mnist(tmp_path / "data", n_train=TRAIN_IMAGES + 200, n_test=100, seed=3, noise=1.0)
    space = tmp_path / "two_cells.yaml"
    space.write_text(SPACE)
    experiment = tmp_path / "experiments" / "node-loss"
    argv = [sys.executable, "-m", "study", "run", "--space", str(space), "--budget", "smoke",
            "--num-samples", str(TRIALS), "--data-dir", str(data), "--storage", str(tmp_path / "experiments"),
            "--name", "node-loss", "--search-only", "--no-analyze", "--address", cluster.address,
            "--cpus-per-trial", "1", "--max-concurrent", "1", "--train-size", str(TRAIN_IMAGES)]
    log = tmp_path / "study.log"
    with open(log, "w") as out:
        study = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                 env={**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "0.5"})
    try:
        deadline = time.time() + 600
        # Wait for the second trial on a node, and for the first one's epochs in its result.json (the driver
        # writes them a moment after the trial reports: on a fast machine the second can start before).
        while ((training := second_trial_training(experiment)) is None or (lost := node_training(raylets)) is None
               or not (first := {trial_id: epochs for trial_id, epochs in reported_epochs(experiment).items()
                                 if trial_id != training})):
            assert study.poll() is None, f"the study ended (exit {study.returncode}) too early:\n{log.read_text()[-3000:]}"
            assert time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        cluster.remove_node(lost, allow_graceful=False)  # the node is gone: its trial's process with it
        exit_code = study.wait(timeout=600)
    finally:
        if study.poll() is None:
            os.killpg(study.pid, 9)
    output = log.read_text()
    assert exit_code == 0, output[-3000:]

    trials = pd.read_csv(experiment / "trials.csv")
    assert len(trials) == TRIALS and trials["trial_id"].is_unique
    assert set(trials["status"]) <= {"completed", "pruned", "diverged"}, trials["error"].dropna().tolist()[:3]
    # The trial on the lost node failed once and was retried on the other node; no other trial failed. That
    # is the second trial, or on a fast machine one after it: the second can finish between its detection
    # and the node's removal.
    failed = {trial_id: count for trial_id, count in failures(experiment).items() if count}
    assert list(failed.values()) == [1], failed
    (lost_trial,) = failed
    (folder,) = experiment.glob(f"train_trial_{lost_trial}_*")
    assert int(folder.name.split("_")[3]) >= 2  # not one that had finished before the second began
    after = reported_epochs(experiment)
    assert first
    for trial_id, epochs in first.items():
        if trial_id == lost_trial:
            continue
        # Finished before the loss: kept, not trained again. The epochs read at the loss are the first of
        # its final ones, unchanged (its result.json may not have had the last epoch yet: the driver
        # writes it a moment after the trial reports), and no epoch was reported twice.
        assert after[trial_id][:len(epochs)] == epochs
        assert [e["epoch"] for e in after[trial_id]] == list(range(1, len(after[trial_id]) + 1))
    studies = load_cell_studies(experiment / "optuna")
    told = [t.user_attrs.get("tune_trial_id") for s in studies.values() for t in s.trials if t.state in FINISHED]
    assert sorted(told) == sorted(trials["trial_id"])  # each trial told to its cell's Optuna study once
