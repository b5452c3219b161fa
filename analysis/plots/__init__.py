"""Plots, Optuna-style, one per module: a pure `*_info` function computes what to draw, a thin `plot_*`
function draws it to a PNG file.

Drawing uses `matplotlib.figure.Figure` directly (the Agg renderer, no pyplot), so
no global state changes and no display is needed. Accuracies are drawn in percent.
`write_plots` draws every plot the data allow and says why it skipped the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from analysis.ranking import SEARCH

from analysis.plots.rate_interaction import RateCurve, RateInteractionInfo, rate_interaction_info, plot_rate_interaction
from analysis.plots.placement_interaction import PlacementInteractionInfo, placement_interaction_info, plot_placement_interaction
from analysis.plots.heatmap import HeatmapInfo, heatmap_info, plot_heatmap
from analysis.plots.isolation import IsolationInfo, isolation_info, plot_isolation
from analysis.plots.learning_curves import CurvesInfo, learning_curves_info, blog_curves_info, plot_learning_curves
from analysis.plots.experiments import ExperimentsInfo, experiments_info, plot_experiments
from analysis.plots.diverged import DivergedInfo, diverged_info, plot_diverged
from analysis.plots.ranking import RankingInfo, ranking_info, plot_ranking
from analysis.plots.importance import ImportanceInfo, importance_info, plot_importance
from analysis.plots.variance_shift import VarianceShiftInfo, plot_variance_shift, variance_shift_info
from analysis.plots.asha_fidelity import FidelityInfo, fidelity_info, plot_fidelity
from analysis.plots.optuna_views import OptunaViewsInfo, optuna_views_info, plot_optuna_views


# The start of a skipped plot's reason when drawing it raised: a bug, reported in the report instead of
# ending it (the tests fail on it: tests/analysis/test_every_space.py).
DRAWING_FAILED = "drawing it failed, a bug in the study tool"


@dataclass
class PlotSet:
    files: dict = field(default_factory=dict)  # name -> Path
    skipped: dict = field(default_factory=dict)  # name -> reason


PLOT_FILES = {
    "interaction": "interaction.png",
    "interaction_placement": "interaction_placement.png",
    "heatmap": "heatmap.png",
    "diverged": "diverged.png",
    "isolation": "isolation.png",
    "learning_curves": "learning_curves.png",
    "blog_experiments": "blog_experiments.png",
    "blog_curves": "blog_curves.png",
    "ranking": "ranking.png",
    "importance": "importance.png",
    "variance_shift": "variance_shift.png",
    "asha_fidelity": "asha_fidelity.png",
}


def write_plots(analysis, out_dir: Path) -> PlotSet:
    """Draw every plot the data allow into out_dir."""
    out_dir = Path(out_dir)
    plots = PlotSet()
    design, search = analysis.design, analysis.search
    epochs = analysis.tables.epochs

    def draw(name, info, fn, reason):
        if info is None:
            plots.skipped[name] = reason
            return
        try:
            plots.files[name] = fn(info, out_dir / PLOT_FILES[name])
        except Exception as exc:  # noqa: BLE001 - one plot's bug must not cost the report of a finished study
            plots.skipped[name] = f"{DRAWING_FAILED} ({type(exc).__name__}: {exc}); please report it"

    tested = analysis.source != SEARCH
    rate_info = rate_interaction_info(analysis.rate_fits, design.metric)
    placement = placement_interaction_info(design, tested)
    if rate_info is not None:
        draw("interaction", rate_info, plot_rate_interaction, "")
        draw("interaction_placement", placement, plot_placement_interaction, "bn and dropout placement did not both vary")
    else:
        # No rate varied: the interaction plot is score against placement.
        if placement is not None:
            draw("interaction", placement, plot_placement_interaction, "")
        else:
            plots.skipped["interaction"] = "neither a drop rate nor both bn and dropout placement varied"
    draw("heatmap", heatmap_info(design, tested), plot_heatmap, "bn and dropout are not both cell factors")
    draw("diverged", diverged_info(analysis.tables.trials), plot_diverged, "no search trial diverged")
    draw("isolation", isolation_info(search), plot_isolation, "no factor has a full-budget search trial at any value")
    draw("learning_curves", learning_curves_info(search, epochs), plot_learning_curves, "no epochs.csv with the best trials' epochs")
    if "experiment" in design.trials:
        draw("blog_experiments", experiments_info(design, analysis.ranking.unit if tested else "search trials (nuisance sensitivity)"),
             plot_experiments, "no experiment numbers")
        draw("blog_curves", blog_curves_info(search, epochs), plot_learning_curves, "no epochs.csv for the experiments")
    draw("ranking", ranking_info(analysis.ranking), plot_ranking, "")
    draw("importance", importance_info(analysis.importance), plot_importance, "hyperparameter importance could not be computed (see warnings)")
    # The cells in the search's own order (best trial first), as the report names them.
    views = optuna_views_info(analysis.tables.trials, epochs, [e.cell for e in analysis.conclusions.search.best_trials],
                              analysis.tables.search_ranges)
    if views is None:
        plots.skipped["optuna_views"] = "no epochs.csv, or no nuisance value tuned inside a cell"
    else:
        try:
            plots.files.update(plot_optuna_views(views, out_dir))
        except Exception as exc:  # noqa: BLE001 - as in draw()
            plots.skipped["optuna_views"] = f"{DRAWING_FAILED} ({type(exc).__name__}: {exc}); please report it"
    fidelity = analysis.conclusions.asha_fidelity
    draw("asha_fidelity", fidelity_info(fidelity), plot_fidelity, fidelity.reason if fidelity else "not measured")
    mechanism = analysis.conclusions.mechanism
    draw("variance_shift", variance_shift_info(mechanism), plot_variance_shift,
         "; ".join(mechanism.skipped) if mechanism and mechanism.skipped else "no replicate with BN measured a variance shift")
    return plots


__all__ = [
    "CurvesInfo",
    "DRAWING_FAILED",
    "DivergedInfo",
    "ExperimentsInfo",
    "FidelityInfo",
    "HeatmapInfo",
    "ImportanceInfo",
    "IsolationInfo",
    "OptunaViewsInfo",
    "PLOT_FILES",
    "PlacementInteractionInfo",
    "PlotSet",
    "RankingInfo",
    "RateCurve",
    "RateInteractionInfo",
    "VarianceShiftInfo",
    "blog_curves_info",
    "diverged_info",
    "experiments_info",
    "fidelity_info",
    "heatmap_info",
    "importance_info",
    "isolation_info",
    "learning_curves_info",
    "optuna_views_info",
    "placement_interaction_info",
    "plot_diverged",
    "plot_experiments",
    "plot_fidelity",
    "plot_heatmap",
    "plot_importance",
    "plot_isolation",
    "plot_learning_curves",
    "plot_optuna_views",
    "plot_placement_interaction",
    "plot_ranking",
    "plot_rate_interaction",
    "plot_variance_shift",
    "ranking_info",
    "rate_interaction_info",
    "variance_shift_info",
    "write_plots",
]
