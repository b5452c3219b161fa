"""Shared fixtures: a tiny synthetic FashionMNIST and one embedded Ray per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from study.data.datasets import SPLIT_FILES
from study.data.fake_data import write_fake_fashion_mnist


@pytest.fixture(scope="session")
def fake_data_dir(tmp_path_factory):
    """Four tiny IDX files with learnable synthetic images (never the real dataset)."""
    return write_fake_fashion_mnist(tmp_path_factory.mktemp("fashion"), n_train=600, n_test=100, seed=0)


@pytest.fixture(scope="session")
def ray_session():
    """Start Ray once for every test that needs it; stop it at the end."""
    # A busy 2-core machine can take longer than Ray's default to register a node.
    os.environ.setdefault("RAY_raylet_start_wait_time_s", "120")
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
    yield ray
    ray.shutdown()


# Two cells of four trials: enough for per-cell ASHA to stop someone; a learning-rate
# range narrow enough that no trial diverges (the cv and final tests need them all).
TWO_CELL_SPACE = """
description: two cells for the end-to-end tests
scientific:
  bn: [none, pre_act]
nuisance:
  lr: {low: 0.01, high: 0.2, log: true}
fixed: {model: small, dropout: fc, p_fc: 0.2}
"""


@pytest.fixture
def tmpfs(tmp_path):
    """`mount(mb)`: a tmpfs of `mb` MB in the test's folder (root and `mount` needed, else the test is skipped),
    returned with `grow(mb)`, which remounts it bigger; every one is unmounted at the end."""
    mounted = []

    def mount(mb: int):
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("needs root to mount a small tmpfs")
        folder = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        folder.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(folder)], capture_output=True).returncode:
            pytest.skip("mount is not allowed here")
        mounted.append(folder)

        def grow(new_mb: int) -> None:
            subprocess.run(["mount", "-o", f"remount,size={new_mb}m", str(folder)], check=True)

        return folder, grow

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def two_cell_space(tmp_path) -> Path:
    """TWO_CELL_SPACE as a space file of the test's own."""
    path = tmp_path / "two_cells.yaml"
    path.write_text(TWO_CELL_SPACE)
    return path


@pytest.fixture(scope="session")
def smoke_data_dirs(tmp_path_factory):
    """(with the test set, with garbage in place of the test files), the same training files.

    Noisy images, so that accuracies differ between trials instead of all reaching 1.0.
    """
    root = tmp_path_factory.mktemp("smoke_data")
    full = write_fake_fashion_mnist(root / "full", n_train=1000, n_test=200, seed=2, noise=0.6)
    train_only = root / "train_only"
    train_only.mkdir()
    for name in SPLIT_FILES["train"]:
        shutil.copy(full / name, train_only / name)
    for name in SPLIT_FILES["test"]:
        (train_only / name).write_bytes(b"reading this file fails: the test set is for study final only")
    return full, train_only


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory, ray_session, smoke_data_dirs):
    """One `study run --budget smoke` (8 trials, 2 cells, with the analysis, logged to TensorBoard) that
    the end-to-end tests share: Ray's start-up and the workers' imports are the cost, once.

    It reads the data directory whose test files are garbage: had anything (driver or
    Ray worker) read the test set, its trials would have failed.
    """
    from study.cli import main

    _, train_only = smoke_data_dirs
    root = tmp_path_factory.mktemp("smoke_study")
    space = root / "two_cells.yaml"
    space.write_text(TWO_CELL_SPACE)
    argv = ["run", "--space", str(space), "--budget", "smoke", "--num-samples", "8", "--data-dir", str(train_only),
            "--storage", str(root / "experiments"), "--name", "smoke", "--tracking", "tensorboard"]
    assert main(argv) == 0
    return root / "experiments" / "smoke"


@pytest.fixture(scope="session")
def cv_final_experiment(smoke_study, smoke_data_dirs, tmp_path_factory):
    """A copy of `smoke_study` without its stage 2, then `study cv --folds 2 --overall 2` (logged to
    MLflow) and `study final` (logged to W&B offline) on it."""
    from study.cli import main

    full, _ = smoke_data_dirs
    copy = tmp_path_factory.mktemp("cv_folds") / "smoke"
    shutil.copytree(smoke_study, copy, ignore=shutil.ignore_patterns("cv", "cv*.csv", "cv.json", "report"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert main(["cv", str(copy), "--overall", "2", "--folds", "2", "--no-analyze", "--tracking", "mlflow"]) == 0
        assert main(["final", str(copy), "--seeds", "2", "--data-dir", str(full), "--no-analyze",
                     "--tracking", "wandb"]) == 0
    return copy
