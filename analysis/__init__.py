"""Analysis of a BatchNorm x Dropout study: trials table -> numbers -> plots and report.

Entry points:

- `analyze(path, out_dir)`: read an experiment directory (or a trials CSV), write
  conclusions.json, PNG plots, report.md and a self-contained report.html;
- `conclude(trials, epochs=None, cv=None, cv_summary=None, final=None)`: the
  conclusions as conclusions.json holds them, computed without touching the disk;
- `run_analysis(tables)`: every intermediate result, for custom plots, and the
  typed `Conclusions` (`analysis.results`);
- `load_conclusions(out_dir)`: an analysis's conclusions.json read back typed.
"""

from analysis.claims import Claim, check_claims
from analysis.conclusions import Analysis, conclude, make_tables, run_analysis
from analysis.design import Design, make_design
from analysis.effects import FactorEffect, factor_effects
from analysis.errors import AnalysisError
from analysis.importance import Importance, hyperparameter_importance
from analysis.interaction import Interaction, interaction_test
from analysis.io import (
    REQUIRED_TRIAL_COLUMNS,
    Tables,
    load_experiment,
    validate_cv,
    validate_cv_summary,
    validate_epochs,
    validate_final,
    validate_trials,
)
from analysis.pipeline import CONCLUSIONS_FILE, analyze, load_conclusions
from analysis.plots import PLOT_FILES, PlotSet, write_plots
from analysis.ranking import Ranking, rank_cells
from analysis.rates import RateFit, fit_dropout_rates
from analysis.report import SECTIONS, build_report, to_html, to_markdown, write_report
from analysis.results import Conclusions, from_json, to_json

__all__ = [
    "Analysis",
    "AnalysisError",
    "CONCLUSIONS_FILE",
    "Claim",
    "Conclusions",
    "Design",
    "FactorEffect",
    "Importance",
    "Interaction",
    "PLOT_FILES",
    "PlotSet",
    "REQUIRED_TRIAL_COLUMNS",
    "RateFit",
    "Ranking",
    "SECTIONS",
    "Tables",
    "analyze",
    "build_report",
    "check_claims",
    "conclude",
    "factor_effects",
    "fit_dropout_rates",
    "from_json",
    "hyperparameter_importance",
    "interaction_test",
    "load_conclusions",
    "load_experiment",
    "make_design",
    "make_tables",
    "rank_cells",
    "run_analysis",
    "to_html",
    "to_json",
    "to_markdown",
    "validate_cv",
    "validate_cv_summary",
    "validate_epochs",
    "validate_final",
    "validate_trials",
    "write_plots",
    "write_report",
]
