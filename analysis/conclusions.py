"""From the study's tables to the conclusions: `run_analysis` and `conclude`.

Every conclusion (ranking, effects, interaction, claims, and the best drop rate
where the rates are cells' own factors) comes from one design, `Analysis.design`:

- stage-2 replicates when cv.csv has scored ones (`source: replicates`): each
  cell's selected configuration retrained on seeds or folds, tested;
- otherwise the search trials (`source: search`): each cell ranked by its best
  trial (a selected maximum), nothing tested, every claim inconclusive, and the
  conclusions say how to confirm them.

The search is always described beside them (`search`): each cell's best trial, the
mean over its full-budget trials as a named measure of how forgiving the cell is
of the nuisance range (never its score), and its diverged share (`diverged`).

`run_analysis` keeps every intermediate result (the plots need them); `conclude`
returns only the conclusions dict that goes to conclusions.json.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import checks
from analysis.claims import Claim, check_claims
from analysis.design import Design, diverged_counts, make_design
from analysis.errors import AnalysisError
from analysis.effects import factor_effects, search_effects
from analysis.final import METHOD as FINAL_METHOD
from analysis.final import summarise_final
from analysis.importance import Importance, hyperparameter_importance
from analysis.interaction import Interaction, interaction_test, means_table, pair_for
from analysis.io import (
    Tables,
    validate_cv,
    validate_cv_summary,
    validate_epochs,
    validate_final,
    validate_trials,
)
from analysis.ranking import (
    OMNIBUS_METHOD,
    REPLICATES,
    SEARCH,
    TOP_TWO_METHOD,
    Ranking,
    rank_cells,
    search_ranking,
)
from analysis.rates import RateFit, fit_dropout_rates
from analysis.replicates import SCORE as REPLICATE_METRIC
from analysis.replicates import replicate_rows, replicate_unit
from analysis.resolution import Resolution, detectable_difference
from analysis.summary import summary_sentences
from analysis.text import SEARCH_ONLY
from study.vocabulary.tables import jsonable
from study.vocabulary.factors import CHANCE_ACCURACY, DIVERGED_ACCURACY, NUISANCE, RATE_FACTORS, SCIENTIFIC_FACTORS

SENSITIVITY_METHOD = (
    "mean of best_val_acc over a cell's full-budget search trials: how forgiving the cell is of the nuisance "
    "range and of trial order, not how well it works when tuned"
)


@dataclass(frozen=True)
class Analysis:
    """Every result of one analysis, and the conclusions dict built from them."""

    tables: Tables
    design: Design  # what the conclusions come from: replicates, or the search when there are none
    search: Design  # the search trials, always
    replicates: pd.DataFrame | None  # the replicate rows `design` was built from
    ranking: Ranking
    effects: dict  # factor -> FactorEffect
    interaction: Interaction
    rate_fits: list  # RateFit
    claims: list  # Claim
    resolution: Resolution | None
    final: pd.DataFrame | None
    importance: Importance | None
    warnings: list
    conclusions: dict

    @property
    def source(self) -> str:
        return self.ranking.source


def conclude(
    trials: pd.DataFrame,
    epochs: pd.DataFrame | None = None,
    cv: pd.DataFrame | None = None,
    cv_summary: pd.DataFrame | None = None,
    final: pd.DataFrame | None = None,
    *,
    metric: str = "best_val_acc",
    search_ranges: dict | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    importance: bool = True,
) -> dict:
    """The conclusions dict for these tables (raw or validated DataFrames).

    Raises `AnalysisError` for missing columns, an empty table, no full-budget trial,
    or nothing that varied.
    """
    tables = make_tables(trials, epochs, cv, cv_summary, final, metric=metric, search_ranges=search_ranges)
    return run_analysis(tables, metric=metric, n_boot=n_boot, seed=seed, importance=importance).conclusions


def make_tables(trials, epochs=None, cv=None, cv_summary=None, final=None, *, metric="best_val_acc", search_ranges=None, source="") -> Tables:
    """Validate raw DataFrames into `Tables`."""
    return Tables(
        trials=validate_trials(trials, metric=metric),
        epochs=validate_epochs(epochs) if epochs is not None else None,
        cv=validate_cv(cv) if cv is not None else None,
        cv_summary=validate_cv_summary(cv_summary) if cv_summary is not None else None,
        final=validate_final(final) if final is not None else None,
        search_ranges=search_ranges,
        source=source,
    )


def run_analysis(
    tables: Tables, *, metric: str = "best_val_acc", n_boot: int = 1000, seed: int = 0, importance: bool = True
) -> Analysis:
    """Every step of the analysis; `n_boot` resamples for the drop-rate intervals, `seed` for all
    bootstraps (results are reproducible); `importance=False` skips Optuna's PED-ANOVA."""
    search = make_design(tables.trials, metric)
    rows = replicate_rows(tables.cv, tables.trials)
    stage_two_notes = replicate_notes(tables.cv, rows)
    design = replicate_design(rows, tables.trials, stage_two_notes) if rows is not None else None
    if design is not None:
        unit = replicate_unit(rows)
        ranking = rank_cells(design, unit)
        effects = factor_effects(design)
        interaction = interaction_test(design)
        resolution = detectable_difference(design, unit)
        # A rate fits on the replicates only where it is a cell's own factor (a grid of rates).
        rate_source = REPLICATES if any(f in design.cell_factors for f in RATE_FACTORS) else SEARCH
    else:
        rows, design, unit = None, search, "trials"
        ranking = search_ranking(search)
        effects = search_effects(search)
        interaction = Interaction(pair_for(search), None, False, "not tested (search trials only)", reason=SEARCH_ONLY)
        resolution = None
        rate_source = SEARCH
    rates_from = design if rate_source == REPLICATES else search
    rate_fits = fit_dropout_rates(rates_from, n_boot=n_boot, seed=seed, source=rate_source)
    claims = check_claims(design, ranking)
    final = summarise_final(tables.final) if tables.final is not None else None
    if importance:
        importance_result, importance_reason = hyperparameter_importance(search)
    else:
        importance_result, importance_reason = None, "hyperparameter importance was not requested"
    warnings = [
        *stage_two_notes,
        *checks.status_warnings(search.counts, search.budget, "search trials"),
        *(checks.status_warnings(design.counts, design.budget, unit) if rows is not None else []),
        *checks.single_cell(design),
        *checks.missing_cells(tables.trials, search, SEARCH),
        *(checks.missing_cells(tables.trials, design, REPLICATES) if rows is not None else []),
        *(checks.few_replicates(design, unit) if rows is not None else []),
        *checks.nuisance_edges(tables.trials, search, tables.search_ranges),
        *checks.rate_edges(rate_fits),
        *checks.several_configs(rows),
        *checks.effect_warnings(effects),
    ]
    if importance_reason and importance:
        warnings.append(importance_reason[0].upper() + importance_reason[1:] + "; the importance plot is skipped.")
    conclusions = build_conclusions(
        design, search, ranking, effects, interaction, rate_fits, claims, resolution, final, importance_result,
        warnings, tables.trials,
    )
    return Analysis(
        tables, design, search, rows, ranking, effects, interaction, rate_fits, claims, resolution, final,
        importance_result, warnings, conclusions,
    )


def tuned_rates(trials: pd.DataFrame) -> tuple[str, ...]:
    """Drop rates the search sampled inside cells (they vary among a cell's trials, pruned ones too).

    They were tuned with the nuisance values, so each cell's replicates carry the one
    rate its selected configuration has: part of the configuration, not a factor the
    replicates compare.
    """
    return tuple(f for f in RATE_FACTORS if f in trials and (trials.groupby("cell")[f].nunique() > 1).any())


def replicate_design(rows: pd.DataFrame, trials: pd.DataFrame, notes: list) -> Design | None:
    """The design of the replicates, or None (with a note) when they cannot compare cells."""
    try:
        return make_design(rows, REPLICATE_METRIC, tuned=tuned_rates(trials))
    except AnalysisError as exc:
        notes.append(
            f"Stage 2 cannot be compared across cells ({exc}); the conclusions below fall back to the search "
            "trials and are preliminary. Retrain the best configuration of every cell (`study cv EXPERIMENT` "
            "without --overall) to confirm them."
        )
        return None


def replicate_notes(cv: pd.DataFrame | None, rows: pd.DataFrame | None) -> list[str]:
    """A warning when cv.csv exists but none of its replicates could be scored."""
    if cv is None or rows is not None or cv.empty:
        return []
    counts = cv["status"].value_counts().to_dict()
    return [
        f"Stage 2 ran ({len(cv)} trainings in cv.csv) but none was scored (by status: {counts}); the conclusions "
        "below fall back to the search trials and are preliminary."
    ]


def build_conclusions(design, search, ranking, effects, interaction, rate_fits, claims, resolution, final, importance,
                      warnings, trials) -> dict:
    out = {
        "source": ranking.source,
        "metric": ranking.metric,
        "factors": list(design.factors),
        "ranking": ranking_entries(ranking, design, search),
        "effects": {f: e.values for f, e in effects.items()},
        "interaction": interaction_entry(interaction, design.metric),
        "dropout_rate": rate_entries(rate_fits),
        "claims": [claim_entry(c) for c in claims],
        "warnings": list(warnings),
        "ranking_method": ranking.method,
        "comparisons": comparisons_entry(ranking),
        "resolution": vars(resolution) if resolution is not None else None,
        "effects_metric": design.metric,
        "effect_tests": {f: e.test for f, e in effects.items()},
        "counts": {**design.counts, "cells": int(len(design.cells)), "max_epochs": design.budget},
        "cell_factors": list(design.cell_factors),
        "within_cell_factors": list(design.within_cell),
        "search": search_entry(search, trials),
        "setting": setting_entry(trials),
        "diverged": diverged_entry(trials),
        "diverged_by_bn": diverged_by_bn(trials),
        "final": final_entries(final),
        "importance": (
            {"method": importance.method, "n_trials": importance.n_trials, "values": importance.values, "kinds": importance.kinds}
            if importance is not None else None
        ),
    }
    out["methods"] = methods_entry(out)
    out = jsonable(out)
    out["summary"] = summary_sentences(out)
    return out


def search_entry(search: Design, trials: pd.DataFrame) -> dict:
    """The search stage: each cell's best trial (the selected configuration) and the nuisance sensitivity."""
    best = search_ranking(search)
    cells = search.cells.set_index("cell")
    return {
        "counts": dict(search.counts),
        "best_trials": ranking_entries(best, search, search),
        "mean_over_trials": {
            cell: {"mean": float(cells.loc[cell, "mean"]), "n": int(cells.loc[cell, "n"])} for cell in cells.index
        },
        "mean_over_trials_method": SENSITIVITY_METHOD,
        "ranking_method": best.method,
    }


def diverged_by_bn(trials: pd.DataFrame) -> dict:
    """Per BatchNorm setting: search trials, how many diverged (BN's tolerance of large learning rates)."""
    if "bn" not in trials:
        return {}
    return {str(r.bn): {"trials": int(r.trials), "diverged": int(r.diverged)} for r in diverged_counts(trials, ["bn"]).itertuples()}


def setting_entry(trials: pd.DataFrame) -> dict:
    """What every trial trained on (the fixed part of the budget), where the table records it."""
    out = {}
    for column in ("train_size", "max_epochs", "batch_size", "val_size", "model"):
        if column in trials and trials[column].nunique(dropna=False) == 1:
            value = trials[column].iloc[0]
            out[column] = None if _missing(value) else _plain(value)
    return out


def diverged_entry(trials: pd.DataFrame) -> dict:
    """Per cell: search trials, how many diverged, and the share (an outcome of its own)."""
    counts = diverged_counts(trials, ["cell"]).sort_values("cell")
    return {str(r.cell): {"trials": int(r.trials), "diverged": int(r.diverged), "share": float(r.share)}
            for r in counts.itertuples()}


def ranking_entries(ranking: Ranking, design: Design, search: Design) -> list[dict]:
    """The ranking as JSON-ready entries, each with the search trial its configuration came from."""
    entries = []
    factor_cols = [f for f in SCIENTIFIC_FACTORS if f in ranking.table]
    search_rows = search.trials.set_index("trial_id")
    for rank, rec in enumerate(ranking.table.to_dict("records"), start=1):
        entry = {"rank": rank, "cell": rec["cell"]}
        for f in factor_cols:
            v = rec[f]
            entry[f] = None if _missing(v) else _plain(v)
        entry.update(
            n=int(rec["n"]), score=rec["score"], ci_low=rec["ci_low"], ci_high=rec["ci_high"],
            sd=rec.get("sd"), unit=ranking.unit,
        )
        # A replicate's id is CONFIG_ID/rK; the configuration is the search trial CONFIG_ID.
        selected = str(rec["best_trial_id"]).split("/")[0] if ranking.source == REPLICATES else rec["best_trial_id"]
        if ranking.source == REPLICATES:
            entry["config_id"] = selected
        if selected in search_rows.index:
            trial = search_rows.loc[selected]
            entry["selected_trial"] = {
                "trial_id": selected,
                "score": float(trial["score"]),
                **{k: _plain(trial[k]) for k in (*NUISANCE, "p_conv", "p_fc") if k in trial.index and not _missing(trial[k])},
            }
        entries.append(entry)
    return entries


def interaction_entry(interaction: Interaction, metric: str) -> dict:
    entry = {
        "factors": list(interaction.factors),
        "p_value": interaction.p_value,
        "significant": bool(interaction.significant),
        "method": interaction.method,
        "metric": metric,
        "statistic": interaction.statistic,
        "df1": interaction.df1,
        "df2": interaction.df2,
        "n_cells": interaction.n_cells,
        "n_trials": interaction.n_trials,
    }
    if interaction.reason:
        entry["reason"] = interaction.reason
    table = means_table(interaction)
    if table is not None:
        entry["means"] = {
            str(bn): {str(level): float(v) for level, v in row.items() if not _missing(v)}
            for bn, row in table.iterrows()
        }
    return entry


def rate_entries(rate_fits: list[RateFit]) -> dict:
    out: dict = {}
    for fit in rate_fits:
        out.setdefault(fit.rate, {})[fit.bn] = {
            "best": fit.best,
            "ci_low": fit.ci_low,
            "ci_high": fit.ci_high,
            "score_at_best": fit.score_at_best,
            "n": fit.n,
            "range": list(fit.range),
            "at_edge": fit.at_edge,
            "near_optimal": list(fit.near_optimal),
            "source": fit.source,
            "method": fit.method,
        }
    return out


def claim_entry(claim: Claim) -> dict:
    return {
        "id": claim.id,
        "text": claim.text,
        "verdict": claim.verdict,
        "evidence": claim.evidence,
        "reason": claim.reason,
        "method": claim.method,
    }


def comparisons_entry(ranking: Ranking) -> dict:
    out = {}
    if ranking.omnibus is not None:
        r = ranking.omnibus
        out["omnibus"] = {
            "p_value": r.p_value, "significant": r.significant, "statistic": r.statistic,
            "df1": r.df1, "df2": r.df2, "method": OMNIBUS_METHOD,
        }
    if ranking.top_two is not None:
        iv, p = ranking.top_two
        t = ranking.table
        out["best_vs_runner_up"] = {
            "best": t["cell"].iloc[0], "runner_up": t["cell"].iloc[1],
            "difference": iv.estimate, "ci_low": iv.low, "ci_high": iv.high, "p_value": p,
            "significant": bool(p < 0.05) if p == p else False, "method": TOP_TWO_METHOD,
        }
    return out


def final_entries(final: pd.DataFrame | None) -> list | None:
    if final is None:
        return None
    return [{**rec, "method": FINAL_METHOD} for rec in final.to_dict("records")]


def methods_entry(out: dict) -> dict:
    if out["source"] == REPLICATES:
        replication = (
            "Two stages. The search (Optuna sampler, per-cell ASHA) selects each cell's best configuration by "
            "best_val_acc; stage 2 retrains it on replicates to the full budget with no early stopping, and every "
            "conclusion comes from those replicates (val_acc after the last epoch). The mean over a cell's search "
            "trials is reported only as a measure of nuisance sensitivity."
        )
    else:
        replication = (
            "Search trials only: each cell is ranked by its best full-budget trial (its score with the nuisance "
            "hyperparameters tuned, a selected maximum, biased upwards); nothing is tested and no claim is checked "
            "until the selected configurations are retrained on replicates."
        )
    methods = {
        "replication": replication,
        "diverged": "a trial or replicate diverged when its training loss became non-finite, or when it trained the "
        f"full budget and its final validation accuracy is below {DIVERGED_ACCURACY:.0%} (chance is "
        f"{CHANCE_ACCURACY:.0%}); diverged runs are counted per cell and never scored",
        "ranking": out["ranking_method"],
        "effects": (
            "least-squares means of matched cells (see effect_tests for each factor's test)"
            if out["source"] == REPLICATES else "best search trial per value, not tested"
        ),
        "interaction": out["interaction"]["method"],
        "claims": "difference of matched least-squares means (or best claimed cell vs best other cell), Welch t interval; "
        "verdicts from the 95% interval, with a 0.1 percentage-point margin applied in both directions for accuracy "
        "claims (negligible when the interval lies within it)",
        "nuisance_sensitivity": out["search"]["mean_over_trials_method"],
    }
    if out.get("resolution"):
        methods["resolution"] = out["resolution"]["method"]
    if out.get("comparisons", {}).get("omnibus"):
        methods["omnibus"] = out["comparisons"]["omnibus"]["method"]
    rates = [e for per_bn in out["dropout_rate"].values() for e in per_bn.values()]
    if rates:
        methods["dropout_rate"] = "; ".join(sorted({e["method"] for e in rates}))
    if out.get("final"):
        methods["final"] = FINAL_METHOD
    if out.get("importance"):
        methods["importance"] = out["importance"]["method"]
    return methods


def _missing(v) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


__all__ = ["Analysis", "conclude", "make_tables", "run_analysis"]
