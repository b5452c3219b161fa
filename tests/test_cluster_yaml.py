"""cluster.yaml: valid for Ray's cluster launcher, and shaped the way the study needs.

Validation is offline: `prepare_config` merges the AWS defaults that ship with Ray
(a local YAML file) and `validate_config` checks the result against Ray's JSON
schema, the two steps `ray up` takes before it first talks to AWS.
"""

import copy
import shlex
import sys
import types
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"


def _load() -> dict:
    with open(CLUSTER_YAML) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def prepared() -> dict:
    config = prepare_config(_load())
    validate_config(config)
    return config


def _worker_types(config: dict) -> dict:
    return {
        name: node_type
        for name, node_type in config["available_node_types"].items()
        if name != config["head_node_type"]
    }


def test_passes_rays_schema(prepared):
    assert prepared["provider"]["type"] == "aws"
    # What the user wrote must not be silently replaced by Ray's defaults.
    raw = _load()
    for key in ("setup_commands", "file_mounts", "available_node_types", "max_workers"):
        assert key in raw, f"cluster.yaml should set {key!r} itself"


def test_no_trial_can_land_on_the_head(prepared):
    head = prepared["available_node_types"][prepared["head_node_type"]]
    # A trial asks for at least one CPU or a GPU share: zero of both keeps it off.
    assert head["resources"].get("CPU") == 0, head["resources"]
    assert head["resources"].get("GPU") == 0, head["resources"]
    assert head.get("min_workers", 0) == 0 and head.get("max_workers", 0) == 0
    assert "InstanceType" in head["node_config"]


def test_workers_are_an_autoscaling_gpu_pool(prepared):
    workers = _worker_types(prepared)
    assert workers, "cluster.yaml has no worker node type"
    gpu_workers = {n: t for n, t in workers.items() if t["resources"].get("GPU", 0) >= 1}
    assert gpu_workers, f"no worker type offers a GPU: {workers}"
    for name, node_type in gpu_workers.items():
        assert node_type["resources"].get("CPU", 0) >= 1, name
        assert 0 <= node_type["min_workers"] <= node_type["max_workers"], name
        assert node_type["max_workers"] >= 1, name
        assert node_type["max_workers"] <= prepared["max_workers"], name
        assert {"InstanceType", "ImageId"} <= set(node_type["node_config"]), name
    assert sum(t["min_workers"] for t in workers.values()) <= prepared["max_workers"]


def _project_dir(prepared) -> str:
    """The remote directory the project is copied to (the parent of pyproject.toml)."""
    remote = [r for r in prepared["file_mounts"] if r.endswith("/pyproject.toml")]
    assert len(remote) == 1, f"pyproject.toml is not copied to the nodes: {prepared['file_mounts']}"
    return remote[0].rsplit("/", 1)[0]


def test_file_mounts_copy_everything_pip_needs():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    mounts = _load()["file_mounts"]
    # The checkout's files (the token comes from the user's home: test_the_cluster_is_not_open).
    mounts = {remote: local for remote, local in mounts.items() if not local.startswith("~/")}
    local = {Path(p).as_posix().removeprefix("./") for p in mounts.values()}
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)
    needed = {"pyproject.toml", "constraints.txt"}
    readme = project["project"].get("readme")
    if isinstance(readme, str):
        needed.add(readme)
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        needed.add(pattern.rstrip("*").rstrip("."))
    assert needed <= local, f"not copied to the nodes: {sorted(needed - local)}"
    # `ray up` runs from the checkout root and stops on a missing local path.
    missing = sorted(p for p in local if not (ROOT / p).exists())
    assert not missing, f"file_mounts name paths missing from the checkout: {missing}"
    # All copied into one project directory, each under its own name.
    remote_dirs = {r.rsplit("/", 1)[0] for r in mounts}
    assert len(remote_dirs) == 1, remote_dirs
    for remote, local_path in mounts.items():
        assert remote.rsplit("/", 1)[1] == Path(local_path).name, (remote, local_path)


@pytest.mark.parametrize("commands", ["head_setup_commands", "worker_setup_commands"])
def test_setup_installs_project_and_dataset(prepared, commands):
    # prepare_config prepends the common setup_commands to both lists.
    script = "\n".join(prepared[commands])
    project = _project_dir(prepared)
    spellings = {project, project.replace("~", "$HOME", 1)}
    assert any(
        "pip install" in c
        and "-c" in c.split()
        and "constraints.txt" in c
        and any(f"-e {p}" in c or f'-e "{p}[download,cluster]"' in c for p in spellings)  # torchvision, ray[default]
        for c in prepared[commands]
    ), f"{commands} do not pip install -e {project} with -c constraints.txt"
    # The cluster extra (pyproject.toml) is ray[default]: dashboard, jobs, autoscaler.
    assert "[download,cluster]" in script or "ray[default]" in script, "the nodes need ray[default]"
    assert "apt-get" in script and "dataset-fashion-mnist" in script


def test_head_can_launch_aws_workers(prepared):
    assert any("boto3" in c for c in prepared["head_setup_commands"])
    assert any("--autoscaling-config" in c for c in prepared["head_start_ray_commands"])


def test_gpu_checked_on_workers(prepared, monkeypatch):
    """A worker's setup fails, naming the CUDA version, where torch sees no GPU, and passes where it does."""
    checks = [c for c in prepared["worker_setup_commands"] if "python -c" in c]
    assert len(checks) == 1
    argv = shlex.split(checks[0])
    assert argv[0] == "~/venv/bin/python" and argv[1] == "-c"  # the project's environment, not the image's
    code = argv[2]
    fake = types.SimpleNamespace(__version__="2.14.1", version=types.SimpleNamespace(cuda="12.8"),
                                 cuda=types.SimpleNamespace(is_available=lambda: False))
    monkeypatch.setitem(sys.modules, "torch", fake)
    with pytest.raises(AssertionError, match=r"CUDA 12.8\) sees no GPU"):
        exec(code, {})
    fake.cuda.is_available = lambda: True
    exec(code, {})  # a GPU: the setup goes on


def _break_unknown_top_level_key(config):
    config["max_worker"] = 8  # typo of max_workers


def _break_wrong_type(config):
    config["max_workers"] = "eight"


def _break_fractional_resource(config):
    # Ray's schema wants whole numbers of logical resources per node.
    config["available_node_types"][config["head_node_type"]]["resources"]["GPU"] = 0.5


def _break_unknown_node_type_key(config):
    worker = next(iter(_worker_types(config).values()))
    worker["resource"] = worker.pop("resources")


def _break_head_type(config):
    config["head_node_type"] = "no_such_type"


def _break_min_above_max(config):
    worker = next(iter(_worker_types(config).values()))
    worker["min_workers"] = config["max_workers"] + 1


@pytest.mark.parametrize(
    "break_config",
    [
        _break_unknown_top_level_key,
        _break_wrong_type,
        _break_fractional_resource,
        _break_unknown_node_type_key,
        _break_head_type,
        _break_min_above_max,
    ],
)
def test_validation_rejects_broken_configs(break_config):
    config = copy.deepcopy(_load())
    break_config(config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        validate_config(prepare_config(config))


def test_the_cluster_is_not_open(prepared):
    raw = _load()
    head_start = " ".join(raw["head_start_ray_commands"])
    worker_start = " ".join(raw["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "0.0.0.0" not in head_start
    for start in (head_start, worker_start):
        assert "RAY_AUTH_MODE=token" in start, start
    # The token travels from the user's home to every node, never from the checkout.
    token = raw["file_mounts"]["~/.ray/auth_token"]
    assert token.startswith("~/") and not token.startswith("./")
    # Each node type brings its own security group, so Ray never creates one with SSH open to 0.0.0.0/0.
    for name, node_type in prepared["available_node_types"].items():
        assert node_type["node_config"].get("SecurityGroupIds"), name
