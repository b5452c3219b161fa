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

`run_analysis` keeps every intermediate result (the plots need them) and the typed
`analysis.results.Conclusions`; `conclude` returns only those conclusions, as
conclusions.json holds them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analysis import checks
from analysis.claims import check_claims
from analysis.design import Design, diverged_counts, make_design
from analysis.errors import AnalysisError
from analysis.effects import FactorEffect, factor_effects, search_effects
from analysis.fidelity import asha_fidelity
from analysis.final import METHOD as FINAL_METHOD
from analysis.final import summarise_final
from analysis.importance import hyperparameter_importance
from analysis.mechanism import METHOD as MECHANISM_METHOD
from analysis.mechanism import summarise_mechanism
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
from analysis.replicate_sets import choose_set, summarise_sets
from analysis.replicates import SCORE as REPLICATE_METRIC
from analysis.replicates import replicate_rows, replicate_unit
from analysis.resolution import detectable_difference
from analysis.results import (
    CellMean,
    Claim,
    Comparisons,
    Conclusions,
    DivergedCount,
    FinalResult,
    Importance,
    InteractionResult,
    OmnibusTest,
    RankedCell,
    RateEntry,
    ReplicateSet,
    Resolution,
    SearchSummary,
    SelectedTrial,
    Setting,
    TopTwo,
    from_json,
    to_json,
)
from analysis.summary import answer_sentences, summary_sentences
from analysis.text import SEARCH_ONLY
from study.vocabulary.factors import CHANCE_ACCURACY, DIVERGED_ACCURACY, NUISANCE, RATE_FACTORS, SCIENTIFIC_FACTORS

SENSITIVITY_METHOD = (
    "mean of best_val_acc over a cell's full-budget search trials: how forgiving the cell is of the nuisance "
    "range and of trial order, not how well it works when tuned"
)


@dataclass(frozen=True)
class Analysis:
    """Every result of one analysis, and the conclusions built from them."""

    tables: Tables
    design: Design  # what the conclusions come from: replicates, or the search when there are none
    search: Design  # the search trials, always
    replicates: pd.DataFrame | None  # the replicate rows `design` was built from
    ranking: Ranking
    effects: dict[str, FactorEffect]
    interaction: Interaction
    rate_fits: list[RateFit]
    claims: list[Claim]
    resolution: Resolution | None
    final: pd.DataFrame | None
    importance: Importance | None
    warnings: list[str]
    conclusions: Conclusions

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
    claims=None,
) -> dict:
    """The conclusions for these tables (raw or validated DataFrames), as conclusions.json holds them;
    `claims` (`search_spaces.claims.ClaimSpec`s) replace the shipped claims.

    Raises `AnalysisError` for missing columns, an empty table, no full-budget trial,
    or nothing that varied.
    """
    tables = make_tables(trials, epochs, cv, cv_summary, final, metric=metric, search_ranges=search_ranges)
    tables = replace(tables, claims=tuple(claims) if claims else None)
    return to_json(run_analysis(tables, metric=metric, n_boot=n_boot, seed=seed, importance=importance).conclusions)


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
    tables: Tables, *, metric: str = "best_val_acc", n_boot: int = 1000, seed: int = 0, importance: bool = True,
    replicates: str | None = None,
) -> Analysis:
    """Every step of the analysis; `n_boot` resamples for the drop-rate intervals, `seed` for all
    bootstraps (results are reproducible); `importance=False` skips Optuna's PED-ANOVA.

    `replicates` names the replicate set to draw the conclusions from (default: see
    `analysis.replicate_sets.choose_set`); the others are summarised beside it.
    """
    search = make_design(tables.trials, metric)
    sets = tables.replicate_sets or ({"cv": tables.cv} if tables.cv is not None else {})
    chosen, chosen_why = choose_set(sets, tables.trials, replicates, tables.own_set)
    cv = sets.get(chosen) if chosen is not None else None
    rows = replicate_rows(cv, tables.trials)
    stage_two_notes = replicate_notes(cv, rows)
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
    mechanism = summarise_mechanism(design, ranking.source)
    claims = check_claims(design, ranking, mechanism, tables.claims)
    fidelity, fidelity_warning = asha_fidelity(tables.trials, tables.epochs, tables.reduction_factor)
    final = summarise_final(tables.final) if tables.final is not None else None
    if importance:
        importance_result, importance_reason = hyperparameter_importance(search)
    else:
        importance_result, importance_reason = None, "hyperparameter importance was not requested"
    warnings = collect_warnings(tables, search, design, rows, unit, rate_fits, effects, stage_two_notes)
    if fidelity_warning:
        warnings.append(fidelity_warning)
    if importance_reason and importance:
        warnings.append(importance_reason[0].upper() + importance_reason[1:] + "; the importance plot is skipped.")
    conclusions = build_conclusions(
        design, search, ranking, effects, interaction, rate_fits, claims, resolution, final, importance_result,
        warnings, tables.trials, mechanism, fidelity,
    )
    if sets:
        conclusions = with_replicate_sets(conclusions, summarise_sets(sets, tables.trials, chosen, tuned_rates(tables.trials)),
                                          chosen, chosen_why)
    return Analysis(
        tables, design, search, rows, ranking, effects, interaction, rate_fits, claims, resolution, final,
        importance_result, warnings, conclusions,
    )


def collect_warnings(tables: Tables, search: Design, design: Design, rows: pd.DataFrame | None, unit: str,
                     rate_fits: list[RateFit], effects: dict[str, FactorEffect], stage_two_notes: list[str]) -> list[str]:
    """Every warning to read before trusting the numbers, stage 2's first."""
    replicated = rows is not None
    return [
        *stage_two_notes,
        *checks.status_warnings(search.counts, search.budget, "search trials"),
        *(checks.status_warnings(design.counts, design.budget, unit) if replicated else []),
        *checks.single_cell(design),
        *checks.missing_cells(tables.trials, search, SEARCH),
        *(checks.missing_cells(tables.trials, design, REPLICATES) if replicated else []),
        *(checks.few_replicates(design, unit) if replicated else []),
        *checks.nuisance_edges(tables.trials, search, tables.search_ranges),
        *checks.rate_edges(rate_fits),
        *checks.several_configs(rows),
        *checks.effect_warnings(effects),
    ]


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
                      warnings, trials, mechanism, fidelity) -> Conclusions:
    conclusions = Conclusions(
        source=ranking.source,
        metric=ranking.metric,
        factors=list(design.factors),
        ranking=ranked_cells(ranking, search),
        effects={f: dict(e.values) for f, e in effects.items()},
        effect_tests={f: e.test for f, e in effects.items()},
        effects_metric=design.metric,
        interaction=interaction_result(interaction, design.metric),
        dropout_rate=rate_entries(rate_fits),
        claims=list(claims),
        warnings=list(warnings),
        ranking_method=ranking.method,
        comparisons=comparisons(ranking),
        resolution=resolution,
        counts=replace(design.counts, cells=int(len(design.cells)), max_epochs=design.budget),
        cell_factors=list(design.cell_factors),
        within_cell_factors=list(design.within_cell),
        search=search_summary(search),
        setting=setting(trials, design.trials if ranking.source == REPLICATES else None),
        diverged=diverged_by(trials, "cell"),
        diverged_by_bn=diverged_by(trials, "bn") if "bn" in trials else {},
        final=final_results(final),
        importance=importance,
        mechanism=mechanism,
        asha_fidelity=fidelity,
    )
    # Through the file's form once: a number that could not be computed is None from here on, in memory as in
    # conclusions.json, so the sentences and a report rebuilt from the file read the same values.
    conclusions = from_json(Conclusions, to_json(replace(conclusions, methods=methods(conclusions))))
    return replace(conclusions, summary=summary_sentences(conclusions), answer=answer_sentences(conclusions))


def with_replicate_sets(c: Conclusions, sets: list[ReplicateSet], chosen: str, why: str) -> Conclusions:
    """The conclusions with the experiment's replicate sets, and, where there are several, a sentence that
    says which one they come from and why, right after the first."""
    c = replace(c, replicate_set=chosen, replicate_set_reason=why, replicate_sets=sets)
    if len(sets) < 2:
        return c
    others = "; ".join(f"{s.name} ({s.agreement})" for s in sets if not s.chosen)
    source = (f"from the replicate set {chosen} ({why})" if c.source == REPLICATES
              else f"from the search, since the replicate set {chosen} cannot compare cells")
    sentence = f"The conclusions come {source}; beside it (section 'Replicate sets'): {others}."
    return replace(c, summary=[*c.summary[:1], sentence, *c.summary[1:]])


def search_summary(search: Design) -> SearchSummary:
    """The search stage: each cell's best trial (the selected configuration) and the nuisance sensitivity."""
    best = search_ranking(search)
    cells = search.cells.set_index("cell")
    return SearchSummary(
        counts=search.counts,
        best_trials=ranked_cells(best, search),
        mean_over_trials={cell: CellMean(float(cells.loc[cell, "mean"]), int(cells.loc[cell, "n"])) for cell in cells.index},
        mean_over_trials_method=SENSITIVITY_METHOD,
        ranking_method=best.method,
    )


def diverged_by(trials: pd.DataFrame, column: str) -> dict[str, DivergedCount]:
    """Per cell (or BatchNorm setting): search trials, how many diverged, and the share (an outcome of its own)."""
    counts = diverged_counts(trials, [column]).sort_values(column)
    return {str(getattr(r, column)): DivergedCount(int(r.trials), int(r.diverged), float(r.share)) for r in counts.itertuples()}


def setting(trials: pd.DataFrame, replicates: pd.DataFrame | None = None) -> Setting:
    """What every trial trained on (the fixed part of the budget), where the table records it.

    A study on the whole training split leaves `train_size` empty (none = all); the images its replicates
    trained on (cv.csv's `n_train`) then say how many that was."""
    values = {}
    for f in dataclasses.fields(Setting):
        if f.name in trials and trials[f.name].nunique(dropna=False) == 1:
            value = trials[f.name].iloc[0]
            values[f.name] = None if _missing(value) else _plain(value)
    trained = replicates["n_train"].dropna() if replicates is not None and "n_train" in replicates else None
    if values.get("train_size") is None and trained is not None and trained.nunique() == 1:
        values["train_size"] = int(trained.iloc[0])
    return Setting(**values)


def ranked_cells(ranking: Ranking, search: Design) -> list[RankedCell]:
    """The ranking, each entry with the search trial its configuration came from."""
    entries = []
    factor_cols = [f for f in SCIENTIFIC_FACTORS if f in ranking.table]
    search_rows = search.trials.set_index("trial_id")
    for rank, rec in enumerate(ranking.table.to_dict("records"), start=1):
        # A replicate's id is CONFIG_ID/rK; the configuration is the search trial CONFIG_ID.
        selected = str(rec["best_trial_id"]).split("/")[0] if ranking.source == REPLICATES else rec["best_trial_id"]
        trial = None
        if selected in search_rows.index:
            row = search_rows.loc[selected]
            config = {k: _plain(row[k]) for k in (*NUISANCE, "p_conv", "p_fc") if k in row.index and not _missing(row[k])}
            trial = SelectedTrial(selected, float(row["score"]), config)
        entries.append(RankedCell(
            rank=rank, cell=rec["cell"], n=int(rec["n"]), score=rec["score"], ci_low=rec["ci_low"],
            ci_high=rec["ci_high"], sd=rec.get("sd"), unit=ranking.unit,
            factors={f: None if _missing(rec[f]) else _plain(rec[f]) for f in factor_cols},
            config_id=selected if ranking.source == REPLICATES else None,
            selected_trial=trial,
        ))
    return entries


def interaction_result(interaction: Interaction, metric: str) -> InteractionResult:
    table = means_table(interaction)
    means = None
    if table is not None:
        means = {
            str(bn): {str(level): float(v) for level, v in row.items() if not _missing(v)}
            for bn, row in table.iterrows()
        }
    return InteractionResult(
        list(interaction.factors), interaction.p_value, bool(interaction.significant), interaction.method, metric,
        statistic=interaction.statistic, df1=interaction.df1, df2=interaction.df2, n_cells=interaction.n_cells,
        n_trials=interaction.n_trials, reason=interaction.reason or "", means=means,
    )


MAX_GRID_LEVELS = 4  # a grid of rates (binned means); more levels are a fitted curve


def rate_entries(rate_fits: list[RateFit]) -> dict[str, dict[str, RateEntry]]:
    out: dict = {}
    for fit in rate_fits:
        out.setdefault(fit.rate, {})[fit.bn] = RateEntry(
            fit.best, fit.ci_low, fit.ci_high, fit.score_at_best, fit.n, tuple(fit.range), fit.at_edge,
            tuple(fit.near_optimal), fit.source, fit.method,
            [] if len(fit.grid) > MAX_GRID_LEVELS else
            [[float(r), float(y), float(lo), float(hi)] for r, y, lo, hi in zip(fit.grid, fit.curve, fit.band_low, fit.band_high)],
        )
    return out


def comparisons(ranking: Ranking) -> Comparisons:
    omnibus = top_two = None
    if ranking.omnibus is not None:
        r = ranking.omnibus
        omnibus = OmnibusTest(r.p_value, r.significant, r.statistic, r.df1, r.df2, OMNIBUS_METHOD)
    if ranking.top_two is not None:
        iv, p = ranking.top_two
        t = ranking.table
        top_two = TopTwo(t["cell"].iloc[0], t["cell"].iloc[1], iv.estimate, iv.low, iv.high, p,
                         bool(p < 0.05) if p == p else False, TOP_TWO_METHOD)
    return Comparisons(omnibus, top_two)


def final_results(final: pd.DataFrame | None) -> list[FinalResult] | None:
    if final is None:
        return None
    return [FinalResult(**{k: _plain(v) for k, v in rec.items()}, method=FINAL_METHOD) for rec in final.to_dict("records")]


def methods(c: Conclusions) -> dict[str, str]:
    """What each part of the conclusions was computed with, in words."""
    if c.source == REPLICATES:
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
    out = {
        "replication": replication,
        "diverged": "a trial or replicate diverged when its training loss became non-finite, or when it trained the "
        f"full budget and its final validation accuracy is below {DIVERGED_ACCURACY:.0%} (chance is "
        f"{CHANCE_ACCURACY:.0%}); diverged runs are counted per cell and never scored",
        "ranking": c.ranking_method,
        "effects": (
            "least-squares means of matched cells (see effect_tests for each factor's test)"
            if c.source == REPLICATES else "best search trial per value, not tested"
        ),
        "interaction": c.interaction.method,
        "claims": "difference of matched least-squares means (or best claimed cell vs best other cell), Welch t interval; "
        "verdicts from the 95% interval, with a 0.1 percentage-point margin applied in both directions for accuracy "
        "claims (negligible when the interval lies within it)",
        "nuisance_sensitivity": c.search.mean_over_trials_method,
    }
    if c.resolution is not None:
        out["resolution"] = c.resolution.method
    if c.comparisons.omnibus is not None:
        out["omnibus"] = c.comparisons.omnibus.method
    rate_methods = {e.method for per_bn in c.dropout_rate.values() for e in per_bn.values()}
    if rate_methods:
        out["dropout_rate"] = "; ".join(sorted(rate_methods))
    if c.final:
        out["final"] = FINAL_METHOD
    if c.importance is not None:
        out["importance"] = c.importance.method
    if c.asha_fidelity is not None and c.asha_fidelity.rungs:
        out["asha_fidelity"] = c.asha_fidelity.method
    if c.mechanism is not None and c.mechanism.cells:
        out["mechanism"] = MECHANISM_METHOD
    return out


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
