"""Study orchestration: a Ray Tune `Tuner` with an Optuna searcher and ASHA.

One Tuner runs every scientific cell concurrently. `CellSearcher` gives each cell
its own seeded TPE study and exactly the same trial budget; `CellScheduler` gives
each cell its own ASHA rungs, so no trial is stopped because another cell did
better. `run_study` starts (or joins) Ray, builds the Tuner, or restores it when
the experiment already exists, runs it, and writes the experiment directory.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import optuna
import pandas as pd
import ray
from ray import tune

from search_spaces import SearchSpace, load_space
from study.budgets import Budget, get_budget, gpu_share
from study.config import ModelConfig
from study.cell_scheduler import CellScheduler
from study.cell_search import CellSearcher
from study.datasets import find_data_dir, load_arrays
from study.results import read_text, tables_from_results, write_csv, write_json
from study.trainable import train_trial

METRIC, MODE = "val_acc", "max"


class StudyError(ValueError):
    """The study cannot start or resume as asked; the message says what to change."""


@dataclass(frozen=True)
class StudyOptions:
    """What `study run` was asked to do (command-line options, resolved)."""

    space: str = "default"
    budget: str = "quick"
    model: str | None = None
    num_samples: int | None = None
    max_epochs: int | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    max_concurrent: int | None = None
    storage: str = "experiments"
    name: str | None = None
    address: str | None = None
    data_dir: str | None = None
    seed: int = 0
    grace_period: int | None = None
    reduction_factor: float | None = None
    train_size: int | None = None

    def experiment_name(self) -> str:
        return self.name or f"{Path(self.space).stem}-{self.budget}"

    def storage_uri(self) -> str:
        return self.storage if "://" in self.storage else str(Path(self.storage).expanduser().resolve())


@dataclass(frozen=True)
class StudyPlan:
    """Everything resolved before Ray starts: what will run, and where."""

    options: StudyOptions
    space: SearchSpace
    budget: Budget
    samples_per_cell: int
    experiment_uri: str
    param_space: dict  # fixed values merged into every suggestion

    @property
    def n_cells(self) -> int:
        return len(self.space.named_cells())

    @property
    def num_samples(self) -> int:
        return self.samples_per_cell * self.n_cells

    def journal_dir(self) -> Path:
        """Where each cell's Optuna journal lives: the experiment's `optuna/` folder when local."""
        if "://" not in self.experiment_uri:
            return Path(self.experiment_uri) / "optuna"
        # Remote storage: journals stay on the driver; the searcher's checkpoints carry
        # a copy, so a resume on a new head node rewrites them.
        return Path(tempfile.gettempdir()) / "bn-dropout-study" / self.options.experiment_name() / "optuna"

    def record(self) -> dict:
        """The part of study.json that must match for a resume to be valid."""
        budget = self.budget
        return {
            "space": self.space.to_dict(),
            "budget": asdict(budget),
            "samples_per_cell": self.samples_per_cell,
            "n_cells": self.n_cells,
            "num_samples": self.num_samples,
            "seed": self.options.seed,
            "metric": METRIC,
            "mode": MODE,
            "param_space": self.param_space,
            "searcher": {
                "type": "CellSearcher", "sampler": "TPE, one study per cell", "seeds": "seed + cell index",
                "completed_value": "last", "journal_dir": str(self.journal_dir()),
            },
            "scheduler": {
                "type": "CellScheduler (one ASHA per cell)", "time_attr": "epoch", "max_t": budget.max_epochs,
                "grace_period": min(budget.grace_period, budget.max_epochs),
                "reduction_factor": budget.reduction_factor, "early_stopping": self.space.early_stopping,
            },
        }


def plan_study(options: StudyOptions) -> StudyPlan:
    """Validate options, space and data before anything starts."""
    space = load_space(options.space)
    budget = get_budget(options.budget).with_overrides(
        max_epochs=options.max_epochs,
        cpus_per_trial=options.cpus_per_trial,
        gpus_per_trial=options.gpus_per_trial,
        grace_period=options.grace_period,
        reduction_factor=options.reduction_factor,
        train_size=options.train_size,
    )
    # Resolve the dataset now: a missing one fails before Ray starts, and workers
    # (which share the driver's filesystem layout) don't each search or download.
    data_dir = str(find_data_dir(options.data_dir))
    load_arrays(data_dir, "train")  # a corrupt or truncated file fails here, not in every trial
    fixed = {**space.fixed}
    if options.model:
        if "model" in space.scientific:
            raise StudyError(f"--model {options.model} conflicts with space {space.name!r}, where 'model' is a scientific factor")
        fixed["model"] = options.model
    if options.gpus_per_trial is None and budget.gpus_per_trial > 0:
        default_model = fixed.get("model", ModelConfig.model)
        models = {cell.settings.get("model", default_model) for cell in space.named_cells()}
        budget = budget.with_overrides(gpus_per_trial=gpu_share(models))
    param_space = {
        **fixed,
        "max_epochs": budget.max_epochs,
        "batch_size": fixed.get("batch_size", budget.batch_size),
        "train_size": budget.train_size,
        "val_size": budget.val_size,
        "data_dir": data_dir,
        "seed": options.seed,
    }
    n_cells = len(space.named_cells())
    if options.num_samples:
        if options.num_samples % n_cells:
            raise StudyError(
                f"--num-samples {options.num_samples} is not a multiple of the {n_cells} cells of space "
                f"{space.name!r}; every cell must get the same budget, so pass a multiple of {n_cells}"
            )
        samples_per_cell = options.num_samples // n_cells
    else:
        samples_per_cell = budget.samples_per_cell
    experiment_uri = f"{options.storage_uri().rstrip('/')}/{options.experiment_name()}"
    return StudyPlan(options, space, budget, samples_per_cell, experiment_uri, param_space)


def build_tuner(plan: StudyPlan) -> tune.Tuner:
    budget = plan.budget
    journal_dir = plan.journal_dir()
    searcher = CellSearcher(
        plan.space.named_cells(),
        samples_per_cell=plan.samples_per_cell,
        max_epochs=budget.max_epochs,
        journal_dir=journal_dir,
        seed=plan.options.seed,
    )
    scheduler = CellScheduler(
        max_t=budget.max_epochs,
        grace_period=min(budget.grace_period, budget.max_epochs),
        reduction_factor=budget.reduction_factor,
        early_stopping=plan.space.early_stopping,
        state_file=journal_dir / "asha_rungs.pkl",
    )
    return tune.Tuner(
        _trainable(budget),
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=plan.num_samples,
            max_concurrent_trials=plan.options.max_concurrent or _default_concurrency(budget, plan.options.address),
            reuse_actors=True,
        ),
        run_config=_run_config(plan),
    )


def _trainable(budget: Budget):
    return tune.with_resources(train_trial, {"cpu": budget.cpus_per_trial, "gpu": budget.gpus_per_trial})


def _run_config(plan: StudyPlan) -> tune.RunConfig:
    return tune.RunConfig(
        name=plan.options.experiment_name(),
        storage_path=plan.options.storage_uri(),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        # One retry covers a lost node; a diverged trial fails again and stays failed.
        failure_config=tune.FailureConfig(max_failures=1),
        verbose=1,
    )


# On a cluster that autoscales, the trials waiting for resources are what make the
# autoscaler add nodes, so the default must not be limited to what exists right now.
MIN_CLUSTER_CONCURRENCY = 8


def _default_concurrency(budget: Budget, address: str | None) -> int:
    """As many trials as the cluster has room for now, by CPUs and GPUs."""
    resources = ray.cluster_resources()
    by_cpu = resources.get("CPU", 0) / max(budget.cpus_per_trial, 1e-9)
    by_gpu = resources.get("GPU", 0) / budget.gpus_per_trial if budget.gpus_per_trial else by_cpu
    fits_now = max(1, int(min(by_cpu, by_gpu)))
    return max(fits_now, MIN_CLUSTER_CONCURRENCY) if address else fits_now


def _connect(address: str | None) -> None:
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address)
    else:
        ray.init(include_dashboard=False, log_to_driver=False)


def _check_resume(plan: StudyPlan) -> bool:
    """True when the experiment exists and can be resumed with this same plan."""
    previous = read_text(plan.experiment_uri, "study.json")
    if not tune.Tuner.can_restore(plan.experiment_uri):
        return False
    if previous is not None:
        recorded = json.loads(previous).get("plan")
        if recorded is not None and recorded != _jsonable(plan.record()):
            raise StudyError(
                f"experiment {plan.experiment_uri!r} exists but was started with different settings "
                "(space, budget, trial count or seed); resume it with the same options, "
                "or start a new study with --name NEW_NAME"
            )
    return True


def _jsonable(data: dict) -> dict:
    return json.loads(json.dumps(data, default=str))


def study_record(plan: StudyPlan, started: float, finished: float | None, trials: pd.DataFrame | None) -> dict:
    record = {
        "experiment": plan.experiment_uri,
        "space": plan.space.to_dict(),
        "options": asdict(plan.options),
        "plan": _jsonable(plan.record()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "versions": _versions(),
        "hardware": _hardware(),
    }
    if finished is not None:
        record["wall_s"] = round(finished - started, 1)
    if trials is not None:
        record["trials"] = trials["status"].value_counts().to_dict()
        record["trials_per_cell"] = {
            cell: group["status"].value_counts().to_dict() for cell, group in trials.groupby("cell")
        }
    return record


def _versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for package in ("torch", "torchvision", "ray", "optuna", "numpy", "pandas"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def _hardware() -> dict:
    info = {"platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count()}
    if ray.is_initialized():
        info["ray_cluster_resources"] = ray.cluster_resources()
    return info


def run_study(options: StudyOptions) -> tuple[str, pd.DataFrame]:
    """Run (or resume) a study; return the experiment URI and the trials table."""
    plan = plan_study(options)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per cell study otherwise
    _connect(options.address)
    started = time.time()
    if _check_resume(plan):
        print(f"Resuming experiment {plan.experiment_uri}")
        tuner = tune.Tuner.restore(plan.experiment_uri, trainable=_trainable(plan.budget), resume_errored=False)
    else:
        write_json(plan.experiment_uri, "study.json", study_record(plan, started, None, None))
        tuner = build_tuner(plan)
    results = tuner.fit()
    trials, epochs = tables_from_results(results, plan.space.factors)
    write_csv(plan.experiment_uri, "trials.csv", trials)
    write_csv(plan.experiment_uri, "epochs.csv", epochs)
    write_json(plan.experiment_uri, "study.json", study_record(plan, started, time.time(), trials))
    return plan.experiment_uri, trials
