"""Cross-validation of the best configurations of a finished search (`study cv`).

Each picked configuration (`study.selection`) is retrained from scratch on each of
F stratified folds of the training images: trained on the other folds (a stratified
subset of them when the study trained on `train_size` images) for the full epoch
budget with no early stopping, then validated on the fold once, after the last epoch
(`study.trainable.train_cv_trial`). The folds depend only on
the labels and the study's seed, so every configuration sees the same folds and
the comparison is paired. Every (configuration, fold) training is a Ray Tune
trial; they run in parallel with the study's resources, and their state lives in
`EXPERIMENT/cv/`, so an interrupted run resumes.

Writes, in the experiment directory: `cv.csv` (one row per configuration and
fold), `cv_summary.csv` (one row per configuration), `cv_tests.csv` (the best
configuration against each other one, paired over folds) and `cv.json` (the plan,
the methods, timings, versions).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import pandas as pd
from ray import tune

from study.config import TrialConfig
from study.cv_stats import INTERVAL_METHOD, PAIRED_TEST, paired_tests, summarise_cv
from study.datasets import find_data_dir, load_arrays
from study.results import write_csv, write_json
from study.retraining import (
    Experiment,
    Resources,
    RetrainError,
    RetrainingOptions,
    config_columns,
    fit_resumable,
    last_metrics,
    open_experiment,
    run_record,
    training_config,
    without_location,
)
from study.selection import pick_configs
from study.trainable import train_cv_trial
from study.ray_session import connect, run_config

FOLDER = "cv"
RECORD = "cv.json"
FILES = ("cv.csv", "cv_summary.csv", "cv_tests.csv", RECORD)
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "gap", "epoch_s")


@dataclass(frozen=True)
class CVOptions(RetrainingOptions):
    """What `study cv` was asked to do; `train_size` defaults to the study's (a subset of each fold's training part)."""

    top_k: int | None = None
    overall: int | None = None
    folds: int = 5


@dataclass(frozen=True)
class CVPlan:
    """Everything resolved before Ray starts."""

    experiment: Experiment
    picked: pd.DataFrame  # the picked trials' rows, best first
    configs: dict[str, dict]  # config_id (the picked trial's trial_id) -> flat config, minus the fold
    n_folds: int
    resources: Resources
    selection: str  # how the configurations were picked, in words

    def trial_config(self, config_id: str, fold: int) -> dict:
        """The flat config of one training: what `train_cv_trial` hands `train_trial`."""
        return {**self.configs[config_id], "fold": fold}

    def param_space(self) -> dict:
        # Every configuration on every fold; no searcher, no scheduler: all train to the end.
        return {"config_id": tune.grid_search(list(self.configs)), "fold": tune.grid_search(list(range(self.n_folds)))}

    def record(self) -> dict:
        """What must match for a resume."""
        return {
            "selection": self.selection,
            "n_folds": self.n_folds,
            "configs": {cid: without_location(cfg) for cid, cfg in self.configs.items()},
        }


def _selection_words(options: CVOptions) -> str:
    if options.overall is not None:
        return f"the {options.overall} best completed trials of the study, by best_val_acc"
    if options.top_k is not None:
        return f"the {options.top_k} best completed trials of every cell, by best_val_acc"
    return "the best completed trial of every cell, by best_val_acc"


def plan_cv(options: CVOptions) -> CVPlan:
    """Validate the options, pick the configurations and check the data, before Ray starts."""
    if isinstance(options.folds, bool) or not isinstance(options.folds, int) or options.folds < 2:
        raise RetrainError(f"--folds must be a whole number of at least 2, got {options.folds!r}")
    experiment = open_experiment(options.experiment)
    picked = pick_configs(experiment.trials, top_k=options.top_k, overall=options.overall)
    data_dir = str(find_data_dir(options.data_dir or experiment.shared.get("data_dir")))
    _, labels = load_arrays(data_dir, "train")  # the training files only; a corrupt one fails here
    if options.folds > len(labels):
        raise RetrainError(f"--folds {options.folds} exceeds the {len(labels)} training images; choose fewer folds")
    # The folds are seeded with the study's seed and nothing per configuration: the same for all.
    settings = {"data_dir": data_dir, "n_folds": options.folds, "split_seed": experiment.seed}
    if options.train_size is not None:
        settings["train_size"] = options.train_size
    if options.max_epochs is not None:
        settings["max_epochs"] = options.max_epochs
    configs = {str(row["trial_id"]): training_config(row, experiment.shared, **settings) for _, row in picked.iterrows()}
    _check_train_size(configs, len(labels), options.folds)
    resources = Resources.resolve(experiment.budget, options.cpus_per_trial, options.gpus_per_trial,
                                  options.max_concurrent, options.address)
    return CVPlan(experiment, picked, configs, options.folds, resources, _selection_words(options))


def _check_train_size(configs: dict[str, dict], n_images: int, n_folds: int) -> None:
    """A fold leaves about n·(F-1)/F images to train on; a larger train_size cannot be drawn from it."""
    room = n_images - math.ceil(n_images / n_folds)
    sizes = {cfg.get("train_size") for cfg in configs.values()} - {None}
    if sizes and max(sizes) > room:
        raise RetrainError(
            f"train_size={max(sizes)} exceeds the {room} images a fold leaves for training "
            f"({n_images} training images, {n_folds} folds); pass --train-size {room} or less, or fewer --folds"
        )


def cv_table(results, plan: CVPlan) -> pd.DataFrame:
    """cv.csv: one row per configuration and fold, in the order picked, then by fold."""
    rows = []
    for result in results:
        config_id, fold = str(result.config["config_id"]), int(result.config["fold"])
        flat = plan.configs[config_id]
        metrics, error = last_metrics(result)
        epochs = int(metrics.get("epoch") or 0)
        max_epochs = TrialConfig.from_flat(flat).max_epochs
        if not error and epochs < max_epochs:
            error = f"stopped after {epochs} of {max_epochs} epochs"
        rows.append({
            "config_id": config_id,
            **config_columns(flat),
            "trial_id": config_id,
            "fold": fold,
            "status": "error" if error else "completed",
            "epochs": epochs,
            **{m: float(metrics.get(m, math.nan)) for m in METRICS},
            "error": error,
        })
    order = {cid: i for i, cid in enumerate(plan.configs)}
    table = pd.DataFrame(rows)
    table = table.assign(_order=table["config_id"].map(order)).sort_values(["_order", "fold"])
    return table.drop(columns="_order").reset_index(drop=True)


@dataclass(frozen=True)
class CVOutcome:
    experiment_uri: str
    plan: CVPlan
    cv: pd.DataFrame
    summary: pd.DataFrame
    tests: pd.DataFrame


def run_cv(options: CVOptions) -> CVOutcome:
    """Cross-validate (or resume cross-validating) the picked configurations; write the tables."""
    plan = plan_cv(options)
    uri = plan.experiment.uri
    connect(options.address)
    started = time.time()
    trainable = plan.resources.wrap(tune.with_parameters(train_cv_trial, configs=plan.configs))

    def build_tuner() -> tune.Tuner:
        return tune.Tuner(
            trainable,
            param_space=plan.param_space(),
            tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=plan.resources.concurrency(),
                                        reuse_actors=True),
            run_config=run_config(uri, FOLDER),
        )

    results = fit_resumable(uri, FOLDER, RECORD, plan.record(), trainable, build_tuner, "cv")
    cv = cv_table(results, plan)
    summary = summarise_cv(cv)
    tests = paired_tests(cv)
    write_csv(uri, "cv.csv", cv)
    write_csv(uri, "cv_summary.csv", summary)
    write_csv(uri, "cv_tests.csv", tests)
    write_json(uri, RECORD, run_record(
        plan.record(), started, time.time(),
        methods={"interval": INTERVAL_METHOD, "paired_test": PAIRED_TEST, "score": "val_acc after the last epoch"},
        trainings=cv["status"].value_counts().to_dict(),
        best_config_id=str(summary["config_id"].iloc[0]) if len(summary) else None,
    ))
    return CVOutcome(uri, plan, cv, summary, tests)
