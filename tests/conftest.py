"""Shared fixtures: a tiny synthetic FashionMNIST and one embedded Ray per test session."""

from __future__ import annotations

import os

import pytest

from study.fake_data import write_fake_fashion_mnist


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
