"""`analyze`: an experiment directory (or a trials CSV) in, conclusions, plots and report out."""

from __future__ import annotations

import json
from pathlib import Path

from analysis.conclusions import run_analysis
from analysis.io import load_experiment
from analysis.plots import write_plots
from analysis.report import write_report

CONCLUSIONS_FILE = "conclusions.json"


def analyze(
    path: str | Path,
    out_dir: str | Path,
    *,
    metric: str = "best_val_acc",
    n_boot: int = 1000,
    seed: int = 0,
    importance: bool = True,
) -> dict:
    """Analyse a study and write conclusions.json, the PNG plots, report.md and report.html.

    `path` is an experiment directory or a trials CSV; epochs.csv, cv.csv,
    cv_summary.csv, final.csv and study.json are read when they sit beside it.
    Returns the conclusions dict (as written to conclusions.json). Raises
    `AnalysisError` when the input cannot be analysed (the message says why).
    """
    tables = load_experiment(path)
    analysis = run_analysis(tables, metric=metric, n_boot=n_boot, seed=seed, importance=importance)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(analysis, out)
    conclusions = dict(analysis.conclusions)
    conclusions["plots"] = {name: p.name for name, p in plots.files.items()}
    conclusions["plots_skipped"] = dict(plots.skipped)
    (out / CONCLUSIONS_FILE).write_text(json.dumps(conclusions, indent=2) + "\n")
    write_report(conclusions, plots.files, out, plots.skipped, source=str(path))
    return conclusions
