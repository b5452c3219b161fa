"""What `study run` will do, resolved and checked before Ray, Optuna or PyTorch is imported.

A bad option, an unknown or invalid space, a missing or corrupt dataset all fail
here, within a second of the command starting, instead of after the heavy imports
and Ray's start-up. Nothing in this module starts or imports anything heavy.
"""

from __future__ import annotations

import hashlib
import math
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from search_spaces import SearchSpace, load_space
from study.tuning.budgets import Budget, get_budget, gpu_share
from study.vocabulary.config import PRECISIONS, ModelConfig
from study.vocabulary.errors import UserError
from study.vocabulary.tables import JOURNALS_DIR, is_uri
from study.data.datasets import find_data_dir, fingerprint, load_arrays
from study.runtime.tracking import check_trackers

METRIC, MODE = "val_acc", "max"

# The sampler of each cell's Optuna study (built in `study.tuning.cells.make_sampler`):
# qmc: scrambled Sobol points, space-filling from the first trial on, no model;
# tpe: TPE (constant liar), random for its first `tpe_startup_trials` finished trials;
# random: independent uniform (log-uniform on log ranges) draws.
SAMPLERS = ("qmc", "tpe", "random")
# Default: qmc below 16 trials per cell (the smoke and quick presets), tpe from 16 on
# (the full preset's 24). Below 16 a cell's TPE would model at most a handful of
# finished trials, most of them pruned by ASHA after a few epochs, from at most 5
# random start-up trials: too little to learn where a 2- or 3-d space is good, so the
# budget is better spent covering the space evenly, which a scrambled Sobol sequence
# does and independent random draws do not (they often leave half a range empty).
# From 16 on TPE has 5 or more start-up trials and 11 or more to spend on what they
# showed. The resolved name is what study.json records.
QMC_BELOW = 16


def default_sampler(samples_per_cell: int) -> str:
    """The sampler `study run` uses when none is asked for (see `QMC_BELOW`)."""
    return "qmc" if samples_per_cell < QMC_BELOW else "tpe"


def check_sampler(sampler: object) -> str:
    """`sampler` if it is one of `SAMPLERS`; a ValueError naming it and the choices otherwise."""
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise StudyError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    return sampler


def resolve_sampler(sampler: str | None, samples_per_cell: int) -> str:
    """`sampler`, checked, or the default for `samples_per_cell` when None."""
    return default_sampler(samples_per_cell) if sampler is None else check_sampler(sampler)


def tpe_startup_trials(samples_per_cell: int) -> int:
    """TPE's random start-up trials in a cell of `samples_per_cell` trials.

    A third of the budget, so that TPE models from several finished trials and still
    has two thirds left to use what it learnt; at most Optuna's default 10 (sized for
    studies of about a hundred trials, it would make every cell of a smaller budget
    purely random); at least 1, as TPE has nothing to model before a trial finishes.
    quick (4 per cell) -> 1, full (24) -> 8.
    """
    return max(1, min(10, samples_per_cell // 3))


def sampler_settings(sampler: str, samples_per_cell: int) -> dict:
    """The settings `study.tuning.cells.make_sampler` builds `sampler` with, for study.json."""
    if sampler == "qmc":
        return {"qmc_type": "sobol", "scramble": True}
    if sampler == "tpe":
        return {"n_startup_trials": tpe_startup_trials(samples_per_cell), "constant_liar": True}
    return {}


class StudyError(UserError):
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
    confirm_seeds: int | None = None  # stage 2: seeds per selected configuration (default: the budget's)
    sampler: str | None = None  # one of SAMPLERS; None: default_sampler(samples_per_cell)
    tracking: tuple[str, ...] = ()  # `study.runtime.tracking.TRACKERS` that log every trial (not part of a resume's check)
    precision: str | None = None  # auto | fp32 | bf16; None: the budget's

    def experiment_name(self) -> str:
        return self.name or f"{Path(self.space).stem}-{self.budget}"

    def storage_uri(self) -> str:
        return self.storage if is_uri(self.storage) else str(Path(self.storage).expanduser().resolve())


@dataclass(frozen=True)
class StudyPlan:
    """Everything resolved before Ray starts: what will run, and where."""

    options: StudyOptions
    space: SearchSpace
    budget: Budget
    samples_per_cell: int
    experiment_uri: str
    param_space: dict  # fixed values merged into every suggestion
    sampler: str  # resolved: options.sampler, or default_sampler(samples_per_cell)
    dataset: dict  # the training split's fingerprint (`study.data.datasets.fingerprint`)

    @property
    def n_cells(self) -> int:
        return len(self.space.named_cells())

    @property
    def num_samples(self) -> int:
        return self.samples_per_cell * self.n_cells

    def journal_dir(self) -> Path:
        """Where the search keeps each cell's Optuna journal and the ASHA rungs: the experiment's `optuna/` folder.

        For remote storage, the driver's local working copy of that folder (a journal
        needs a local file), one per experiment URI (see `study.tuning.state_files`).
        """
        if not self.is_remote:
            return Path(self.experiment_uri) / JOURNALS_DIR
        digest = hashlib.sha256(self.experiment_uri.encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / "bn-dropout-study" / f"{self.options.experiment_name()}-{digest}" / JOURNALS_DIR

    def lock_dir(self) -> str:
        """Where `study run` holds its lock: the experiment directory, or for remote storage (which has no
        locks) the driver's copy of its journals, which stops a second run of it on the same machine."""
        return str(self.journal_dir().parent) if self.is_remote else self.experiment_uri

    @property
    def is_remote(self) -> bool:
        """The experiment is in remote storage: the driver works on a local copy of its journals and rungs."""
        return is_uri(self.experiment_uri)

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
            "dataset": self.dataset,
            "metric": METRIC,
            "mode": MODE,
            "param_space": self.param_space,
            "searcher": {
                "type": "CellSearcher", "studies": "one Optuna study per cell", "sampler": self.sampler,
                "sampler_settings": sampler_settings(self.sampler, self.samples_per_cell), "seeds": "seed + cell index",
                "completed_value": "last", "journal_dir": str(self.journal_dir()),
            },
            "scheduler": {"type": "CellScheduler (one ASHA per cell)", "time_attr": "epoch", **self.scheduler_settings()},
        }

    def scheduler_settings(self) -> dict:
        """The `CellScheduler` arguments, as built and as recorded (a grace period longer than the budget is cut to it)."""
        budget = self.budget
        return {
            "max_t": budget.max_epochs, "grace_period": min(budget.grace_period, budget.max_epochs),
            "reduction_factor": budget.reduction_factor, "early_stopping": self.space.early_stopping,
        }


# Numeric options: (name on the command line, smallest allowed value, whether it must be whole).
NUMERIC_OPTIONS = {
    "num_samples": ("--num-samples", 1, True),
    "max_epochs": ("--max-epochs", 1, True),
    "train_size": ("--train-size", 10, True),
    "grace_period": ("--grace-period", 1, True),
    "max_concurrent": ("--max-concurrent", 1, True),
    "cpus_per_trial": ("--cpus-per-trial", 0, False),
    "gpus_per_trial": ("--gpus-per-trial", 0, False),
    "confirm_seeds": ("--seeds", 2, True),
    "seed": ("--seed", 0, True),
}


def check_options(options: StudyOptions) -> None:
    """Every numeric option in its range, before anything is read or started."""
    for field_name, (flag, low, whole) in NUMERIC_OPTIONS.items():
        value = getattr(options, field_name)
        if value is None:
            continue
        # not finite: nan passes every comparison, inf is no count of anything
        if isinstance(value, bool) or not math.isfinite(value) or (whole and int(value) != value) or value < low:
            kind = "a whole number" if whole else "a number"
            raise StudyError(f"{flag} must be {kind} of at least {low:g}, got {value!r}")
    if options.cpus_per_trial is not None and options.cpus_per_trial == 0:  # Ray would place unboundedly many
        raise StudyError("--cpus-per-trial must be a number above 0 (each training needs some CPU: e.g. 0.5 or 1), "
                         f"got {options.cpus_per_trial!r}")
    if options.reduction_factor is not None and not (options.reduction_factor > 1
                                                     and math.isfinite(options.reduction_factor)):
        raise StudyError(
            "--reduction-factor must be above 1 and finite (ASHA keeps the best 1/F at each rung), got "
            f"{options.reduction_factor!r}"
        )
    check_trackers(options.tracking)
    if options.precision is not None and options.precision not in PRECISIONS:
        raise StudyError(f"--precision must be one of {', '.join(PRECISIONS)}, got {options.precision!r}")
    if options.sampler is not None:
        check_sampler(options.sampler)
    if options.name is not None and (options.name in ("", ".", "..") or NOT_IN_A_NAME.search(options.name)):
        raise StudyError(
            f"--name {options.name!r} is not one folder inside --storage: no slash, backslash or control "
            "character, not '.' or '..'; e.g. --name bn-dropout-full"
        )


# What would put the experiment outside --storage, or split its path.
NOT_IN_A_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


def check_sizes(budget: Budget, n_images: int, data_dir: str) -> None:
    """The validation split and the training subset fit in the training images (else every trial would fail)."""
    if budget.val_size >= n_images:
        raise StudyError(
            f"the {budget.name} budget validates on {budget.val_size} images, but {data_dir} has only {n_images} "
            "training images; point --data-dir at the full FashionMNIST files"
        )
    left = n_images - budget.val_size
    if budget.train_size is not None and budget.train_size > left:
        raise StudyError(
            f"--train-size {budget.train_size} exceeds the {left} training images left after the {budget.val_size} "
            f"validation images ({n_images} in {data_dir}); choose at most {left}, or leave it out"
        )


def check_storage(storage: str, uri: str) -> None:
    """The storage exists (or is created) and can be written: a local directory, or a URI pyarrow can open."""
    if is_uri(uri):
        _check_remote_storage(storage, uri)
        return
    try:
        Path(uri).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=uri):
            pass
    except OSError as exc:
        raise StudyError(
            f"--storage {storage!r} cannot be written ({exc.strerror or type(exc).__name__}: "
            f"{exc.filename or uri}); choose a directory you can write to"
        ) from None


def _check_remote_storage(storage: str, uri: str) -> None:
    """Write and delete a probe object, as every node will write there (credentials, bucket, region), in a child
    process with a time limit: some stores' clients retry for many minutes where Ctrl-C cannot reach them."""
    from study.runtime.storage_probe import PROBE_TIMEOUT_S, StorageProbeError, probe_storage

    try:
        probe_storage(uri, PROBE_TIMEOUT_S)
    except StorageProbeError as exc:
        if exc.timed_out:
            raise StudyError(
                f"--storage {storage!r} did not answer a test write in {PROBE_TIMEOUT_S:.0f} s (its client is "
                "retrying: no credentials it can find, an unreachable endpoint, or a bucket that does not exist); "
                "check the URI and that this machine has credentials that may write there (for gs://: "
                "`gcloud auth application-default login` or GOOGLE_APPLICATION_CREDENTIALS; for s3://: `aws sts "
                "get-caller-identity`, the instance's IAM role), or use a local --storage"
            ) from None
        raise StudyError(
            f"--storage {storage!r} cannot be written ({exc}); check the "
            "URI (s3://BUCKET/PREFIX), that the bucket exists, and that this machine has credentials that may "
            "write there (`aws sts get-caller-identity`, the instance's IAM role)"
        ) from None


def trials_per_cell(num_samples: int | None, budget: Budget, space: SearchSpace) -> int:
    """Every cell's equal share of --num-samples (or the budget's); a space of one cell compares nothing."""
    n_cells = len(space.named_cells())
    if n_cells < 2:
        raise StudyError(
            f"space {space.name!r} has a single cell (no scientific factor takes two values), so the study would "
            "compare nothing; give at least one factor under `scientific:` two or more values"
        )
    if not num_samples:
        return budget.samples_per_cell
    if num_samples % n_cells:
        raise StudyError(
            f"--num-samples {num_samples} is not a multiple of the {n_cells} cells of space "
            f"{space.name!r}; every cell must get the same budget, so pass a multiple of {n_cells}"
        )
    return num_samples // n_cells


def plan_study(options: StudyOptions) -> StudyPlan:
    """Validate options, space and data before anything starts."""
    check_options(options)  # fails first, before the space and the data are read
    space = load_space(options.space)
    budget = get_budget(options.budget).with_overrides(
        max_epochs=options.max_epochs,
        cpus_per_trial=options.cpus_per_trial,
        gpus_per_trial=options.gpus_per_trial,
        grace_period=options.grace_period,
        reduction_factor=options.reduction_factor,
        train_size=options.train_size,
        confirm_seeds=options.confirm_seeds,
        precision=options.precision,
    )
    if options.grace_period is not None and options.grace_period >= budget.max_epochs:
        raise StudyError(
            f"--grace-period {options.grace_period} is not below the {budget.max_epochs} epochs of a trial "
            f"({'--max-epochs' if options.max_epochs else f'the {budget.name} budget'}): ASHA could never stop a "
            f"trial; choose a grace period below {budget.max_epochs}, or more --max-epochs"
        )
    # Resolve the dataset now: a missing one fails before Ray starts, and workers
    # (which share the driver's filesystem layout) don't each search or download.
    data_dir = str(find_data_dir(options.data_dir))
    images, labels = load_arrays(data_dir, "train")  # a corrupt or truncated file fails here, not in every trial
    check_sizes(budget, len(labels), data_dir)
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
        "precision": budget.precision,
    }
    samples_per_cell = trials_per_cell(options.num_samples, budget, space)
    experiment_uri = f"{options.storage_uri().rstrip('/')}/{options.experiment_name()}"
    sampler = resolve_sampler(options.sampler, samples_per_cell)
    check_storage(options.storage, options.storage_uri())  # last: nothing is created for input refused above
    return StudyPlan(options, space, budget, samples_per_cell, experiment_uri, param_space, sampler,
                     fingerprint(images, labels))
