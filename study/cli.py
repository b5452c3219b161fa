"""The `study` command line: `study run`, `study analyze`, `study spaces`.

Expected failures (bad options, an unknown space, a missing or corrupt dataset)
print one paragraph and exit with status 2; nothing already written is removed.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import pandas as pd

from study.budgets import BUDGETS
from study.factors import MODELS

# Errors a user can fix; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="study",
        description="A Ray Tune study of how BatchNorm and Dropout interact in CNNs on FashionMNIST.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run (or resume) a search: Optuna suggests, ASHA stops weak trials")
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
    run.add_argument("--address", help="Ray address; 'auto' joins a running cluster (default: embedded local Ray)")
    run.add_argument("--data-dir", help="directory with the FashionMNIST IDX files")
    run.add_argument("--seed", type=int, default=0, help="seed of the sampler, the split and the trials")
    run.add_argument("--no-analyze", action="store_true", help="skip the analysis and report at the end")

    analyze = commands.add_parser("analyze", help="conclusions, plots and report from an experiment or a trials.csv")
    analyze.add_argument("path", help="experiment directory, or a trials.csv (from this tool or written by hand)")
    analyze.add_argument("--out", help="output directory (default: report/ inside the experiment directory)")

    commands.add_parser("spaces", help="list the shipped search spaces")
    return parser


def cmd_run(args: argparse.Namespace) -> None:
    from study.tuning import StudyOptions, run_study  # imports Ray: keep `study spaces` fast

    options = StudyOptions(
        space=args.space, budget=args.budget, model=args.model, num_samples=args.num_samples,
        max_epochs=args.max_epochs, train_size=args.train_size, grace_period=args.grace_period,
        reduction_factor=args.reduction_factor, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent, storage=args.storage,
        name=args.name, address=args.address, data_dir=args.data_dir, seed=args.seed,
    )
    experiment, trials = run_study(options)
    print_summary(experiment, trials)
    if not args.no_analyze:
        if "://" in experiment:
            print(f"Analyse it where the files are: study analyze {experiment.rsplit('/', 1)[-1]} (after copying it here)")
        else:
            analyze_and_report(experiment, None)


def default_report_dir(path: str) -> Path:
    path = Path(path)
    return (path.parent if path.is_file() else path) / "report"


def analyze_and_report(path: str, out: str | None) -> None:
    from analysis import analyze

    out_dir = Path(out) if out else default_report_dir(path)
    conclusions = analyze(path, out_dir)
    print("\nConclusions:")
    for claim in conclusions.get("summary", []) or []:
        print(f"  - {claim}")
    for warning in conclusions.get("warnings", []):
        print(f"  warning: {warning}")
    print(f"\nReport: {out_dir / 'report.html'} (and report.md, conclusions.json, plots)")


def cmd_analyze(args: argparse.Namespace) -> None:
    analyze_and_report(args.path, args.out)


def print_summary(experiment: str, trials: pd.DataFrame, top: int = 10) -> None:
    counts = trials["status"].value_counts()
    print()
    print(f"{len(trials)} trials: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("completed", "pruned", "error")))
    done = trials[trials["status"] != "error"].sort_values("best_val_acc", ascending=False)
    columns = ["trial_id", "cell", "status", "epochs", "best_val_acc", "val_loss", "gap", "lr", "weight_decay"]
    if len(done):
        with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 4):
            print(f"\nBest trials by best_val_acc:\n{done[columns].head(top).to_string(index=False)}")
    print(f"\nResults: {experiment}/trials.csv, epochs.csv, study.json")


def cmd_spaces(args: argparse.Namespace) -> None:
    from search_spaces import list_spaces

    for name, description in list_spaces().items():
        print(f"{name:20s} {description}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"run": cmd_run, "analyze": cmd_analyze, "spaces": cmd_spaces}[args.command]
    try:
        handler(args)
    except USER_ERRORS as exc:
        print(textwrap.fill(f"error: {exc}", width=100), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
