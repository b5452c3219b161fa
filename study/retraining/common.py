"""Retraining picked configurations after the search: what `study cv` and `study final` share.

Both commands read what `study run` left in the experiment directory (trials.csv:
each trial's own factor and nuisance values; study.json: the settings every trial
shared, such as epochs, batch size and data directory), rebuild a picked trial's
flat config, and run Ray Tune trials with the study's resources in a sub-folder of
the experiment (`cv/`, `final/`). Running the command again with the same settings
resumes that sub-folder with `Tuner.restore`, like `study run`; a run with different
settings is refused rather than mixed in.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from ray import tune

from analysis.io import validate_trials
from study.vocabulary.config import TrialConfig
from study.vocabulary.errors import UserError
from study.vocabulary.factors import NUISANCE, SCIENTIFIC_FACTORS, is_diverged
from study.vocabulary import tables
from study.vocabulary.tables import RECORDED_SETTINGS, TRIAL_SETTINGS, is_uri, jsonable
from study.runtime import interruption
from study.runtime.progress import StageProgress
from study.tuning.ray_private import MovableFIFOScheduler, set_callbacks
from study.runtime.results import one_line
from study.vocabulary.storage import read_text
from study.runtime.ray_session import default_concurrency, hardware, run_config, versions
from study.runtime.resume import restore_or_build
from study.runtime.tracking import tracker_callbacks

# Settings that `TrialConfig.from_flat` accepts as floats with integer values.
INTEGER_SETTINGS = ("batch_size", "max_epochs", "train_size", "val_size", "seed", "split_seed", "n_folds")


@dataclass(frozen=True)
class RetrainingOptions:
    """Options `study cv` and `study final` share: what to retrain, on what, where."""

    experiment: str
    train_size: int | None = None
    max_epochs: int | None = None  # default: the study's epoch budget
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    max_concurrent: int | None = None
    address: str | None = None
    data_dir: str | None = None
    verbose: bool = False  # Tune's own console output instead of the one-line progress display
    tracking: tuple[str, ...] = ()  # `study.runtime.tracking.TRACKERS` that log every training


class RetrainError(UserError):
    """A configuration cannot be retrained as asked; the message says what to change."""


def experiment_uri(path: str) -> str:
    """A local experiment directory as an absolute path; a URI (s3://...) as given."""
    return path.rstrip("/") if is_uri(path) else str(Path(path).expanduser().resolve())


@dataclass(frozen=True)
class Experiment:
    """What `study run` recorded: the trials, and the settings they shared."""

    uri: str
    trials: pd.DataFrame  # validated (analysis.io.validate_trials): types parsed, cells named
    shared: dict  # study.json plan.param_space; {} for a hand-made trials.csv without study.json
    budget: dict  # study.json plan.budget (cpus_per_trial, gpus_per_trial, ...); {} when unknown
    seed: int  # the study's seed (study.json plan.seed; 0 when unknown)

    dataset: dict | None = None  # study.json plan.dataset: the search's training-set fingerprint

    def data_dir(self) -> str | None:
        """The dataset the study trained on, where it still lies; None (search the usual places) once it has
        moved, e.g. in a fresh clone or on another machine (`check_dataset` then tells a different one)."""
        recorded = self.shared.get("data_dir")
        return recorded if recorded and Path(recorded).is_dir() else None

    def check_dataset(self, data_dir: str, found: dict) -> None:
        """Stage 2 and final retrain on the search's training images, not on a different dataset."""
        if self.dataset is not None and found != self.dataset:
            raise RetrainError(
                f"the training files in {data_dir} ({found}) are not the ones the search of {self.uri} used "
                f"({self.dataset}); pass --data-dir with the study's dataset"
            )

    def read_table(self, filename: str) -> pd.DataFrame | None:
        text = read_text(self.uri, filename)
        return None if text is None else pd.read_csv(io.StringIO(text), dtype={"config_id": str, "trial_id": str})


def open_experiment(path: str) -> Experiment:
    """Read an experiment directory's trials.csv and study.json; clear errors when absent."""
    uri = experiment_uri(path)
    if not is_uri(uri) and not Path(uri).is_dir():
        raise RetrainError(
            f"experiment directory {path!r} does not exist; pass the directory `study run` wrote "
            "(STORAGE/NAME, e.g. experiments/default-quick)"
        )
    if is_uri(uri):
        _probe(path, uri)
    text = read_text(uri, tables.TRIALS)
    if text is None:
        raise RetrainError(
            f"{uri} has no trials.csv; run the study to the end first "
            "(`study run` with the same options resumes an interrupted one)"
        )
    trials = validate_trials(pd.read_csv(io.StringIO(text), dtype={"trial_id": str, "cell": str}))
    plan = json.loads(read_text(uri, tables.STUDY) or "{}").get("plan") or {}
    return Experiment(uri, trials, dict(plan.get("param_space") or {}), dict(plan.get("budget") or {}),
                      int(plan.get("seed", 0)), plan.get("dataset"))


def _probe(path: str, uri: str) -> None:
    """A test write to a remote experiment, in a child process with a time limit: a store whose client retries
    for minutes (gs:// without credentials) would otherwise hang the command where Ctrl-C cannot reach it."""
    from study.runtime.storage_probe import PROBE_TIMEOUT_S, StorageProbeError, probe_storage

    try:
        probe_storage(uri, PROBE_TIMEOUT_S)
    except StorageProbeError as exc:
        reason = f"no answer in {PROBE_TIMEOUT_S:.0f} s: its client is retrying" if exc.timed_out else str(exc)
        raise RetrainError(
            f"experiment {path!r} cannot be written ({reason}); check the URI and that this machine has "
            "credentials that may write there (gs://: GOOGLE_APPLICATION_CREDENTIALS; s3://: `aws sts "
            "get-caller-identity`)"
        ) from None


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _native(value: Any) -> Any:
    """A numpy scalar from a DataFrame as the plain Python value Tune configs hold."""
    return value.item() if isinstance(value, np.generic) else value


def training_config(row: Mapping, shared: Mapping, **settings: Any) -> dict:
    """The flat config that retrains the trial in `row` (a trials.csv row).

    Layers, later ones winning: `shared` (study.json's param_space: fixed values,
    epochs, data directory), the trial's own values from trials.csv, then `settings`
    (what the caller changes, e.g. the fold or the data directory). Checked with
    `TrialConfig.from_flat`, so a bad value fails before Ray starts.
    """
    flat = dict(shared)
    for key in TRIAL_SETTINGS:
        if key in row and not _missing(row[key]):
            flat[key] = _native(row[key])
    flat["cell"] = str(row["cell"])
    if "experiment" in row and not _missing(row["experiment"]):
        flat["experiment"] = int(row["experiment"])
    flat.update(settings)
    TrialConfig.from_flat(flat)
    # Counts back as integers (trials.csv gives 3.0 for an epoch count): what Tune shows and records.
    for key in INTEGER_SETTINGS:
        if flat.get(key) is not None:
            flat[key] = int(flat[key])
    return flat


def config_columns(flat: Mapping) -> dict:
    """cell, the scientific factors (normalised), nuisance values and recorded settings of a config."""
    cfg = TrialConfig.from_flat(dict(flat))
    values = cfg.to_row()
    out = {"cell": flat["cell"]}
    if "experiment" in flat:
        out["experiment"] = flat["experiment"]
    out.update({name: values[name] for name in (*SCIENTIFIC_FACTORS, *NUISANCE, *RECORDED_SETTINGS)})
    return out


@dataclass(frozen=True)
class Resources:
    """Per-trial resources and concurrency, as `study run` takes them."""

    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent: int | None = None
    address: str | None = None

    @classmethod
    def resolve(cls, budget: Mapping, cpus: float | None, gpus: float | None,
                max_concurrent: int | None, address: str | None) -> "Resources":
        """Options where given, else the study's recorded budget, else 1 CPU and no GPU."""
        cpus = float(cpus if cpus is not None else budget.get("cpus_per_trial", 1))
        gpus = float(gpus if gpus is not None else budget.get("gpus_per_trial", 0))
        if not (math.isfinite(cpus) and math.isfinite(gpus)) or cpus <= 0 or gpus < 0:
            raise RetrainError(f"--cpus-per-trial {cpus:g} / --gpus-per-trial {gpus:g}: a training needs a finite "
                               "number of CPUs above 0 and of GPUs at least 0 (e.g. --cpus-per-trial 1)")
        if max_concurrent is not None and max_concurrent < 1:
            raise RetrainError(f"--max-concurrent must be at least 1, got {max_concurrent}")
        return cls(cpus, gpus, max_concurrent, address)

    def wrap(self, trainable: Callable) -> Callable:
        return tune.with_resources(trainable, {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial})

    def concurrency(self) -> int:
        return self.max_concurrent or default_concurrency(self.cpus_per_trial, self.gpus_per_trial, self.address)


def fit_resumable(experiment: str, folder: str, record_file: str, plan: dict, trainable: Callable,
                  param_space: dict, resources: Resources, command: str, display: StageProgress | None,
                  tracking: tuple[str, ...] = (), named: dict | None = None):
    """Run (or resume) `experiment/folder`: every configuration of `param_space` to the end; then fit.

    The console shows `display` (`study.runtime.progress`), or Tune's own output when it is None;
    `tracking` names the trackers that log every training (`study.runtime.tracking`).

    No searcher and no scheduler: stage 2 and final evaluation train everything to
    the full budget. `plan` is what must match for a resume (it is stored in
    `record_file`); a different plan on top of an existing run is a `RetrainError`
    naming what to delete. `named` goes into the record beside the plan from the start
    (a replicate set's name, so that an interrupted set is known by it).
    """
    path = f"{experiment}/{folder}"

    def build_tuner() -> tune.Tuner:
        return tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=resources.concurrency(), reuse_actors=True,
                                        scheduler=MovableFIFOScheduler()),
            run_config=run_config(experiment, folder),
        )

    tuner = restore_or_build(
        path, experiment, record_file, plan, trainable, build_tuner, resume_errored=True,
        first_record=lambda: {**(named or {}), "plan": jsonable(plan), "versions": versions(), "hardware": hardware()},
        start_over=f"delete {path} and {experiment}/{record_file} to run `study {command}` again from the start",
        error=RetrainError,
    )
    watch = set_callbacks(tuner, display, tracker_callbacks(tracking, experiment, command))
    return interruption.fit(tuner, watch)  # Ctrl-C, SIGTERM or a full disk: Tune saves its state, no table


def run_record(plan: dict, started: float, finished: float, **results: Any) -> dict:
    """The record file written after a run: the plan, timings, versions, hardware, results."""
    return {
        "plan": jsonable(plan),
        "wall_s": round(finished - started, 1),
        "versions": versions(),
        "hardware": hardware(),
        **jsonable(results),
    }


def ended_diverged(metrics: Mapping, score: str) -> bool:
    """A retraining diverged: its worker flagged a non-finite loss (and stopped), or it ended with `score` near chance."""
    return bool(metrics.get("diverged")) or is_diverged(
        float(metrics.get("train_loss", math.nan)), float(metrics.get(score, math.nan)))


def status_of(error: str, diverged: bool) -> str:
    """A retraining's status in cv.csv and final.csv."""
    return "error" if error else ("diverged" if diverged else "completed")


def result_config(result) -> dict:
    """The config a Tune result was trained with. `result.config` comes from the last reported epoch, so a
    training that failed before its first report (a full disk, a lost worker) has none: its trial folder's
    params.json, which Tune writes when the trial starts, says which one it was."""
    if result.config is not None:
        return result.config
    try:
        with result.filesystem.open_input_stream(f"{result.path}/params.json") as stream:
            return json.loads(stream.read().decode())
    except (OSError, ValueError, TypeError) as exc:
        raise RetrainError(
            f"the training in {result.path} failed before its first epoch and its params.json cannot be read "
            f"({exc}); run the same command again to train it again"
        ) from None


def last_metrics(result) -> tuple[dict, str]:
    """A Tune result's last reported metrics and its error message ('' when it finished)."""
    metrics = dict(result.metrics or {})
    if result.error is None:
        return metrics, ""
    return metrics, one_line(result.error)
