"""`analyze`: an experiment directory (or a trials CSV) in, conclusions, plots and report out."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from analysis.conclusions import run_analysis
from analysis.files import write_whole
from analysis.io import load_experiment
from analysis.plots import write_plots
from analysis.reference_run import load_reference, reference_for
from analysis.report import write_report
from analysis.results import Conclusions, from_json, to_json
from analysis.summary import reference_sentences

CONCLUSIONS_FILE = "conclusions.json"


def analyze(
    path: str | Path,
    out_dir: str | Path,
    *,
    metric: str = "best_val_acc",
    n_boot: int = 1000,
    seed: int = 0,
    importance: bool = True,
    replicates: str | None = None,
    against: str | Path | None = None,
) -> dict:
    """Analyse a study and write conclusions.json, the PNG plots, report.md and report.html.

    `path` is an experiment directory or a trials CSV; epochs.csv, cv.csv,
    cv_summary.csv, final.csv and study.json are read when they sit beside it, and the
    replicate sets of `replicates/` in an experiment directory; `replicates` names the
    set the conclusions come from (default: `analysis.replicate_sets.choose_set`); `against` is a run whose
    verdicts the claims are compared with (default: the published full-data run, for a study of its design
    trained otherwise; `analysis.reference_run`).
    Returns the conclusions as written to conclusions.json (`load_conclusions` reads
    them back typed). Raises
    `AnalysisError` when the input cannot be analysed (the message says why).
    """
    reference = load_reference(against)
    tables = load_experiment(path)
    analysis = run_analysis(tables, metric=metric, n_boot=n_boot, seed=seed, importance=importance,
                            replicates=replicates)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(analysis, out)
    agreement = reference_for(analysis.conclusions, reference)
    conclusions = replace(analysis.conclusions, plots={name: p.name for name, p in plots.files.items()},
                          plots_skipped=dict(plots.skipped), reference=agreement,
                          answer=[*analysis.conclusions.answer, *reference_sentences(agreement)])
    written = to_json(conclusions)
    write_whole(out / CONCLUSIONS_FILE, json.dumps(written, indent=2) + "\n")  # a kill mid-write keeps the old one
    write_report(conclusions, plots.files, out, plots.skipped, source=str(path))
    return written


def load_conclusions(path: str | Path) -> Conclusions:
    """The typed conclusions of an analysis directory (or of its conclusions.json)."""
    path = Path(path)
    if path.is_dir():
        path = path / CONCLUSIONS_FILE
    return from_json(Conclusions, json.loads(path.read_text()))
