"""The Ray session every command shares: connecting, sizing concurrency, recording the machine."""

from __future__ import annotations

import os
import platform
import re
import signal
import socket
import sys
from importlib.metadata import PackageNotFoundError, version

import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from study.runtime import interruption
from study.runtime.checkpoint_retention import SupersededCheckpointCleaner
from study.runtime.raylet_watch import watch_raylet
from study.vocabulary.errors import UserError

# On a cluster that autoscales, the trials waiting for resources are what make the
# autoscaler add nodes, so the default must not be limited to what exists right now.
MIN_CLUSTER_CONCURRENCY = 8


CONNECT_TIMEOUT_S = 5
TOKEN_ADVICE = (
    "set RAY_AUTH_MODE=token and give this machine the cluster's token: the head's ~/.ray/auth_token copied to "
    "~/.ray/auth_token here (or RAY_AUTH_TOKEN_PATH, or the token itself in RAY_AUTH_TOKEN); docs/cluster.md"
)


class RayConnectionError(UserError):
    """The Ray to join cannot be reached, or refuses this machine."""


class ResourceError(UserError):
    """A trial asks for more than the machine has: it would wait forever."""


def connect(address: str | None, cpus_per_trial: float = 0, gpus_per_trial: float = 0) -> None:
    """Join the Ray at `address` ('auto': a running cluster), or start an embedded one when None.

    Fails in seconds, with what to do, where Ray would wait: nothing listening at the
    address, a cluster that wants a token this machine lacks, or (embedded) a trial
    asking for a GPU or more CPUs than the machine has (`check_resources`).
    """
    _without_tensorboard_logger()  # also for `Tuner.restore`, which reuses the saved RunConfig
    if not ray.is_initialized():
        sigterm = signal.getsignal(signal.SIGTERM)
        if address:
            _join(address)
        else:
            _loopback_only()
            # "local": a new Ray, never one that `ray start` left running on this machine.
            ray.init(address="local", include_dashboard=False, log_to_driver=False, runtime_env=worker_runtime_env())
            watch_raylet()  # its raylet killed: our message and the resume command, not Ray's exit 1
        interruption.keep_sigterm(sigterm)
        warning = secrets_warning(dict(ray.get_runtime_context().runtime_env.get("env_vars") or {}))
        if warning:
            print(f"Warning: {warning}", file=sys.stderr)
    check_resources(address, cpus_per_trial, gpus_per_trial)


SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|CREDENTIAL|ACCESS_KEY|API_KEY", re.IGNORECASE)


def secrets_warning(env_vars: dict) -> str | None:
    """What to say of credentials in the job's runtime environment (e.g. `ray job submit
    --runtime-env-json`), by name and never by value; None when there are none.

    Ray writes a job's runtime environment, values included, into its session logs
    (/tmp/ray/session_*/logs), which docs/cluster.md's steps copy down: on a cluster the
    nodes get S3 access from their IAM role instead.
    """
    names = sorted(name for name in env_vars if SECRET_NAME.search(name))
    if not names:
        return None
    return (f"this job's runtime environment sets {', '.join(names)}; Ray writes runtime environments, values "
            "included, into its session logs (/tmp/ray/session_*/logs). Give the nodes an IAM role (cluster.yaml's "
            "IamInstanceProfile) instead of passing credentials, and rotate these.")


def _loopback_only() -> None:
    """Make an embedded Ray listen on 127.0.0.1 only, not on every interface.

    Ray 2.60 takes the node's address from `services.get_node_ip_address`, which gives
    127.0.0.1 only when multi-node mode is off, and its GCS, raylet, workers and agents
    bind to the node's address (`ray.init(_node_ip_address="127.0.0.1")` alone is
    replaced by the machine's IP). Turning the mode off is right for a single machine
    and only there: the constant for this process (Ray is imported already, and reads it
    at call time), the environment variable for the processes Ray starts.
    """
    import ray._private.ray_constants as ray_constants  # private (pyproject.toml bounds Ray to versions tested)

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def _join(address: str) -> None:
    check_reachable(address)
    try:
        ray.init(address=address, runtime_env=worker_runtime_env())
    except ray.exceptions.AuthenticationError as exc:
        raise RayConnectionError(
            f"the Ray cluster at --address {address} refused this machine ({exc.message}); {TOKEN_ADVICE}"
        ) from None
    except ConnectionError as exc:
        # A cluster with token authentication (Ray's default) rejects a driver without the token the same way.
        token = ("this machine has no Ray token; if the cluster uses token authentication (Ray's default), "
                 f"{TOKEN_ADVICE}" if not _has_token() else "if the cluster uses token authentication, check that "
                 "this machine's token is the cluster's")
        raise RayConnectionError(
            f"cannot join a Ray cluster at --address {address} ({exc}); {token}. Otherwise start the cluster "
            "(`ray start --head`, or `ray up cluster.yaml`), or leave --address out to run on an embedded Ray"
        ) from None


def _has_token() -> bool:
    """A Ray token is at hand for this process (the places Ray looks)."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or os.path.isfile(path)


def check_reachable(address: str) -> None:
    """Something answers at HOST:PORT within CONNECT_TIMEOUT_S ('auto' and URIs are Ray's to find)."""
    if address == "auto" or "://" in address:
        return
    host, port = host_and_port(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise RayConnectionError(
            f"nothing answers at --address {address} within {CONNECT_TIMEOUT_S} s ({exc.strerror or exc}); check the "
            "head node's address and port (6379 unless `ray start --port` said otherwise) and that this machine "
            "can reach it, or leave --address out to run on an embedded Ray"
        ) from None


def host_and_port(address: str) -> tuple[str, int]:
    """HOST:PORT, or [IPv6]:PORT, as a host and a port number; `RayConnectionError` otherwise."""
    host, _, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif address.startswith("["):  # [IPv6] with no port after it
        raise RayConnectionError(f"--address {address!r} has no port: write [IPV6]:PORT, e.g. [fd00::5]:6379")
    elif ":" in host:  # an IPv6 address without brackets: where its port starts is a guess
        raise RayConnectionError(f"--address {address!r}: write an IPv6 address in brackets, e.g. [fd00::5]:6379")
    if not host or not port.isdigit():
        raise RayConnectionError(f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379) or 'auto'")
    return host, int(port)


def check_resources(address: str | None, cpus_per_trial: float, gpus_per_trial: float) -> None:
    """On an embedded Ray, a trial must fit on the machine; a cluster may still add nodes, so there it is a note."""
    total = ray.cluster_resources()
    gpus, cpus = total.get("GPU", 0), total.get("CPU", 0)
    if gpus_per_trial > 0 and gpus == 0:
        if address:
            print(f"Note: the cluster has no GPU now; each trial waits for a {gpus_per_trial:g} GPU share until the "
                  "autoscaler starts GPU workers (Ctrl-C stops cleanly).")
            return
        raise ResourceError(
            f"each trial asks for {gpus_per_trial:g} of a GPU (--gpus-per-trial, or the budget's default), but Ray "
            "sees no GPU on this machine, so no trial would ever start; pass --gpus-per-trial 0 to train on the CPU "
            "(with --cpus-per-trial N)"
        )
    if not address and gpus_per_trial > gpus:
        raise ResourceError(
            f"each trial asks for {gpus_per_trial:g} GPUs (--gpus-per-trial), but this machine's Ray has {gpus:g}, "
            f"so no trial would ever start; pass --gpus-per-trial {gpus:g} or less (a fraction shares a GPU)"
        )
    if not address and cpus_per_trial > cpus:
        raise ResourceError(
            f"each trial asks for {cpus_per_trial:g} CPUs (--cpus-per-trial), but this machine's Ray has {cpus:g}, "
            f"so no trial would ever start; pass --cpus-per-trial {max(cpus, 1):g} or less"
        )


def worker_runtime_env() -> dict:
    """The environment of this study's Ray workers, on this machine or a cluster.

    A reused worker runs each trial in a new thread, and glibc gives new threads new
    malloc arenas (up to 8 per core), each keeping memory its trial freed: over 36
    short trials a worker's peak memory grew from 1.0 to 1.4-1.5 GB on a 2-core
    machine, and stayed at 1.1 GB with 2 arenas. Trials run one per worker process,
    so few arenas cost no contention. The cap must be in place when the process
    starts, hence the runtime environment (merged with a submitted job's own). A
    MALLOC_ARENA_MAX already set is left to the user: workers of an embedded Ray
    inherit it, and Ray refuses a job whose runtime environment sets it twice.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return {}
    return {"env_vars": {"MALLOC_ARENA_MAX": "2"}}


def run_config(storage_path: str, name: str) -> tune.RunConfig:
    """Tune state in `storage_path/name`, the same for `study run`, `study cv` and `study final`:
    each trial's checkpoints, superseded ones deleted once no resume can need them
    (see `study.runtime.checkpoint_retention`), one retry, CSV and JSON result files."""
    return tune.RunConfig(
        name=name,
        storage_path=storage_path,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        callbacks=[*_result_loggers(), SupersededCheckpointCleaner()],
        # One retry covers a lost node; a diverged trial ends normally (status diverged), so it is not retried.
        failure_config=tune.FailureConfig(max_failures=1),
        verbose=1,
    )


def _result_loggers() -> list:
    """Tune's per-trial CSV and JSON result files, without its TensorBoard logger.

    Tune adds a TensorBoardX logger by default, and importing tensorboardX imports
    PyTorch into the driver (about 25 s of CPU and 640 MB on a 2-core machine) only to
    write event files; epochs.csv and the Optuna journals serve instead.
    """
    _without_tensorboard_logger()
    return [CSVLoggerCallback(), JsonLoggerCallback()]


def _without_tensorboard_logger() -> None:
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # read by Tune when a fit starts


def default_concurrency(cpus_per_trial: float, gpus_per_trial: float, address: str | None) -> int:
    """As many trials as the cluster has room for now, by CPUs and GPUs."""
    resources = ray.cluster_resources()
    by_cpu = resources.get("CPU", 0) / max(cpus_per_trial, 1e-9)
    by_gpu = resources.get("GPU", 0) / gpus_per_trial if gpus_per_trial else by_cpu
    fits_now = max(1, int(min(by_cpu, by_gpu)))
    return max(fits_now, MIN_CLUSTER_CONCURRENCY) if address else fits_now


def versions() -> dict:
    """The versions of Python and of the packages whose behaviour the results depend on."""
    out = {"python": sys.version.split()[0]}
    for package in ("torch", "torchvision", "ray", "optuna", "numpy", "pandas"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def hardware() -> dict:
    info = {"platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count()}
    if ray.is_initialized():
        info["ray_cluster_resources"] = ray.cluster_resources()
    return info
