"""How the study starts or joins Ray (without starting it: `ray.init` is replaced)."""

from __future__ import annotations

from pathlib import Path

import pytest

from study.runtime import ray_session


def test_credentials_in_the_jobs_runtime_environment_are_warned_of_by_name_not_value():
    warning = ray_session.secrets_warning({"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t",
                                           "AWS_SESSION_TOKEN": "tok", "MALLOC_ARENA_MAX": "2", "PYTHONPATH": "."})
    assert "sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;" in warning and "IAM role" in warning
    assert not any(value in warning for value in ("AKIAEXAMPLE", "s3cr3t", "tok,"))
    assert ray_session.secrets_warning({"MALLOC_ARENA_MAX": "2"}) is None


@pytest.mark.parametrize("address", [None, "auto"])
def test_workers_start_with_few_malloc_arenas_embedded_or_on_a_cluster(init_calls, monkeypatch, address):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    ray_session.connect(address)
    kwargs = init_calls[-1]
    assert kwargs["runtime_env"] == {"env_vars": {"MALLOC_ARENA_MAX": "2"}}
    # Embedded: a Ray of its own on loopback, never one that `ray start` left running.
    assert kwargs["address"] == (address or "local")
    assert ("loopback only" in init_calls) == (address is None)


def test_a_malloc_arena_cap_of_the_users_own_is_left_alone(init_calls, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # e.g. from a submitted job's runtime environment
    ray_session.connect("auto")
    assert init_calls[-1]["runtime_env"] == {}


def test_a_gpu_share_on_a_machine_without_gpu_fails_at_once(init_calls):
    with pytest.raises(ray_session.ResourceError, match="0.25 of a GPU .* sees no GPU .* --gpus-per-trial 0"):
        ray_session.connect(None, cpus_per_trial=1, gpus_per_trial=0.25)


def test_more_cpus_than_the_machine_has_fails_at_once(init_calls):
    with pytest.raises(ray_session.ResourceError, match="asks for 4 CPUs .* has 2"):
        ray_session.connect(None, cpus_per_trial=4)


def test_a_cluster_without_gpu_yet_may_still_get_some(init_calls, capsys):
    ray_session.connect("auto", cpus_per_trial=1, gpus_per_trial=0.25)  # the autoscaler adds GPU workers
    assert "waits for a 0.25 GPU share until the autoscaler" in capsys.readouterr().out


def test_a_refused_join_without_a_token_says_how_to_give_one(init_calls, monkeypatch, tmp_path):
    def refused(**kwargs):
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379")

    monkeypatch.setattr(ray_session.ray, "init", refused)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    with pytest.raises(ray_session.RayConnectionError, match="no Ray token; .* RAY_AUTH_MODE=token .*auth_token"):
        ray_session.connect("10.0.0.5:6379")


def test_nothing_listening_at_the_address_fails_within_seconds():
    import socket
    import time

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.time()
    with pytest.raises(ray_session.RayConnectionError, match=f"nothing answers at --address 127.0.0.1:{port}"):
        ray_session.check_reachable(f"127.0.0.1:{port}")
    assert time.time() - started < ray_session.CONNECT_TIMEOUT_S + 1
    with pytest.raises(ray_session.RayConnectionError, match="is not HOST:PORT"):
        ray_session.check_reachable("headnode")


@pytest.mark.parametrize("address, expected", [
    ("10.0.0.5:6379", ("10.0.0.5", 6379)), ("head.example:7000", ("head.example", 7000)),
    ("[fd00::5]:6379", ("fd00::5", 6379)), ("[::1]:6379", ("::1", 6379)),
])
def test_an_address_is_a_host_and_a_port_ipv6_in_brackets(address, expected):
    assert ray_session.host_and_port(address) == expected


def test_an_ipv6_address_without_brackets_is_refused_with_the_form_to_use():
    with pytest.raises(ray_session.RayConnectionError, match=r"in brackets, e.g. \[fd00::5\]:6379"):
        ray_session.host_and_port("fd00::5:6379")
    with pytest.raises(ray_session.RayConnectionError, match=r"'\[::1\]' has no port"):
        ray_session.host_and_port("[::1]")


def test_a_listening_ipv6_loopback_address_in_brackets_is_reachable():
    import socket

    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    with server:
        ray_session.check_reachable(f"[::1]:{server.getsockname()[1]}")  # no error: something answers


LISTENING_SOCKETS = r"""
import os, re, sys
from study.runtime import ray_session

ray_session.connect(None)
tree, frontier = set(), {os.getpid()}
while frontier:  # this process and every process Ray started under it
    tree |= frontier
    children = set()
    for pid in frontier:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                children |= {int(c) for c in f.read().split()}
        except OSError:
            pass
    frontier = children - tree
inodes = set()
for pid in tree:
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
            if match:
                inodes.add(match.group(1))
    except OSError:
        pass
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).read().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # LISTEN, one of ours
            print("LISTEN", fields[1].split(":")[0])
"""
LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, ::1, ::ffff:127.0.0.1


def test_an_embedded_ray_listens_on_loopback_only(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", LISTENING_SOCKETS], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[3])})
    addresses = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("LISTEN")]
    assert result.returncode == 0 and len(addresses) >= 3, result.stderr[-2000:]  # GCS, raylet, this driver at least
    assert set(addresses) <= LOOPBACK, addresses
