"""A Ray that is never started: `ray.init` and what `connect` asks of Ray afterwards are replaced."""

from __future__ import annotations

import pytest

from study.runtime import ray_session


@pytest.fixture
def init_calls(monkeypatch):
    """The keyword arguments of each `ray.init` call (and "loopback only" where an embedded Ray would bind there)."""
    calls = []
    monkeypatch.setattr(ray_session.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_session.ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(ray_session.ray, "cluster_resources", lambda: {"CPU": 2.0})  # a 2-core machine, no GPU
    monkeypatch.setattr(ray_session, "check_reachable", lambda address: None)
    monkeypatch.setattr(ray_session, "_loopback_only", lambda: calls.append("loopback only"))
    monkeypatch.setattr(ray_session.ray, "get_runtime_context", lambda: type("Context", (), {"runtime_env": {}}))
    return calls
