"""From the study's tables to the conclusions: `run_analysis` and `conclude`.

`run_analysis` keeps every intermediate result (the plots need them);
`conclude` returns only the conclusions dict that goes to conclusions.json:

- `metric`, `factors`, `ranking`, `effects`, `interaction`, `dropout_rate`,
  `claims`, `warnings` (the keys issue 5 fixes);
- and, for readers and the report: `ranking_method`, `ranking_trials` (when CV
  ranks the cells), `comparisons`, `effect_tests`, `final`, `importance`,
  `counts`, `methods`, `summary` (the conclusions as plain sentences).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import checks
from analysis.claims import Claim, check_claims
from analysis.design import Design, make_design
from analysis.effects import factor_effects
from analysis.final import METHOD as FINAL_METHOD
from analysis.final import summarise_final
from analysis.importance import Importance, hyperparameter_importance
from analysis.interaction import Interaction, interaction_test, means_table
from analysis.io import (
    Tables,
    validate_cv,
    validate_cv_summary,
    validate_epochs,
    validate_final,
    validate_trials,
)
from analysis.ranking import OMNIBUS_METHOD, TOP_TWO_METHOD, Ranking, rank_cells, trial_ranking
from analysis.rates import RateFit, fit_dropout_rates
from analysis.summary import summary_sentences
from study.factors import NUISANCE, SCIENTIFIC_FACTORS


@dataclass(frozen=True)
class Analysis:
    """Every result of one analysis, and the conclusions dict built from them."""

    tables: Tables
    design: Design
    ranking: Ranking  # from CV when present
    trial_ranking: Ranking
    effects: dict  # factor -> FactorEffect
    interaction: Interaction
    rate_fits: list  # RateFit
    claims: list  # Claim
    final: pd.DataFrame | None
    importance: Importance | None
    warnings: list
    conclusions: dict


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
    design = make_design(tables.trials, metric)
    ranking = rank_cells(design, tables.cv, tables.cv_summary)
    by_trials = ranking if ranking.source == "trials" else trial_ranking(design)
    effects = factor_effects(design)
    interaction = interaction_test(design)
    rate_fits = fit_dropout_rates(design, n_boot=n_boot, seed=seed)
    claims = check_claims(design, ranking)
    final = summarise_final(tables.final) if tables.final is not None else None
    if importance:
        importance_result, importance_reason = hyperparameter_importance(design)
    else:
        importance_result, importance_reason = None, "hyperparameter importance was not requested"
    warnings = [
        *checks.status_warnings(design.counts, design.budget),
        *checks.single_cell(design),
        *checks.missing_cells(tables.trials, design),
        *checks.few_trials(design),
        *checks.diverged(design),
        *checks.nuisance_edges(tables.trials, design, tables.search_ranges),
        *checks.rate_edges(rate_fits),
        *checks.cv_coverage(ranking, design),
        *checks.effect_warnings(effects),
    ]
    if importance_reason and importance:
        warnings.append(importance_reason[0].upper() + importance_reason[1:] + "; the importance plot is skipped.")
    conclusions = build_conclusions(
        design, ranking, by_trials, effects, interaction, rate_fits, claims, final, importance_result, warnings
    )
    return Analysis(
        tables, design, ranking, by_trials, effects, interaction, rate_fits, claims, final, importance_result,
        warnings, conclusions,
    )


def build_conclusions(design, ranking, by_trials, effects, interaction, rate_fits, claims, final, importance, warnings) -> dict:
    out = {
        "metric": ranking.metric,
        "factors": list(design.factors),
        "ranking": ranking_entries(ranking, design),
        "effects": {f: e.values for f, e in effects.items()},
        "interaction": interaction_entry(interaction, design.metric),
        "dropout_rate": rate_entries(rate_fits),
        "claims": [claim_entry(c) for c in claims],
        "warnings": list(warnings),
        "ranking_method": ranking.method,
        "comparisons": comparisons_entry(ranking),
        "effects_metric": design.metric,
        "effect_tests": {f: e.test for f, e in effects.items()},
        "counts": {**design.counts, "cells": int(len(design.cells)), "max_epochs": design.budget},
        "cell_factors": list(design.cell_factors),
        "within_cell_factors": list(design.within_cell),
        "final": final_entries(final),
        "importance": (
            {"method": importance.method, "n_trials": importance.n_trials, "values": importance.values, "kinds": importance.kinds}
            if importance is not None else None
        ),
    }
    if ranking.source == "cv":
        out["ranking_trials"] = ranking_entries(by_trials, design)
        out["ranking_trials_method"] = by_trials.method
    out["methods"] = methods_entry(out)
    out = jsonable(out)
    out["summary"] = summary_sentences(out)
    return out


def ranking_entries(ranking: Ranking, design: Design) -> list[dict]:
    entries = []
    factor_cols = [f for f in SCIENTIFIC_FACTORS if f in ranking.table]
    best_rows = design.trials.set_index("trial_id")
    for rank, rec in enumerate(ranking.table.to_dict("records"), start=1):
        entry = {"rank": rank, "cell": rec["cell"]}
        for f in factor_cols:
            v = rec[f]
            entry[f] = None if _missing(v) else _plain(v)
        entry.update(
            n=int(rec["n"]), score=rec["score"], ci_low=rec["ci_low"], ci_high=rec["ci_high"],
            sd=rec.get("sd"),
        )
        if ranking.source == "cv":
            entry["config_id"] = rec["config_id"]
            entry["unit"] = "folds"
        else:
            entry["unit"] = "trials"
            best_id = rec["best_trial_id"]
            if best_id in best_rows.index:
                best = best_rows.loc[best_id]
                entry["best_trial"] = {
                    "trial_id": best_id,
                    "score": float(best["score"]),
                    **{k: _plain(best[k]) for k in (*NUISANCE, "p_conv", "p_fc") if k in best.index and not _missing(best[k])},
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
    methods = {
        "replication": (
            "Only trials that trained the full epoch budget are compared; pruned and failed trials are counted. "
            "The unit of replication is the trial: trials of a cell differ in their tuned nuisance values and "
            "seeds, so a cell's score is the mean over the trials the tuner and scheduler let finish, not the best "
            "trial (a maximum, biased upwards, and more so for cells with more trials)."
        ),
        "score": (
            f"{out['effects_metric']}: "
            + ("the trial's highest validation accuracy over its epochs" if out["effects_metric"] == "best_val_acc"
               else "the trial's validation accuracy after its last epoch")
            + "."
        ),
        "ranking": out["ranking_method"],
        "effects": "least-squares means of matched cells (see effect_tests for each factor's test)",
        "interaction": out["interaction"]["method"],
        "claims": "difference of matched least-squares means (or best claimed cell vs best other cell), Welch t interval; "
        "verdict from the 95% interval, with a 0.1 percentage-point margin for accuracy claims",
    }
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


def jsonable(obj):
    """Plain Python types for json.dump: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    if obj is pd.NA or obj is pd.NaT:
        return None
    return str(obj)


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
