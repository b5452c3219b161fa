"""The Ray session every command shares: connecting, sizing concurrency, recording the machine."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from study.runtime.checkpoint_retention import SupersededCheckpointCleaner

# On a cluster that autoscales, the trials waiting for resources are what make the
# autoscaler add nodes, so the default must not be limited to what exists right now.
MIN_CLUSTER_CONCURRENCY = 8


def connect(address: str | None) -> None:
    """Join the Ray at `address` ('auto': a running cluster), or start an embedded one when None."""
    _without_tensorboard_logger()  # also for `Tuner.restore`, which reuses the saved RunConfig
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, runtime_env=worker_runtime_env())
    else:
        ray.init(include_dashboard=False, log_to_driver=False, runtime_env=worker_runtime_env())


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
