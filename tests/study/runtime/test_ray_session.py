"""How the study starts or joins Ray (without starting it: `ray.init` is replaced)."""

from __future__ import annotations

import pytest

from study.runtime import ray_session


@pytest.fixture
def init_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(ray_session.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_session.ray, "init", lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.mark.parametrize("address", [None, "auto"])
def test_workers_start_with_few_malloc_arenas_embedded_or_on_a_cluster(init_calls, monkeypatch, address):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    ray_session.connect(address)
    [kwargs] = init_calls
    assert kwargs["runtime_env"] == {"env_vars": {"MALLOC_ARENA_MAX": "2"}}
    assert kwargs.get("address") == address


def test_a_malloc_arena_cap_of_the_users_own_is_left_alone(init_calls, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # e.g. from a submitted job's runtime environment
    ray_session.connect("auto")
    assert init_calls[0]["runtime_env"] == {}
