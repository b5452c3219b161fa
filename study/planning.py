"""What `study run` will do, resolved and checked before Ray, Optuna or PyTorch is imported.

A bad option, an unknown or invalid space, a missing or corrupt dataset all fail
here, within a second of the command starting, instead of after the heavy imports
and Ray's start-up. Nothing in this module starts or imports anything heavy.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from search_spaces import SearchSpace, load_space
from study.budgets import Budget, get_budget, gpu_share
from study.config import ModelConfig
from study.datasets import find_data_dir, load_arrays

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
