"""Hyperparameter importance of the factors and nuisance values, with Optuna's PED-ANOVA.

The full-budget trials are loaded into an in-memory Optuna study (one FrozenTrial
each, with distributions built from the values seen) and scored with
`optuna.importance.PedAnovaImportanceEvaluator`: how differently each parameter is
distributed in the top 10% of trials than in all of them. Optuna's fANOVA and
mean-decrease-impurity evaluators need scikit-learn, which this project does not
depend on; PED-ANOVA needs only numpy/scipy.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from analysis.design import Design, value_label
from analysis.results import Importance
from study.vocabulary.factors import LOG_SCALE_NUISANCE, NUISANCE

METHOD = "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator): top 10% of full-budget trials against all, normalised to sum to 1"
MIN_TRIALS = 20
# Above this many full-budget trials PED-ANOVA sees every k-th trial in score order, this many in all: Optuna copies
# each trial it is given (about 0.3 ms each, 15 s for 50,000), and an even sample in score order keeps the top
# 10% and the whole in their proportions. On tests' tables of 6,000 trials the sampled importances are within
# 0.03 of the exact ones (tests/analysis/test_importance.py).
MAX_TRIALS = 5_000
SAMPLED = "; {m} of the {n} trials, evenly spaced in score order"


def hyperparameter_importance(design: Design) -> tuple[Importance | None, str | None]:
    """(importance, None), or (None, reason) when it cannot be computed."""
    df = design.trials
    if len(df) < MIN_TRIALS:
        return None, f"hyperparameter importance needs at least {MIN_TRIALS} full-budget trials, got {len(df)}"
    method, n_all = METHOD, len(df)
    if len(df) > MAX_TRIALS:
        df = df.sort_values(["score", "trial_id"], kind="stable").iloc[np.linspace(0, len(df) - 1, MAX_TRIALS).round()
                                                                       .astype(int)]
        method += SAMPLED.format(n=n_all, m=len(df))
    try:
        import optuna
        from optuna.distributions import CategoricalDistribution, FloatDistribution
    except ImportError as exc:  # pragma: no cover - optuna is a dependency
        return None, f"hyperparameter importance skipped: optuna is not importable ({exc})"
    params, kinds = {}, {}
    for name in (*design.factors, *NUISANCE):
        if name not in df or name in params or df[name].nunique(dropna=True) < 2 or df[name].isna().any():
            continue
        column = df[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            lo, hi = float(column.min()), float(column.max())
            log = name in LOG_SCALE_NUISANCE and lo > 0
            params[name] = (FloatDistribution(lo, hi, log=log), column.astype(float).to_numpy())
        else:
            labels = column.map(value_label)
            params[name] = (CategoricalDistribution(sorted(labels.unique())), labels.to_numpy())
        kinds[name] = "scientific" if name in design.factors else "nuisance"
    if len(params) < 2:
        return None, "hyperparameter importance needs at least two parameters that varied"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    dists = {name: dist for name, (dist, _) in params.items()}
    frozen = [
        optuna.trial.create_trial(
            params={name: _python(values[i]) for name, (_, values) in params.items()},
            distributions=dists,
            value=float(score),
        )
        for i, score in enumerate(df["score"].to_numpy())
    ]
    study.add_trials(frozen)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except Exception as exc:  # noqa: BLE001 - Optuna's errors vary by version; the report notes the reason
        return None, f"hyperparameter importance failed in Optuna: {type(exc).__name__}: {exc}"
    # Ties (equal importances) in name order: Optuna returns them in no fixed order.
    values = dict(sorted(((k, float(v)) for k, v in values.items()), key=lambda kv: (-kv[1], kv[0])))
    return Importance(values, method, n_all, kinds), None


def _python(value):
    if isinstance(value, np.generic):
        return value.item()
    return value
