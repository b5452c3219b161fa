"""Study orchestration: a Ray Tune `Tuner` with an Optuna searcher and ASHA.

One Tuner runs every scientific cell concurrently. `CellSearcher` gives each cell
its own seeded Optuna study (QMC, TPE or random: `study.tuning.planning.SAMPLERS`) and
exactly the same trial budget; `CellScheduler` gives
each cell its own ASHA rungs, so no trial is stopped because another cell did
better. `run_study` starts (or joins) Ray, builds the Tuner, or restores it when
the experiment already exists, runs it, and writes the experiment directory.
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import asdict

import optuna
import pandas as pd
from ray import tune

from study.tuning.cell_scheduler import CellScheduler
from study.tuning import ray_private
from study.tuning.cell_search import CellSearcher
from study.tuning.resume_check import check_before_resume
from study.tuning.state_files import RUNGS_FILE, fetch_journals
from study.tuning.planning import METRIC, MODE, StudyError, StudyPlan
from study.runtime import interruption
from study.runtime.progress import StageProgress
from study.runtime.ray_session import connect, default_concurrency, hardware, run_config, versions
from study.runtime.lost_results import keep_recorded_rows, lost_trials
from study.runtime.results import tables_from_results
from study.vocabulary.storage import read_text, write_csv, write_json
from study.runtime.trainable import train_trial
from study.runtime.tracking import tracker_callbacks
from study.runtime.resume import restore_or_build
from study.vocabulary import tables
from study.vocabulary.tables import jsonable


def build_tuner(plan: StudyPlan) -> tune.Tuner:
    budget = plan.budget
    journal_dir = plan.journal_dir()
    searcher = CellSearcher(
        plan.space.named_cells(),
        samples_per_cell=plan.samples_per_cell,
        max_epochs=budget.max_epochs,
        journal_dir=journal_dir,
        seed=plan.options.seed,
        sampler=plan.sampler,
        publish_copy=plan.is_remote,
    )
    scheduler = CellScheduler(**plan.scheduler_settings(), state_file=journal_dir / RUNGS_FILE)
    return tune.Tuner(
        _trainable(plan),
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=plan.num_samples,
            max_concurrent_trials=plan.options.max_concurrent or default_concurrency(
                budget.cpus_per_trial, budget.gpus_per_trial, plan.options.address),
            reuse_actors=True,
        ),
        run_config=run_config(plan.options.storage_uri(), plan.options.experiment_name()),
    )


def _trainable(plan: StudyPlan):
    budget = plan.budget
    trainable = tune.with_parameters(train_trial, data_dir=plan.param_space["data_dir"])  # the dataset where it is now
    return tune.with_resources(trainable, {"cpu": budget.cpus_per_trial, "gpu": budget.gpus_per_trial})


def study_record(plan: StudyPlan, started: float, finished: float | None, trials: pd.DataFrame | None) -> dict:
    record = {
        "experiment": plan.experiment_uri,
        "space": plan.space.to_dict(),
        "options": asdict(plan.options),
        "plan": jsonable(plan.record()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "versions": versions(),
        "hardware": hardware(),
    }
    if finished is not None:
        record["wall_s"] = round(finished - started, 1)
    if trials is not None:
        record["trials"] = trials["status"].value_counts().to_dict()
        record["trials_per_cell"] = {
            cell: group["status"].value_counts().to_dict() for cell, group in trials.groupby("cell")
        }
    return record


def follow_moves(tuner: tune.Tuner, plan: StudyPlan) -> None:
    """A restored Tuner's searcher and scheduler keep the journals and rungs where the experiment is now."""
    settings = ray_private.tune_config_of(tuner)
    if isinstance(settings.search_alg, CellSearcher):
        settings.search_alg.retarget(plan.journal_dir(), plan.is_remote)
    if isinstance(settings.scheduler, CellScheduler):
        settings.scheduler.retarget(plan.journal_dir() / RUNGS_FILE)


def refuse_fewer_rows(uri: str, rows: int) -> None:
    """A restore that lost trials must not overwrite the trials.csv that holds them."""
    previous = read_text(uri, tables.TRIALS)
    if previous is None:
        return
    before = len(pd.read_csv(io.StringIO(previous), usecols=[0]))
    if rows < before:
        raise StudyError(
            f"the resumed search of {uri!r} returned {rows} trials, but its trials.csv holds {before}: the restore "
            "lost part of the experiment's state, so nothing was overwritten. Check the experiment directory "
            "(experiment_state-*.json, searcher-state-*.json), or start a new study with --name NEW_NAME."
        )


def run_study(plan: StudyPlan, verbose: bool = False) -> tuple[str, pd.DataFrame]:
    """Run (or resume) a planned study (see `plan_study`); return the experiment URI and the trials table.

    The console shows one progress line (`study.runtime.progress`), or Tune's own output with `verbose`.
    """
    options = plan.options
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per cell study otherwise
    uri = plan.experiment_uri
    if plan.is_remote:  # the driver's copy of the journals and rungs becomes the experiment's own
        fetch_journals(uri, plan.journal_dir())
    check_before_resume(uri, plan.journal_dir())  # a broken state file stops here, not in Tune
    connect(options.address, plan.budget.cpus_per_trial, plan.budget.gpus_per_trial)
    started = time.time()
    tuner = restore_or_build(
        uri, uri, tables.STUDY, plan.record(), _trainable(plan), lambda: build_tuner(plan),
        first_record=lambda: study_record(plan, started, None, None),
        start_over="start a new study with --name NEW_NAME", error=StudyError,
    )
    follow_moves(tuner, plan)
    display = None if verbose else StageProgress("search", plan.num_samples, plan.budget.max_epochs)
    watch = ray_private.set_callbacks(tuner, display, tracker_callbacks(options.tracking, uri, "search"))
    results = interruption.fit(tuner, watch)  # Ctrl-C, SIGTERM or a full disk: Tune saves its state, no table
    trials, epochs = tables_from_results(results, plan.space.factors)
    # A trial whose folder was deleted or cut short keeps the rows already written for it (never 'pruned').
    lost = lost_trials(results, trials, plan.space.factors)
    trials, epochs, warnings = keep_recorded_rows(trials, epochs, lost, read_text(uri, tables.TRIALS),
                                                  read_text(uri, tables.EPOCHS))
    for warning in warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    refuse_fewer_rows(uri, len(trials))
    write_csv(plan.experiment_uri, tables.TRIALS, trials)
    write_csv(plan.experiment_uri, tables.EPOCHS, epochs)
    write_json(plan.experiment_uri, tables.STUDY, study_record(plan, started, time.time(), trials))
    return plan.experiment_uri, trials
