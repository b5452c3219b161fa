"""The `study` command line: `study run`, `study cv`, `study final`, `study analyze`, `study spaces`.

Expected failures (bad options, an unknown space, a missing or corrupt dataset: a
`study.vocabulary.errors.UserError`) print one paragraph and exit with status 2;
Ctrl-C or SIGTERM print what was kept and the command that resumes, and exit with
130 or 143; anything else is a bug, printed with its traceback, exit status 1.
Nothing already written is removed.
"""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import sys
import tempfile
import textwrap
import traceback
from pathlib import Path

import pandas as pd

from study.runtime.interruption import Interrupted, stop_on_sigterm
from study.runtime.storage_full import EXIT_CODE as STORAGE_FULL_EXIT, StorageFull, is_storage_full
from study.runtime.lock import experiment_lock
from study.runtime.working_dir import leave_job_working_dir
from study.runtime.tracking import TRACKERS, TRACKING_HELP
from study.tuning.budgets import BUDGETS
from study.vocabulary.errors import UserError
from study.vocabulary.tables import is_uri
from study.vocabulary.config import PRECISIONS
from study.vocabulary.factors import MODELS

# Errors of a write to a place the user chose (an immutable or read-only file, a folder where a file is wanted).
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST)
BUG = (
    "error: this is a bug in the study tool, not a problem with your input; nothing already written was removed. "
    "Please report it with the command line and the traceback above."
)


ADDRESS_HELP = ("Ray address HOST:PORT ([IPv6]:PORT); 'auto' joins a running cluster (default: RAY_ADDRESS when it "
                "names a Ray, as inside `ray job submit`; else an embedded local Ray)")
SHOWN_COMPARISONS = 3  # on the console, the closest comparisons with the best configuration; cv_tests.csv has all
VERBOSE_HELP = ("Ray Tune's own output (a table per trial, the status every few seconds) instead of one progress "
                "line per stage")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="study",
        description="A Ray Tune study of how BatchNorm and Dropout interact in CNNs on FashionMNIST.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(commands)
    _add_cv(commands)
    _add_final(commands)
    analyze = commands.add_parser("analyze", help="conclusions, plots and report from an experiment or a trials.csv")
    analyze.add_argument("path", help="experiment directory, or a trials.csv (from this tool or written by hand)")
    analyze.add_argument("--out", help="output directory (default: report/ inside the experiment directory)")
    analyze.add_argument("--replicates", metavar="NAME",
                         help="the replicate set to draw the conclusions from (e.g. seeds-5, folds-3; default: the "
                              "set that scores the most cells, as the report says); the others are shown beside it")
    analyze.add_argument("--against", metavar="RUN",
                         help="another run (its experiment folder, report folder or conclusions.json) whose claim "
                              "verdicts the report sets beside this one's (default: the published full-data run, "
                              "docs/findings, for a study of its design trained otherwise)")
    commands.add_parser("spaces", help="list the shipped search spaces")
    return parser


def _add_run(commands) -> None:
    run = commands.add_parser(
        "run", help="run (or resume) the study: the search, then each cell's best configuration on seeds",
        description="Stage 1, the search: Optuna suggests nuisance values inside every cell and ASHA stops weak "
        "trials. Stage 2, the confirmation: each cell's best configuration is retrained on R seeds to the full "
        "budget, and the analysis draws every conclusion from those replicates. Running it again resumes "
        "whichever stage was interrupted.",
    )
    run.add_argument("--space", default="default", help="search space name (see `study spaces`) or a .yaml/.toml path")
    run.add_argument("--budget", default="quick", choices=list(BUDGETS), help="budget preset (default: quick)")
    run.add_argument("--model", choices=MODELS, help="model size, when the space does not compare sizes")
    run.add_argument("--num-samples", type=int, help="number of trials (default: the budget's trials per cell x cells)")
    run.add_argument("--max-epochs", type=int, help="epochs per trial (ASHA's max_t)")
    run.add_argument("--train-size", type=int, help="stratified subset of the training split to train on")
    run.add_argument("--grace-period", type=int, help="ASHA: epochs before a trial can be stopped")
    run.add_argument("--reduction-factor", type=float, help="ASHA: keep the best 1/F at each rung")
    run.add_argument("--cpus-per-trial", type=float, help="CPUs per trial")
    run.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractional to share a GPU (e.g. 0.25)")
    run.add_argument("--max-concurrent", type=int, help="most trials at once (default: as many as fit)")
    run.add_argument("--storage", default="experiments", help="local directory or URI such as s3://bucket/prefix")
    run.add_argument("--name", help="experiment name (default: SPACE-BUDGET); an existing one is resumed")
    run.add_argument("--address", help=ADDRESS_HELP)
    run.add_argument("--data-dir", help="directory with the FashionMNIST IDX files")
    run.add_argument("--seed", type=int, default=0, help="seed of the sampler, the split and the trials")
    run.add_argument("--precision", choices=PRECISIONS, help="auto (the default of the quick and full budgets: "
                     "the fastest of fp32 and, where the processor has native bf16, bf16, each with the memory "
                     "layout that pays, measured on each worker), fp32 or bf16 (autocast, channels_last)")
    run.add_argument("--sampler", help="sampler of each cell's Optuna study: qmc (scrambled Sobol), tpe or random "
                     "(default: qmc below 16 trials per cell, else tpe)")
    run.add_argument("--seeds", type=int, dest="confirm_seeds",
                     help="stage 2: seeds per cell's best configuration (default: the budget's; quick and full 5)")
    run.add_argument("--search-only", action="store_true",
                     help="stop after the search (its report is preliminary: ranked by best trial, nothing tested)")
    run.add_argument("--no-analyze", action="store_true", help="skip the analysis and report at the end")
    run.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    _add_tracking(run)
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan and an estimate of its wall time and CPU- or GPU-hours on this machine "
                     "(from a few seconds of measurement), then stop: nothing is started or written")
    run.add_argument("--gpus", type=int, metavar="N", help="with --dry-run: estimate for N GPUs instead of this "
                     "machine, from the rates `python -m benchmarks --gpu-check` measured on a GPU machine")
    run.add_argument("--rates", metavar="FILE", help="with --dry-run --gpus: the GPU check's rates file "
                     "(default: benchmarks/gpu_rates.json)")


def _add_cv(commands) -> None:
    cv = commands.add_parser(
        "cv", help="stage 2 alone: retrain the best configurations of a finished search on seeds or folds",
        description="Retrain the picked configurations from scratch on R seeds of the study's split (the default, "
        "as `study run` does at its end) or on F stratified folds of the training images (the same folds for every "
        "configuration), for the full epoch budget without early stopping. Each run is a replicate set named by its "
        "options (seeds-5, folds-3, top2-seeds-5, ...): the experiment's first one writes cv.csv, cv_summary.csv, "
        "cv_tests.csv and cv.json into the experiment directory, any other into replicates/NAME/, side by side; the "
        "same options resume the same set. Never reads the test set.",
    )
    cv.add_argument("path", help="experiment directory written by `study run`")
    picking = cv.add_mutually_exclusive_group()
    picking.add_argument("--top-k", type=int, metavar="K", help="the K best completed trials of every cell (default: 1)")
    picking.add_argument("--overall", type=int, metavar="K", help="the K best completed trials of the whole study")
    replicates = cv.add_mutually_exclusive_group()
    replicates.add_argument("--seeds", type=int, help="seeds per configuration (default: the study budget's confirm_seeds)")
    replicates.add_argument("--folds", type=int, help="stratified CV folds instead of seeds")
    cv.add_argument("--train-size", type=int,
                    help="stratified subset of each fold's training part (default: the study's train_size)")
    _add_retraining_options(cv)


def _add_final(commands) -> None:
    final = commands.add_parser(
        "final", help="train the chosen configuration with several seeds and evaluate each once on the test set",
        description="Train the cross-validation winner (or --config-id) on the whole training set with S seeds "
        "and evaluate each once on the 10k test set; write final.csv and final.json. The only command that "
        "reads the test set.",
    )
    final.add_argument("path", help="experiment directory written by `study run` (and `study cv`)")
    final.add_argument("--config-id", help="a config_id from cv_summary.csv or a trial_id from trials.csv "
                       "(default: the best mean val_acc in cv_summary.csv)")
    final.add_argument("--seeds", type=int, default=3, help="number of seeds, from the trial's own seed on (default: 3)")
    final.add_argument("--train-size", type=int, help="stratified subset of the training set (default: all of it)")
    final.add_argument("--dry-run", action="store_true",
                       help="print what would be trained and its estimated wall time on this machine, then stop "
                       "(a few seconds' probe of the configuration's rate; nothing is trained or tested)")
    _add_retraining_options(final)


def _add_retraining_options(command: argparse.ArgumentParser) -> None:
    """Options `study cv` and `study final` share with `study run` (defaults: what the study used)."""
    command.add_argument("--max-epochs", type=int, help="epochs per training (default: the study's budget)")
    command.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default: the study's)")
    command.add_argument("--gpus-per-trial", type=float, help="GPUs per trial (default: the study's)")
    command.add_argument("--max-concurrent", type=int, help="most trials at once (default: as many as fit)")
    command.add_argument("--address", help=ADDRESS_HELP)
    command.add_argument("--data-dir", help="directory with the FashionMNIST IDX files (default: the study's)")
    command.add_argument("--no-analyze", action="store_true", help="skip the analysis and report at the end")
    command.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    _add_tracking(command)


def _add_tracking(command: argparse.ArgumentParser) -> None:
    command.add_argument("--tracking", action="append", default=[], choices=list(TRACKERS), metavar="TOOL",
                         help=f"{{{','.join(TRACKERS)}}}: {TRACKING_HELP}")


def cmd_run(args: argparse.Namespace) -> None:
    from study.tuning.planning import StudyOptions, plan_study

    if (args.gpus is not None or args.rates) and not args.dry_run:
        raise UserError("--gpus and --rates go with --dry-run: they estimate what the study would cost on N GPUs. "
                        "To run it on GPUs, start Ray on the GPU machines (cluster.yaml) and pass --address.")
    if args.gpus is not None and args.gpus < 1:
        raise UserError(f"--gpus {args.gpus}: expected a number of GPUs, 1 or more")
    plan = plan_study(StudyOptions(
        space=args.space, budget=args.budget, model=args.model, num_samples=args.num_samples,
        max_epochs=args.max_epochs, train_size=args.train_size, grace_period=args.grace_period,
        reduction_factor=args.reduction_factor, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent, storage=args.storage,
        name=args.name, address=args.address, data_dir=args.data_dir, seed=args.seed,
        confirm_seeds=args.confirm_seeds, sampler=args.sampler, tracking=tuple(args.tracking),
        precision=args.precision,
    ))  # bad input fails here, before the imports of Ray and PyTorch (seconds) and Ray's start-up
    if args.dry_run:
        from study.tuning.cost import dry_run

        print(dry_run(plan, args.gpus, args.rates))
        return
    from study.tuning.run import run_study

    with experiment_lock(plan.lock_dir(), "study run", create=True, named=plan.experiment_uri):  # a second one stops
        _ray_log_beside(plan.lock_dir(), args.verbose)
        experiment, trials = run_study(plan, verbose=args.verbose)
        print_summary(experiment, trials)
        if not args.search_only:
            print(f"\nStage 2: each cell's best configuration on {plan.budget.confirm_seeds} seeds, to the full budget")
            from study.retraining.cross_validation import CVOptions, run_cv

            print_cv(run_cv(CVOptions(
                experiment=experiment, seeds=plan.budget.confirm_seeds, max_concurrent=args.max_concurrent,
                address=args.address, data_dir=plan.param_space["data_dir"], verbose=args.verbose,
                tracking=tuple(args.tracking),
            )))
    _analyze_after(experiment, args.no_analyze)


def _retraining_options(args: argparse.Namespace) -> dict:
    """The options `study cv` and `study final` share, as `RetrainingOptions` fields."""
    return dict(
        experiment=args.path, train_size=args.train_size, max_epochs=args.max_epochs,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent, address=args.address, data_dir=args.data_dir, verbose=args.verbose,
        tracking=tuple(args.tracking),
    )


def cmd_cv(args: argparse.Namespace) -> None:
    from study.retraining.cross_validation import CVOptions, locate_set, run_cv  # imports Ray: keep `study spaces` fast

    options = CVOptions(top_k=args.top_k, overall=args.overall, folds=args.folds, seeds=args.seeds,
                        **_retraining_options(args))
    place = locate_set(options)
    # Each replicate set is locked on its own: the experiment's own stage 2 with the experiment (as `study
    # run` writes it), a set of replicates/ in its folder, so two different sets can run at once.
    with experiment_lock(args.path if place.own else place.uri, f"study cv ({place.name})", create=not place.own):
        _ray_log_beside(args.path, args.verbose)
        outcome = run_cv(options)
    print_cv(outcome)
    _analyze_after(outcome.experiment_uri, args.no_analyze)


def print_cv(outcome) -> None:
    from study.retraining.cv_stats import interval_method, test_method
    from study.retraining.selection import cells_left_out

    plan, summary, tests = outcome.plan, outcome.summary, outcome.tests
    first = next(iter(plan.configs.values()))
    train_size = first.get("train_size")
    unit = "folds" if plan.kind == "fold" else "seeds"
    print(f"\nReplicate set {plan.place.name}: {len(plan.configs)} configurations ({plan.selection}) on {plan.n_replicates} {unit}, "
          f"{first.get('max_epochs')} epochs, "
          + (f"{train_size} training images each" if train_size else "all the training images"))
    failed = outcome.cv[outcome.cv["status"] != "completed"]
    if len(failed):
        counts = failed["status"].value_counts().to_dict()
        print(f"  warning: {len(failed)} of {len(outcome.cv)} trainings not scored ({counts}; see cv.csv)")
    left_out = cells_left_out(plan.experiment.trials, plan.picked)
    if left_out:
        print(f"  note: no completed trial to retrain in cell(s): {', '.join(left_out)}")
    columns = [c for c in ("config_id", "cell", "n_replicates", "val_acc_mean", "val_acc_std", "val_acc_ci_low",
                           "val_acc_ci_high", "val_loss_mean", "gap_mean", "lr", "weight_decay") if c in summary]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 4):
        print(f"\n{summary[columns].to_string(index=False)}")
    print(f"\nIntervals: {interval_method(plan.kind)}.")
    if len(tests):
        best = tests["best_config_id"].iloc[0]
        print(f"Comparisons: {test_method(plan.kind)}.")
        noise = f"{unit[:-1]}-to-{unit[:-1]} noise"
        records = tests.to_dict("records")
        for rec in records[:SHOWN_COMPARISONS]:
            if rec["p_value"] != rec["p_value"]:  # NaN: a side with fewer than 2 scored replicates
                verdict = "not tested (fewer than 2 scored replicates)"
            else:
                verdict = f"larger than {noise}" if rec["significant"] else f"within {noise}"
            print(f"  {best} - {rec['config_id']}: {100 * rec['diff_mean']:+.2f} points of val_acc "
                  f"(p = {rec['p_value']:.3g}, Holm-adjusted {rec['p_holm']:.3g}): {verdict}")
        rest = records[SHOWN_COMPARISONS:]
        if rest:
            larger = sum(bool(rec["significant"]) for rec in rest)
            print(f"  and {len(rest)} more, {larger} of them larger than {noise} (cv_tests.csv has each)")
    print(f"\nResults: {plan.place.files}")


def cmd_final(args: argparse.Namespace) -> None:
    from study.retraining.final import FinalOptions, final_dry_run, plan_final, run_final  # imports Ray

    options = FinalOptions(config_id=args.config_id, seeds=args.seeds, **_retraining_options(args))
    if args.dry_run:  # reads the experiment only: no lock, so it may run beside a final in progress
        print(final_dry_run(plan_final(options)))
        return
    with experiment_lock(args.path, "study final"):
        _ray_log_beside(args.path, args.verbose)
        outcome = run_final(options)
    print_final(outcome)
    _analyze_after(outcome.experiment_uri, args.no_analyze)


def _ray_log_beside(experiment: str, verbose: bool) -> None:
    """Without --verbose, Ray's own log lines go to EXPERIMENT/ray.log (a local folder for a remote
    experiment), so the console shows the stages' progress lines and the tool's own output."""
    if verbose:
        return
    from study.runtime.progress import ray_log_to_file

    ray_log_to_file(experiment if not is_uri(experiment) else Path(tempfile.gettempdir()) / "bn-dropout-study")


def paragraph(text: str) -> str:
    """`text` wrapped at 100 columns, never inside a word: a path or a command stays whole, ready to copy."""
    return textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False)


def interrupted_message(signal_name: str, argv: list[str], *, saved: bool | None) -> str:
    """What an interrupted command says: what was kept, and the command that resumes.

    `saved`: Tune saved the stage (True), it stopped at once (False), no stage was running (None).
    """
    kept = {
        True: "Ray Tune saved the stage's state: finished trainings are kept and unfinished ones resume from "
              "their last checkpoint; no results table was written for the interrupted stage.",
        False: "The stage stopped at once, before Ray Tune could save it: a resume starts from the last snapshot "
               "Tune wrote (finished trainings are kept; later ones start again from their last checkpoint).",
        None: "No stage was running; every file already written is whole.",
    }[saved]
    return (paragraph(f"interrupted by {signal_name}. {kept}")
            + f"\nResume with the same command:\n  {shlex.join(['study', *argv])}")


def storage_full_message(detail: str, argv: list[str], *, saved: bool) -> str:
    """What a command stopped by a full disk (or quota) says: what was kept, and the command that resumes."""
    kept = ("Ray Tune stopped the stage at the first training that could not write and saved its state where it "
            "could; finished trainings are kept." if saved else
            "It stopped where the write failed.")
    return (paragraph(
        f"stopped: the experiment's storage ran out of space ({detail}). {kept} Every file already written is whole "
        "(a snapshot, state file or table cut short leaves the previous one), and a resume starts from the last "
        "whole snapshot; no results table was written for the unfinished stage. Make room on that disk (or raise "
        "the quota), then resume with the same command.")
        + f"\nResume with the same command:\n  {shlex.join(['study', *argv])}")


def print_final(outcome) -> None:
    plan, final = outcome.plan, outcome.final
    train_size = plan.config.get("train_size")
    print(f"\nFinal evaluation of {plan.config_id} ({plan.config['cell']}), {plan.chosen_by}: "
          f"{len(plan.seeds)} seeds, {plan.config.get('max_epochs')} epochs on "
          + (f"{train_size} training images" if train_size else "the whole training set"))
    columns = [c for c in ("seed", "status", "epochs", "train_loss", "train_acc", "test_loss", "test_acc", "test_ece",
                           "test_acc_flip", "var_shift_max", "test_acc_bn_reestimated", "test_ece_bn_reestimated")
               if c in final and final[c].notna().any()]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 4):
        print(f"\n{final[columns].to_string(index=False)}")
    acc, loss = final["test_acc"].dropna(), final["test_loss"].dropna()
    spread = lambda x: f" ± {x.std(ddof=1):.4f}" if len(x) > 1 else ""  # noqa: E731
    print(f"\nTest accuracy: {acc.mean():.4f}{spread(acc)} (mean ± standard deviation over {len(acc)} seeds); "
          f"test loss: {loss.mean():.4f}{spread(loss)}")
    if "test_acc_flip" in final and final["test_acc_flip"].notna().any():
        flip = final["test_acc_flip"].dropna()
        print(f"Each test image averaged with its mirror image (flip test-time augmentation): test accuracy "
              f"{flip.mean():.4f}{spread(flip)}")
    if "test_acc_bn_reestimated" in final and final["test_acc_bn_reestimated"].notna().any():
        after, ece, ece_after = (final[c].dropna() for c in ("test_acc_bn_reestimated", "test_ece", "test_ece_bn_reestimated"))
        print(f"With BN statistics re-estimated (Dropout off, after training): test accuracy {after.mean():.4f}"
              f"{spread(after)}; test ECE {ece.mean():.4f} before, {ece_after.mean():.4f} after")
    print(f"Results: {outcome.experiment_uri}/final.csv, final.json")


def _analyze_after(experiment: str, skip: bool) -> None:
    if skip:
        return
    if is_uri(experiment):
        print(f"Analyse it where the files are: study analyze {experiment.rsplit('/', 1)[-1]} (after copying it here)")
    else:
        analyze_and_report(experiment, None)


def default_report_dir(path: str) -> Path:
    path = Path(path)
    return (path.parent if path.is_file() else path) / "report"


def analyze_and_report(path: str, out: str | None, replicates: str | None = None, against: str | None = None) -> None:
    from analysis import AnalysisError, Conclusions, analyze, from_json

    out_dir = Path(out) if out else default_report_dir(path)
    if is_uri(path):  # a store whose client retries for minutes (gs:// without credentials): ask it in a child first
        from study.runtime.storage_probe import PROBE_TIMEOUT_S, StorageProbeError, probe_storage

        try:
            probe_storage(path, PROBE_TIMEOUT_S, read_only=True)
        except StorageProbeError as exc:
            reason = f"no answer in {PROBE_TIMEOUT_S:.0f} s: its client is retrying" if exc.timed_out else str(exc)
            raise AnalysisError(f"cannot read the experiment {path!r} ({reason}); check the URI and the "
                                "credentials (gs://: GOOGLE_APPLICATION_CREDENTIALS; s3://: `aws sts "
                                "get-caller-identity`)") from None
    try:
        conclusions = from_json(Conclusions, analyze(path, out_dir, replicates=replicates, against=against))  # conclusions.json, typed
    except OSError as exc:
        if exc.errno not in UNWRITABLE or is_storage_full(exc):
            raise
        raise AnalysisError(f"cannot write the report to {str(out_dir)!r} ({exc.strerror}: {exc.filename}); pass "
                            "--out with a folder you can write to") from None
    if conclusions.answer:
        print("\nThe answer (claims, then drop rates; the report's first sections):")
        for sentence in conclusions.answer:
            print(f"  - {sentence}")
    print("\nConclusions:")
    for sentence in conclusions.summary:
        print(f"  - {sentence}")
    for warning in conclusions.warnings:
        print(f"  warning: {warning}")
    print(f"\nReport: {out_dir / 'report.html'} (and report.md, conclusions.json, plots)")


def cmd_analyze(args: argparse.Namespace) -> None:
    from study.vocabulary.replicate_sets import check_set_name

    if args.replicates is not None:
        try:
            check_set_name(args.replicates)
        except ValueError as exc:
            raise UserError(f"--replicates: {exc}") from None
    analyze_and_report(args.path, args.out, args.replicates, args.against)


def print_summary(experiment: str, trials: pd.DataFrame, top: int = 5) -> None:
    from study.vocabulary.factors import STATUSES

    counts = trials["status"].value_counts()
    print()
    print(f"Search: {len(trials)} trials: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES))
    done = trials[trials["status"].isin(("completed", "pruned"))].sort_values("best_val_acc", ascending=False)
    columns = ["trial_id", "cell", "status", "epochs", "best_val_acc", "val_loss", "gap", "lr", "weight_decay"]
    if len(done):
        with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 4):
            print(f"\nBest search trials by best_val_acc (selected maxima; stage 2 retrains each cell's best):\n"
                  f"{done[columns].head(top).to_string(index=False)}")
    print(f"\nResults: {experiment}/trials.csv, epochs.csv, study.json")


def cmd_spaces(args: argparse.Namespace) -> None:
    from search_spaces import list_spaces

    for name, description in list_spaces().items():
        print(f"{name:20s} {description}")


def ray_address(given: str | None) -> str | None:
    """The Ray to join: --address; else RAY_ADDRESS where it names one (inside `ray job submit`, Ray sets it
    to the cluster's); else None, an embedded Ray of this command's own."""
    if given:
        return given
    from_environment = os.environ.get("RAY_ADDRESS", "").strip()
    if not from_environment:
        return None
    if from_environment.startswith(("http://", "https://")):  # a dashboard's job API, for `ray job` commands
        print(f"Note: RAY_ADDRESS={from_environment} is a dashboard's address, not a Ray to join; this runs on an "
              "embedded Ray (pass --address to join a cluster).", file=sys.stderr)
        return None
    print(f"Joining the Ray at RAY_ADDRESS={from_environment} (pass --address to choose another).")
    return from_environment


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    handler = {"run": cmd_run, "cv": cmd_cv, "final": cmd_final, "analyze": cmd_analyze, "spaces": cmd_spaces}[args.command]
    if hasattr(args, "address"):
        args.address = ray_address(args.address)
    stop_on_sigterm()  # SIGTERM outside a stage's run: a message and exit 143, as inside one
    try:
        # Started by `ray job submit --working-dir`: that folder is Ray's and can vanish mid-run (see the module).
        leave_job_working_dir(args)
        handler(args)
    except UserError as exc:  # bad input: one paragraph, no traceback
        print(paragraph(f"error: {exc}"), file=sys.stderr)
        return 2
    except Interrupted as exc:  # Ctrl-C or SIGTERM during a stage's run
        print(interrupted_message(exc.signal_name, argv, saved=exc.saved), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # outside a stage's run
        print(interrupted_message("SIGINT", argv, saved=None), file=sys.stderr)
        return 130
    except StorageFull as exc:  # a stage stopped for lack of space
        print(storage_full_message(exc.detail, argv, saved=exc.saved), file=sys.stderr)
        return STORAGE_FULL_EXIT
    except OSError as exc:
        if exc.errno in UNWRITABLE:  # a file or folder of the user's that cannot be written (nothing half-written)
            target = exc.filename2 or exc.filename or "a file"  # a rename over the file names it second
            print(paragraph(f"error: cannot write {target} ({exc.strerror}); make it writable "
                            "(permissions, `chattr -i`, a read-only mount), or choose another place for it, then run "
                            "the same command again"), file=sys.stderr)
            return 2
        if not is_storage_full(exc):  # any other OSError out here is a bug
            traceback.print_exc()
            print(paragraph(BUG), file=sys.stderr)
            return 1
        # a table, record or report that could not be written (each is written whole or not at all)
        print(storage_full_message(f"{exc.strerror or exc}: {exc.filename or ''}".strip(": "), argv, saved=False),
              file=sys.stderr)
        return STORAGE_FULL_EXIT
    except Exception:  # anything else is a bug: keep its traceback
        traceback.print_exc()
        print(paragraph(BUG), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
