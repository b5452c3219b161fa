"""Final evaluation of the chosen configuration on the test set (`study final`).

The chosen configuration (the cross-validation winner by default, or one named
with --config-id) is trained from scratch with S seeds on the whole training set
(no validation images held out; nothing is chosen any more) and each seed's model
is evaluated once on the 10k test set. This is the only command that reads the test
set. The seeds are Ray Tune trials (`study.runtime.trainable.train_final_trial`) that run
in parallel with the study's resources; their state lives in `EXPERIMENT/final/`,
so an interrupted run resumes.

Writes, in the experiment directory: `final.csv` (one row per seed) and
`final.json` (the plan, mean and standard deviation, timings, versions).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import pandas as pd
from ray import tune

from study.data import datasets
from study.vocabulary import tables
from study.vocabulary.config import TrialConfig
from study.vocabulary.storage import write_csv, write_json
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
from study.retraining.selection import find_trial
from study.runtime.trainable import train_final_trial
from study.runtime.progress import StageProgress
from study.runtime.tracking import check_trackers
from study.runtime.ray_session import connect

FOLDER = "final"
TEST_IMAGES = 10_000  # FashionMNIST's test split
RECORD = tables.FINAL_RECORD
METRICS = tables.FINAL_METRICS


@dataclass(frozen=True)
class FinalOptions(RetrainingOptions):
    """What `study final` was asked to do; `train_size` defaults to the whole training set."""

    config_id: str | None = None  # default: the cross-validation winner
    seeds: int = 3


@dataclass(frozen=True)
class FinalPlan:
    """Everything resolved before Ray starts."""

    experiment: Experiment
    config_id: str
    chosen_by: str  # why this configuration, in words
    config: dict  # the flat config; the seed is replaced per trial
    seeds: tuple[int, ...]
    resources: Resources
    dataset: dict  # the training split's fingerprint

    def param_space(self) -> dict:
        return {**self.config, "seed": tune.grid_search(list(self.seeds))}

    def record(self) -> dict:
        """What must match for a resume."""
        return {"config_id": self.config_id, "config": self.config, "seeds": list(self.seeds), "dataset": self.dataset}


def choose_config(experiment: Experiment, config_id: str | None) -> tuple[str, str]:
    """(config_id, why): the named one, else the best mean val_acc of cv_summary.csv."""
    if config_id is not None:
        return str(config_id), "named with --config-id"
    summary = experiment.read_table(tables.CV_SUMMARY)
    if summary is None or "val_acc_mean" not in summary or summary["val_acc_mean"].notna().sum() == 0:
        raise RetrainError(
            f"{experiment.uri} has no stage-2 results (cv_summary.csv) to take the winner from; "
            f"run `study cv {experiment.uri}` first, or name a configuration with --config-id TRIAL_ID"
        )
    best = summary.sort_values("val_acc_mean", ascending=False, kind="stable").iloc[0]
    count = best["n_replicates"] if "n_replicates" in best else best.get("n_folds")
    kind = {"seed": "seeds", "fold": "folds"}.get(best.get("replicate_kind"), "replicates")
    why = f"the stage-2 winner (mean val_acc {best['val_acc_mean']:.4f} over {int(count)} {kind}, cv_summary.csv)"
    return str(best["config_id"]), why


def plan_final(options: FinalOptions) -> FinalPlan:
    """Choose the configuration and check the data (the test files included) before Ray starts."""
    if isinstance(options.seeds, bool) or not isinstance(options.seeds, int) or options.seeds < 1:
        raise RetrainError(f"--seeds must be a whole number of at least 1, got {options.seeds!r}")
    check_trackers(options.tracking)
    experiment = open_experiment(options.experiment)
    config_id, chosen_by = choose_config(experiment, options.config_id)
    row = find_trial(experiment.trials, config_id)
    data_dir = str(datasets.find_data_dir(options.data_dir or experiment.data_dir()))
    images, labels = datasets.load_arrays(data_dir, "train")
    if options.train_size is not None and options.train_size > len(labels):
        raise RetrainError(
            f"--train-size {options.train_size} exceeds the {len(labels)} training images; "
            f"choose at most {len(labels)}, or leave it out to train on all of them"
        )
    # A corrupt or missing test file fails here, not after every seed has trained.
    datasets.load_test_arrays(data_dir)
    settings = {"data_dir": data_dir, "train_size": options.train_size, "split_seed": experiment.seed}
    if options.max_epochs is not None:
        settings["max_epochs"] = options.max_epochs
    config = training_config(row, experiment.shared, **settings)
    first = TrialConfig.from_flat(config).seed  # the trial's own seed, then the next ones
    resources = Resources.resolve(experiment.budget, options.cpus_per_trial, options.gpus_per_trial,
                                  options.max_concurrent, options.address)
    seeds = tuple(range(first, first + options.seeds))
    dataset = datasets.fingerprint(images, labels)
    experiment.check_dataset(data_dir, dataset)
    return FinalPlan(experiment, config_id, chosen_by, config, seeds, resources, dataset)


def final_table(results, plan: FinalPlan) -> pd.DataFrame:
    """final.csv: one row per seed."""
    rows = []
    for result in results:
        seed = int(result_config(result)["seed"])
        metrics, error = last_metrics(result)
        diverged = not error and ended_diverged(metrics, "test_acc")  # a diverged seed stops untested
        if not error and not diverged and "test_acc" not in metrics:
            error = f"stopped after {int(metrics.get('epoch') or 0)} epochs, before the test"
        rows.append({
            "config_id": plan.config_id,
            **config_columns({**plan.config, "seed": seed}),
            "status": status_of(error, diverged),
            "epochs": int(metrics.get("epoch") or 0),
            **{m: float(metrics.get(m, math.nan)) for m in METRICS},
            "error": error,
        })
    return pd.DataFrame(rows).sort_values("seed", ignore_index=True)


def final_dry_run(plan: FinalPlan) -> str:
    """`study final --dry-run`: what the final would train and its wall time on this machine, from a probe of the
    chosen configuration's rates (as many probes at once as seeds will train at once on a CPU); nothing is trained
    or tested."""
    from dataclasses import replace

    from study.training.loop import TRAIN_EVAL_SIZE
    from study.training.rate_probe import measure_rates_at_once
    from study.tuning.cost import OVERHEAD_PER_STAGE_S, OVERHEAD_PER_TRIAL_S, cpu_line, local_slots

    resources = plan.resources
    cfg = TrialConfig.from_flat(plan.config)
    device, slots = local_slots(resources.cpus_per_trial, resources.gpus_per_trial)
    on_gpu = device == "cuda"
    at_once = min(len(plan.seeds), resources.max_concurrent or slots, slots)
    # On a CPU the probes run as the seeds will, `at_once` together (they slow each other down).
    [rates] = measure_rates_at_once([replace(cfg, device=device)], max(1, int(resources.cpus_per_trial)),
                                    1 if on_gpu else at_once)
    n_train = cfg.data.train_size or plan.dataset["images"]
    # After the last epoch: the test set (then it and its mirror images) and the train-eval images, and those
    # two again once BN is re-estimated.
    evaluated = 2 * TEST_IMAGES + (TEST_IMAGES + TRAIN_EVAL_SIZE) * (2 if cfg.model.bn != "none" else 1)
    seed_s = cfg.max_epochs * n_train / rates.train + evaluated / rates.evaluate + OVERHEAD_PER_TRIAL_S
    waves = math.ceil(len(plan.seeds) / at_once)
    wall = waves * seed_s + OVERHEAD_PER_STAGE_S
    lines = [
        f"Plan: configuration {plan.config_id}, {plan.chosen_by}; {len(plan.seeds)} seed{'s' if len(plan.seeds) > 1 else ''} "
        f"({', '.join(map(str, plan.seeds))}), {cfg.max_epochs} epochs on {n_train:,} training images each, "
        f"{at_once} at once on the {'GPU' if on_gpu else 'CPU'} with {resources.cpus_per_trial:g} CPU"
        f"{'s' if resources.cpus_per_trial != 1 else ''} each; then the {TEST_IMAGES:,} test images once per seed.",
        f"One seed: {n_train / rates.train:.1f} s per epoch ({rates.train:,.0f} training images/s), "
        f"{seed_s / 60:.1f} min in all.",
        f"Estimated wall time: {wall / 60:.0f} min. Rates measured on this machine just now "
        "(study.training.rate_probe); nothing was trained or tested: drop --dry-run to run it.",
    ]
    if not on_gpu:
        lines.append(cpu_line(cfg.precision, "the final"))
    return "\n".join(lines)


@dataclass(frozen=True)
class FinalOutcome:
    experiment_uri: str
    plan: FinalPlan
    final: pd.DataFrame

    @property
    def test_acc(self) -> pd.Series:
        return self.final["test_acc"].dropna()


def mean_and_sd(values: pd.Series) -> dict:
    """final.json's summary of one test metric over the seeds that have it."""
    return {"n_seeds": len(values), "mean": float(values.mean()) if len(values) else None,
            "std": float(values.std(ddof=1)) if len(values) > 1 else None}


def run_final(options: FinalOptions) -> FinalOutcome:
    """Train the chosen configuration with every seed and test each once; write final.csv."""
    plan = plan_final(options)
    uri = plan.experiment.uri
    connect(options.address, plan.resources.cpus_per_trial, plan.resources.gpus_per_trial)
    started = time.time()
    trainable = plan.resources.wrap(tune.with_parameters(train_final_trial, data_dir=plan.config["data_dir"]))
    # The test accuracy is no score to rank seeds by: no "best so far".
    display = None if options.verbose else StageProgress("final", len(plan.seeds), int(plan.config["max_epochs"]), None,
                                                          to_max_epochs=True)
    results = fit_resumable(uri, FOLDER, RECORD, plan.record(), trainable, plan.param_space(), plan.resources,
                            "final", display, options.tracking)
    final = final_table(results, plan)
    write_csv(uri, tables.FINAL, final)
    acc = final["test_acc"].dropna()
    write_json(uri, RECORD, run_record(
        plan.record(), started, time.time(), chosen_by=plan.chosen_by,
        test_acc=mean_and_sd(acc), test_acc_flip=mean_and_sd(final["test_acc_flip"].dropna()),
    ))
    if acc.empty:
        raise RetrainError(f"every seed failed, so nothing was tested; the first error: {final['error'].iloc[0]}")
    return FinalOutcome(uri, plan, final)
