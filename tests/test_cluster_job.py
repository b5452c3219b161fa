"""The cluster path as users run it: a real local Ray cluster from `ray start`, docs/cluster.md's `ray job submit`.

Built as cluster.yaml builds one: token authentication on every node
(`RAY_AUTH_MODE=token`), a head with 0 CPUs (no trial can land there) whose dashboard
and job API listen on 127.0.0.1 only, and two worker nodes of 1 CPU each. docs/cluster.md's
command then submits `python -m study run --address auto ...` with `--working-dir .`,
and the test checks the whole flow: the search, stage 2, the report, every trial on a
worker node, and what a machine without the token is told.

All three nodes share one Ray temporary folder, as nodes started with `ray start` on
one machine do: a worker node's runtime-environment agent, setting the job's package
up for its first trial, unpacks it afresh and so deletes the directory the head's
driver runs in, which once made the driver die in Ray Tune after the search
(`study.runtime.working_dir`).

Everything the test starts carries its own token path in its environment (a folder
of this test's), and only those processes are stopped at the end, whatever happens:
never `ray stop`, which stops every Ray on the machine. Ports are picked free, so
other Ray sessions on the machine are left alone.

Minutes on a 2-core machine, hence the `cluster` marker: `.ci/run` runs it as a second
step, with the `cluster` extra (ray[default]: dashboard and job API) installed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's `ray` and `python`
TWO_CELLS = """
description: two cells for the cluster test
scientific:
  bn: [none, pre_act]
nuisance:
  lr: {low: 0.01, high: 0.2, log: true}
fixed: {model: small, dropout: fc, p_fc: 0.2}
"""
WORKER_PORTS = 12  # worker processes per node (trials, Tune's own actors, the job's driver on the head)


def _free_ports(n: int) -> list[int]:
    """n ports free now (bound to port 0, then released); the cluster takes them seconds later."""
    sockets, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def _node_ports(ports: list[int]) -> list[str]:
    names = ("--node-manager-port", "--object-manager-port", "--runtime-env-agent-port",
             "--dashboard-agent-grpc-port", "--dashboard-agent-listen-port", "--metrics-export-port")
    args = [f"{name}={ports.pop()}" for name in names]
    return [*args, "--worker-port-list=" + ",".join(str(ports.pop()) for _ in range(WORKER_PORTS))]


def _ours(marker: str) -> list[int]:
    """PIDs of this user's processes whose environment holds `marker` (this test's folder): ours only."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:  # gone, or another user's
            continue
    return pids


def _stop(marker: str) -> None:
    """Stop every process this test started (SIGTERM, then SIGKILL after 15 s)."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        pids = _ours(marker)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
            time.sleep(0.5)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def _run(argv: list, env: dict, timeout: float, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cluster():
    """(env with the token, env without it, dashboard URL, GCS address, folder): head + 2 workers."""
    pytest.importorskip("aiohttp", reason="the cluster test needs the cluster extra: pip install -e '.[cluster]'")
    # A short folder: Ray's socket paths live in it and must stay under the kernel's 107 characters.
    root = Path(tempfile.mkdtemp(prefix="bnd-cl-", dir="/tmp"))
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    (root / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token),
        HOME=str(root / "home"),  # ~/.ray of this test only: the machine's own token is never read or written
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # the job's `python` is this venv's
        RAY_USAGE_STATS_ENABLED="0", RAY_raylet_start_wait_time_s="120", PYTHONUNBUFFERED="1",
    )
    ports = _free_ports(3 * (6 + WORKER_PORTS) + 3)
    gcs, dashboard, client = ports.pop(), ports.pop(), ports.pop()
    ray = BIN / "ray"
    try:
        head = _run([ray, "start", "--head", "--num-cpus=0", "--num-gpus=0", "--node-ip-address=127.0.0.1",
                     f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                     f"--ray-client-server-port={client}", f"--temp-dir={root / 'ray'}", "--disable-usage-stats",
                     *_node_ports(ports)], env, timeout=180)
        assert head.returncode == 0, head.stdout + head.stderr
        for _ in range(2):
            worker = _run([ray, "start", f"--address=127.0.0.1:{gcs}", "--num-cpus=1", "--num-gpus=0",
                           "--node-ip-address=127.0.0.1", *_node_ports(ports)], env, timeout=180)
            assert worker.returncode == 0, worker.stdout + worker.stderr
        without_token = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN_PATH"}
        without_token["HOME"] = str(root / "no_token_home")
        yield env, without_token, f"http://127.0.0.1:{dashboard}", f"127.0.0.1:{gcs}", root
    finally:
        _stop(str(root))
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def job(cluster):
    """docs/cluster.md's `ray job submit --working-dir . -- python -m study run --address auto ...`, to the end."""
    from study.data.fake_data import write_fake_fashion_mnist

    env, _, dashboard, _, root = cluster
    data = write_fake_fashion_mnist(root / "data", n_train=1000, n_test=200, seed=2, noise=0.6)
    space = root / "two_cells.yaml"
    space.write_text(TWO_CELLS)
    started = time.monotonic()
    submitted = _run([
        BIN / "ray", "job", "submit", "--address", dashboard, "--working-dir", ".",
        "--runtime-env-json", json.dumps({"excludes": [".git", ".venv", "experiments"]}),
        "--submission-id", "cluster-test-1",
        "--", "python", "-m", "study", "run", "--address", "auto", "--storage", root / "storage", "--name", "cl",
        "--space", space, "--budget", "smoke", "--num-samples", "4", "--data-dir", data,
    ], env, timeout=1500)
    return submitted, time.monotonic() - started, root / "storage" / "cl"


def test_the_job_runs_search_stage_two_and_report(job):
    submitted, wall_s, experiment = job
    log = submitted.stdout + submitted.stderr
    print(f"ray job submit took {wall_s:.0f} s")
    assert submitted.returncode == 0, log[-6000:]
    assert "succeeded" in log, log[-3000:]
    trials = pd.read_csv(experiment / "trials.csv")
    assert len(trials) == 4 and set(trials["cell"]) == {"bn=none", "bn=pre_act"}
    assert (trials["status"] != "error").all(), trials["error"].dropna().tolist()
    cv = pd.read_csv(experiment / "cv.csv")
    assert set(cv["replicate_kind"]) == {"seed"} and set(cv["replicate"]) == {0, 1}
    conclusions = json.loads((experiment / "report" / "conclusions.json").read_text())
    assert conclusions["source"] == "replicates" and conclusions["replicate_set"] == "seeds-2"
    assert (experiment / "report" / "report.html").is_file()


def test_every_trial_ran_on_a_worker_node(job, cluster):
    env, _, dashboard, _, _ = cluster
    nodes = json.loads(_run([BIN / "ray", "list", "nodes", "--address", dashboard, "--format", "json"], env, 120).stdout)
    head = {n["node_id"] for n in nodes if n["is_head_node"]}
    workers = {n["node_id"] for n in nodes if not n["is_head_node"]}
    assert len(head) == 1 and len(workers) == 2
    listed = _run([BIN / "ray", "list", "actors", "--address", dashboard, "--format", "json", "--detail",
                   "--limit", "10000"], env, 120)
    actors = json.loads(listed.stdout)
    # Tune runs each trial (search, stage 2) in an actor of the function trainable's class, ImplicitFunc.
    trial_actors = [a for a in actors if a["class_name"].endswith("ImplicitFunc")]
    assert trial_actors, sorted({a["class_name"] for a in actors})
    assert {a["node_id"] for a in trial_actors} <= workers, [(a["class_name"], a["node_id"]) for a in trial_actors]
    # The job's driver (under its supervisor) runs on the head, which has no CPU for a trial.
    supervisors = [a for a in actors if a["class_name"] == "JobSupervisor"]
    assert supervisors and {a["node_id"] for a in supervisors} <= head


def test_a_machine_without_the_token_is_refused_with_a_clear_error(cluster, tmp_path):
    _, without_token, dashboard, gcs, _ = cluster
    submitted = _run([BIN / "ray", "job", "submit", "--address", dashboard, "--", "python", "-c", "print(1)"],
                     without_token, timeout=300)
    assert submitted.returncode != 0
    assert "token" in (submitted.stdout + submitted.stderr).lower(), submitted.stdout + submitted.stderr
    # A driver that joins the cluster directly is told what to set, and where the token goes.
    joined = _run([sys.executable, "-m", "study", "run", "--address", gcs, "--budget", "smoke", "--storage",
                   tmp_path / "storage", "--name", "no-token"], without_token, timeout=300)
    message = " ".join(joined.stderr.split())
    assert joined.returncode == 2, joined.stdout + joined.stderr
    assert "RAY_AUTH_MODE=token" in message and "auth_token" in message
