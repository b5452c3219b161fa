"""Stage 2: the best configurations of a finished search, retrained on replicates (`study cv`).

`study run` ends with this stage by default; `study cv` runs it alone, with more
control (top-k per cell, the best K overall, folds instead of seeds). Each picked
configuration (`study.retraining.selection`) is retrained from scratch R times, to the full
epoch budget with no early stopping, and validated once, after the last epoch
(`study.runtime.trainable.train_cv_trial`). A replicate is one of:

- a seed (the default): the same configuration, training seed
  ``trial seed + SEED_STRIDE·(r + 1)``, on the study's own fixed split. Seed
  replicates are independent retrainings, so a plain t interval over them is
  exact; they measure the run-to-run spread that a difference between cells must
  beat (the tuning playbook's test), on the validation images the search used, so
  every cell is compared on the same images;
- a fold (`--folds F`): trained on the other folds (a stratified subset of them
  when the study trained on `train_size` images), validated on this one. The folds
  depend only on the labels and the study's seed, so every configuration sees the
  same folds. Folds share training images, so their intervals carry the
  Nadeau-Bengio correction with the design's own sizes (`n_val`, `n_train`).

Every (configuration, replicate) training is a Ray Tune trial; they run in parallel
with the study's resources, and their state lives with the replicate set's files, so
an interrupted run resumes.

Each run is a named replicate set (`study.vocabulary.replicate_sets`): the study's own
stage 2 in the experiment directory (`cv/` for Tune), any other in
`replicates/NAME/`. Either way it writes `cv.csv` (one row per configuration and
replicate), `cv_summary.csv` (one row per configuration), `cv_tests.csv` (the best
configuration against each other one) and `cv.json` (the set's name, the plan, the
methods, timings, versions).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import pandas as pd
from ray import tune

from study.tuning.budgets import Budget
from study.vocabulary import replicate_sets, tables
from study.vocabulary.config import TrialConfig
from study.retraining.cv_stats import interval_method, paired_tests, summarise_cv, test_method
from study.data.datasets import find_data_dir, fingerprint, load_arrays
from study.vocabulary.storage import read_text, write_csv, write_json
from study.retraining.common import (
    Experiment,
    Resources,
    RetrainError,
    RetrainingOptions,
    result_config,
    config_columns,
    ended_diverged,
    fit_resumable,
    last_metrics,
    open_experiment,
    run_record,
    status_of,
    training_config,
)
from study.retraining.selection import pick_configs
from study.runtime.trainable import train_cv_trial
from study.vocabulary.replicate_sets import replicate_key
from study.runtime.progress import StageProgress
from study.runtime.tracking import check_trackers
from study.runtime.ray_session import connect

FOLDER = "cv"
RECORD = tables.CV_RECORD
FILES = (tables.CV, tables.CV_SUMMARY, tables.CV_TESTS, RECORD)
METRICS = tables.REPLICATE_METRICS
SEED, FOLD = "seed", "fold"
SEED_STRIDE = 1000  # replicate r trains with seed + 1000·(r + 1): never a seed the search used
DEFAULT_SEEDS = Budget.confirm_seeds  # when the study recorded none (a hand-made experiment)


@dataclass(frozen=True)
class CVOptions(RetrainingOptions):
    """What `study cv` was asked to do; `train_size` defaults to the study's.

    Replicates: `seeds` (default: the study budget's `confirm_seeds`) or `folds`;
    give at most one of them.
    """

    top_k: int | None = None
    overall: int | None = None
    folds: int | None = None
    seeds: int | None = None


@dataclass(frozen=True)
class CVPlan:
    """Everything resolved before Ray starts."""

    experiment: Experiment
    picked: pd.DataFrame  # the picked trials' rows, best first
    configs: dict[str, dict]  # config_id (the picked trial's trial_id) -> flat config, minus the replicate
    kind: str  # SEED or FOLD
    n_replicates: int
    sizes: dict[str, tuple[int, int]]  # config_id -> (images trained on, images validated on) per replicate
    resources: Resources
    selection: str  # how the configurations were picked, in words
    dataset: dict  # the training split's fingerprint
    place: "SetPlace"  # the replicate set's name and where its files and Tune state live

    def trial_config(self, config_id: str, replicate: int) -> dict:
        """The flat config of one training: the configuration with its fold, or with its replicate's seed."""
        flat = self.configs[config_id]
        if self.kind == FOLD:
            return {**flat, "fold": replicate}
        return {**flat, "seed": int(flat.get("seed", 0)) + SEED_STRIDE * (replicate + 1)}

    def trial_configs(self) -> dict[str, dict]:
        """Every training's flat config, keyed `replicate_key(config_id, replicate)` (what the worker looks up)."""
        return {replicate_key(cid, r): self.trial_config(cid, r) for cid in self.configs for r in range(self.n_replicates)}

    def param_space(self) -> dict:
        # Every configuration on every replicate; no searcher, no scheduler: all train to the end.
        return {"config_id": tune.grid_search(list(self.configs)),
                "replicate": tune.grid_search(list(range(self.n_replicates)))}

    def record(self) -> dict:
        """What must match for a resume."""
        return {
            "selection": self.selection,
            "replicates": {"kind": self.kind, "n": self.n_replicates},
            "configs": dict(self.configs),
            "dataset": self.dataset,
        }



@dataclass(frozen=True)
class SetPlace:
    """Where one replicate set lives: `uri` holds its tables and record, `uri/folder` Ray Tune's state."""

    name: str
    uri: str
    folder: str
    own: bool  # the experiment's own stage 2 (in the experiment directory), not a set of replicates/

    @property
    def files(self) -> str:
        return f"{self.uri}/{tables.CV}, {tables.CV_SUMMARY}, {tables.CV_TESTS}, {RECORD}"


def set_name_for(options: CVOptions, experiment: Experiment) -> str:
    """The replicate set these options make (`replicate_sets.set_name`)."""
    kind, n = _replicates(options, experiment)
    return replicate_sets.set_name(kind, n, top_k=options.top_k, overall=options.overall,
                                   train_size=options.train_size, max_epochs=options.max_epochs)


def set_place(experiment: Experiment, name: str) -> SetPlace:
    """Where the set `name` lives in this experiment.

    The experiment directory's own cv.json (and Tune's `cv/`) belongs to one set: the
    first one made there (by `study run`'s stage 2, or the first `study cv` after a
    `--search-only` study), as before sets had names, so `study final` and older tools
    find it where they always did. Every other set goes to `replicates/NAME/`.
    Two `study cv` started at once on an experiment without a set both ask for its
    own place, and so for the experiment's lock: the second one stops at once.
    """
    text = read_text(experiment.uri, RECORD)
    own = True
    if text is not None:
        try:
            own = replicate_sets.name_from_record(json.loads(text)) == name
        except ValueError:  # an unreadable record: resuming it says so (study.runtime.resume)
            own = True
    if own:
        return SetPlace(name, experiment.uri, FOLDER, True)
    return SetPlace(name, f"{experiment.uri}/{replicate_sets.SETS_DIR}/{name}", replicate_sets.TUNE_FOLDER, False)


def locate_set(options: CVOptions) -> SetPlace:
    """The set `study cv` with these options runs (or resumes), before anything else is read or started."""
    experiment = open_experiment(options.experiment)
    return set_place(experiment, set_name_for(options, experiment))


def _selection_words(options: CVOptions) -> str:
    if options.overall is not None:
        return f"the {options.overall} best completed trials of the study, by best_val_acc"
    if options.top_k is not None:
        return f"the {options.top_k} best completed trials of every cell, by best_val_acc"
    return "the best completed trial of every cell, by best_val_acc"


def _replicates(options: CVOptions, experiment: Experiment) -> tuple[str, int]:
    """(kind, count): --folds F, --seeds S, else the study's confirm_seeds."""
    if options.folds is not None and options.seeds is not None:
        raise RetrainError(
            f"--folds {options.folds} and --seeds {options.seeds} are two kinds of replicate; give one of them"
        )
    if options.folds is not None:
        if isinstance(options.folds, bool) or not isinstance(options.folds, int) or options.folds < 2:
            raise RetrainError(f"--folds must be a whole number of at least 2, got {options.folds!r}")
        return FOLD, options.folds
    seeds = options.seeds if options.seeds is not None else int(experiment.budget.get("confirm_seeds") or DEFAULT_SEEDS)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise RetrainError(f"--seeds must be a whole number of at least 2 (a spread needs two), got {seeds!r}")
    return SEED, seeds


def plan_cv(options: CVOptions) -> CVPlan:
    """Validate the options, pick the configurations and check the data, before Ray starts."""
    check_trackers(options.tracking)
    experiment = open_experiment(options.experiment)
    kind, n = _replicates(options, experiment)
    picked = pick_configs(experiment.trials, top_k=options.top_k, overall=options.overall)
    data_dir = str(find_data_dir(options.data_dir or experiment.data_dir()))
    images, labels = load_arrays(data_dir, "train")  # the training files only; a corrupt one fails here
    if kind == FOLD and n > len(labels):
        raise RetrainError(f"--folds {n} exceeds the {len(labels)} training images; choose fewer folds")
    # Folds are seeded with the study's seed and nothing per configuration: the same for all.
    settings = {"data_dir": data_dir, "n_folds": n, "split_seed": experiment.seed} if kind == FOLD else {"data_dir": data_dir}
    if options.train_size is not None:
        settings["train_size"] = options.train_size
    if options.max_epochs is not None:
        settings["max_epochs"] = options.max_epochs
    configs = {str(row["trial_id"]): training_config(row, experiment.shared, **settings) for _, row in picked.iterrows()}
    if kind == FOLD:
        _check_train_size(configs, len(labels), n)
    sizes = {cid: _sizes(cfg, kind, n, len(labels)) for cid, cfg in configs.items()}
    resources = Resources.resolve(experiment.budget, options.cpus_per_trial, options.gpus_per_trial,
                                  options.max_concurrent, options.address)
    dataset = fingerprint(images, labels)
    experiment.check_dataset(data_dir, dataset)
    place = set_place(experiment, set_name_for(options, experiment))
    return CVPlan(experiment, picked, configs, kind, n, sizes, resources, _selection_words(options), dataset, place)


def _sizes(flat: dict, kind: str, n: int, n_images: int) -> tuple[int, int]:
    """(images trained on, images validated on) by one replicate of this configuration."""
    cfg = TrialConfig.from_flat(flat)
    n_val = math.ceil(n_images / n) if kind == FOLD else cfg.data.val_size
    return (cfg.data.train_size or n_images - n_val), n_val


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
    """cv.csv: one row per configuration and replicate, in the order picked, then by replicate."""
    rows = []
    for result in results:
        config = result_config(result)
        config_id, replicate = str(config["config_id"]), int(config["replicate"])
        flat = plan.trial_config(config_id, replicate)
        metrics, error = last_metrics(result)
        epochs = int(metrics.get("epoch") or 0)
        max_epochs = TrialConfig.from_flat(flat).max_epochs
        values = {m: float(metrics.get(m, math.nan)) for m in METRICS}
        diverged = not error and ended_diverged(metrics, "val_acc")
        if not error and not diverged and epochs < max_epochs:
            error = f"stopped after {epochs} of {max_epochs} epochs"
        n_train, n_val = plan.sizes[config_id]
        rows.append({
            "config_id": config_id,
            **config_columns(flat),
            "trial_id": config_id,
            "replicate": replicate,
            "replicate_kind": plan.kind,
            "fold": replicate if plan.kind == FOLD else None,
            "status": status_of(error, diverged),
            "epochs": epochs,
            **values,
            "n_train": n_train,
            "n_val": n_val,
            "error": error,
        })
    order = {cid: i for i, cid in enumerate(plan.configs)}
    table = pd.DataFrame(rows)
    table = table.assign(_order=table["config_id"].map(order)).sort_values(["_order", "replicate"])
    return table.drop(columns="_order").reset_index(drop=True)


@dataclass(frozen=True)
class CVOutcome:
    experiment_uri: str  # the experiment; the set's own files are in `plan.place.uri`
    plan: CVPlan
    cv: pd.DataFrame
    summary: pd.DataFrame
    tests: pd.DataFrame


def run_cv(options: CVOptions) -> CVOutcome:
    """Cross-validate (or resume cross-validating) the picked configurations; write the tables."""
    plan = plan_cv(options)
    place = plan.place
    connect(options.address, plan.resources.cpus_per_trial, plan.resources.gpus_per_trial)
    started = time.time()
    trainable = plan.resources.wrap(tune.with_parameters(train_cv_trial, configs=plan.trial_configs()))
    display = None if options.verbose else StageProgress(
        "stage 2", len(plan.configs) * plan.n_replicates, int(next(iter(plan.configs.values()))["max_epochs"]),
        to_max_epochs=True)
    results = fit_resumable(place.uri, place.folder, RECORD, plan.record(), trainable, plan.param_space(),
                            plan.resources, "cv", display, options.tracking, named={"replicate_set": place.name})
    cv = cv_table(results, plan)
    summary = summarise_cv(cv, plan.kind)
    tests = paired_tests(cv, plan.kind)
    write_csv(place.uri, tables.CV, cv)
    write_csv(place.uri, tables.CV_SUMMARY, summary)
    write_csv(place.uri, tables.CV_TESTS, tests)
    write_json(place.uri, RECORD, run_record(
        plan.record(), started, time.time(), replicate_set=place.name,
        methods={"interval": interval_method(plan.kind), "test": test_method(plan.kind),
                 "score": "val_acc after the last epoch"},
        trainings=cv["status"].value_counts().to_dict(),
        best_config_id=str(summary["config_id"].iloc[0]) if len(summary) else None,
    ))
    return CVOutcome(plan.experiment.uri, plan, cv, summary, tests)
