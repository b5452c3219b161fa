"""Synthetic study tables with planted effects, shaped like the study engine's output.

A trial's score is ``base + effect(factors) + noise``; `effect` plants a best cell,
an interaction or a best drop rate, and the tests check the analysis recovers it.
Nuisance values (lr, weight_decay) are drawn log-uniformly as a tuner's random
start would; they do not affect the score unless `lr_effect` is given.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from study.vocabulary.factors import cell_name, normalise_factors

DEFAULT_FACTORS = {
    "model": ("medium",),
    "bn": ("none", "pre_act", "post_act"),
    "dropout": ("none", "fc", "conv", "all"),
    "order": ("bn_first",),
    "p_conv": (0.1,),
    "p_fc": (0.3,),
    "augment": (False,),
}
LR_RANGE = (0.005, 0.3)
WD_RANGE = (1e-6, 1e-2)

# The post's eight experiments (blog_ablation): factors of each.
BLOG_EXPERIMENTS = {
    1: dict(model="small", bn="none", dropout="none", augment=False),
    2: dict(model="medium", bn="none", dropout="none", augment=False),
    3: dict(model="medium", bn="none", dropout="none", augment=True),
    4: dict(model="medium", bn="pre_act", dropout="none", augment=False),
    5: dict(model="medium", bn="none", dropout="all", augment=False),
    6: dict(model="medium", bn="pre_act", dropout="all", augment=False),
    7: dict(model="medium", bn="pre_act", dropout="all", augment=True),
    8: dict(model="large", bn="pre_act", dropout="all", augment=True),
}


def cells(**values) -> list[dict]:
    """Every normalised combination of the given factor values (defaults for the rest)."""
    spec = {**DEFAULT_FACTORS, **{k: tuple(v) for k, v in values.items()}}
    varying = [f for f, v in spec.items() if len(v) > 1 and v not in ("uniform",)]
    out, seen = [], set()
    for combo in itertools.product(*spec.values()):
        factors = normalise_factors(dict(zip(spec, combo)))
        key = cell_name(factors, varying) or "all"
        if key not in seen:
            seen.add(key)
            out.append({**factors, "cell": key})
    return out


def make_trials(
    seed: int = 0,
    *,
    cell_list: list[dict] | None = None,
    n_per_cell: int | tuple[int, int] = 8,
    effect: Callable[[dict], float] | None = None,
    noise: float | Callable[[dict], float] = 0.003,
    base: float = 0.90,
    rate_range: dict | None = None,
    pruned: int = 0,
    errors: int = 0,
    max_epochs: int = 10,
    lr_effect: Callable[[float, dict], float] | None = None,
    id_prefix: str = "t",
    gap_effect: Callable[[dict], float] | None = None,
) -> pd.DataFrame:
    """One row per trial with every trials.csv column.

    - `n_per_cell`: a count, or (low, high) for unequal counts drawn per cell;
    - `noise`: sd of the trial-to-trial noise, or a function of the cell (heteroscedastic);
    - `rate_range`: e.g. ``{"p_fc": (0.0, 0.8)}`` samples that rate uniformly per trial
      wherever its layer exists (a continuous scientific factor inside the cell);
    - `gap_effect`: added to the final val_loss (so to `gap`), per cell;
    - `pruned`, `errors`: extra trials per cell that ASHA stopped early / that failed.
    """
    rng = np.random.default_rng(seed)
    cell_list = cell_list if cell_list is not None else cells()
    effect = effect or (lambda f: 0.0)
    gap_effect = gap_effect or (lambda f: 0.1 * (f["dropout"] == "none"))
    # Plain Python lists, one DataFrame at the end: small DataFrames are slow to build.
    rows, status, sds = [], [], []
    for cell in cell_list:
        n = n_per_cell if isinstance(n_per_cell, int) else int(rng.integers(n_per_cell[0], n_per_cell[1] + 1))
        sd = noise(cell) if callable(noise) else noise
        for kind, count in (("completed", n), ("pruned", pruned), ("error", errors)):
            for _ in range(count):
                row = dict(cell)
                for rate, (lo, hi) in (rate_range or {}).items():
                    layer = ("fc", "all") if rate == "p_fc" else ("conv", "all")
                    row[rate] = float(rng.uniform(lo, hi)) if cell["dropout"] in layer else 0.0
                rows.append(row)
                status.append(kind)
                sds.append(sd)
    k = len(rows)
    if k == 0:
        return pd.DataFrame(columns=["trial_id", "cell", *DEFAULT_FACTORS, "status", "epochs", "best_val_acc"])
    status = np.array(status)
    lr = np.exp(rng.uniform(*np.log(LR_RANGE), k))
    wd = np.exp(rng.uniform(*np.log(WD_RANGE), k))
    score = np.array([effect(f) for f in rows]) + base + rng.normal(0.0, 1.0, k) * np.array(sds)
    if lr_effect is not None:
        score += np.array([lr_effect(x, f) for x, f in zip(lr, rows)])
    score = np.clip(score, 0.0, 1.0)
    epochs = np.where(status == "completed", max_epochs, rng.integers(1, max_epochs, k))
    epochs = np.where(status == "error", rng.integers(0, max_epochs, k), epochs)
    gap = np.array([gap_effect(f) for f in rows])
    has_dropout = np.array([f["dropout"] != "none" for f in rows])
    train_loss = 0.25 + 0.1 * has_dropout + rng.normal(0, 0.01, k)  # train mode: Dropout inflates it
    train_eval_loss = train_loss - 0.1 * has_dropout  # clean images, eval mode
    val_loss = train_eval_loss + 0.05 + gap + rng.normal(0, 0.01, k)
    columns = {name: [f[name] for f in rows] for name in rows[0]}
    df = pd.DataFrame({
        "trial_id": [f"{id_prefix}{i:04d}" for i in range(k)], **columns,
        "lr": lr, "weight_decay": wd, "momentum": 0.9, "optimizer": "sgd", "schedule": "cosine",
        "status": status, "epochs": epochs, "max_epochs": max_epochs, "train_loss": train_loss,
        "train_acc": np.minimum(1.0, score + 0.03), "train_eval_loss": train_eval_loss, "val_loss": val_loss,
        "val_acc": score - 0.001, "gap": val_loss - train_eval_loss, "epoch_s": 2.0, "samples_per_s": 27000.0,
        "best_val_acc": np.where((status == "error") & (epochs == 0), np.nan, score),
        "best_epoch": np.maximum(1, epochs - 1),
    })
    return df


def as_replicates(trials: pd.DataFrame) -> pd.DataFrame:
    """The same scores as stage-2 seed replicates (cv.csv rows): one configuration per cell.

    The synthetic scores do not depend on the nuisance values (unless `lr_effect` is
    given), so a cell's completed trials are draws of the same distribution as
    reruns of one configuration with other seeds. Pruned trials have no stage-2
    counterpart; failed ones stay failed.
    """
    rows = trials[trials["status"].isin(("completed", "error"))].copy()
    rows["config_id"] = rows.groupby("cell")["trial_id"].transform("first")
    rows["replicate"] = rows.groupby("cell").cumcount()
    rows["replicate_kind"] = "seed"
    rows["val_acc"] = rows["best_val_acc"]
    rows["epochs"] = np.where(rows["status"] == "completed", rows["max_epochs"], rows["epochs"])
    return rows.drop(columns=["trial_id", "best_val_acc", "best_epoch"]).reset_index(drop=True)


def blog_trials(seed: int = 0, n_per_cell: int = 6, scores: dict | None = None, noise: float = 0.003) -> pd.DataFrame:
    """The blog_ablation space: the post's eight experiments, `experiment` column included."""
    scores = scores or {1: 0.89, 2: 0.905, 3: 0.91, 4: 0.915, 5: 0.912, 6: 0.916, 7: 0.925, 8: 0.935}
    cell_list = []
    for exp, f in BLOG_EXPERIMENTS.items():
        factors = normalise_factors({**DEFAULT_FACTORS_SINGLE, **f})
        cell_list.append({**factors, "experiment": exp, "cell": f"experiment={exp}"})
    return make_trials(seed, cell_list=cell_list, n_per_cell=n_per_cell, base=0.0,
                       effect=lambda f: scores[f["experiment"]], noise=noise)


DEFAULT_FACTORS_SINGLE = {k: v[0] for k, v in DEFAULT_FACTORS.items()}


def make_epochs(trials: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per-epoch curves whose best val_acc matches each trial's best_val_acc."""
    rng = np.random.default_rng(seed)
    rows = []
    for rec in trials.itertuples():
        n = int(rec.epochs)
        if n == 0:
            continue
        t = np.arange(1, n + 1)
        shape = 1 - np.exp(-t / 2.5)
        val_acc = rec.best_val_acc - 0.05 * (1 - shape) - rng.uniform(0, 0.002, n)
        val_acc[min(n - 1, int(rec.best_epoch) - 1)] = rec.best_val_acc
        train_loss = 0.9 * np.exp(-t / 3) + 0.15
        val_loss = train_loss + 0.02 * t / n + 0.05
        for i in range(n):
            rows.append({
                "trial_id": rec.trial_id, "epoch": int(t[i]),
                "train_loss": train_loss[i], "train_acc": min(1.0, val_acc[i] + 0.02),
                "val_loss": val_loss[i], "val_acc": val_acc[i], "gap": val_loss[i] - train_loss[i],
                "lr": rec.lr * 0.5 * (1 + np.cos(np.pi * i / n)), "epoch_s": 2.0, "samples_per_s": 27000.0,
            })
    return pd.DataFrame(rows)


def make_cv(trials: pd.DataFrame, seed: int = 0, k: int = 5, per_cell: int = 1, shift: dict | None = None) -> pd.DataFrame:
    """CV folds of the best `per_cell` trials of each cell (noise sd 0.002 around their score)."""
    rng = np.random.default_rng(seed)
    done = trials[trials["status"] == "completed"]
    rows = []
    for cell, group in done.groupby("cell"):
        top = group.nlargest(per_cell, "best_val_acc")
        for rec in top.itertuples():
            for fold in range(k):
                acc = rec.best_val_acc - 0.002 + (shift or {}).get(cell, 0.0) + rng.normal(0, 0.002)
                rows.append({
                    "config_id": f"cfg-{rec.trial_id}", "cell": cell, "bn": rec.bn, "dropout": rec.dropout,
                    "model": rec.model, "order": rec.order, "p_conv": rec.p_conv, "p_fc": rec.p_fc,
                    "augment": rec.augment, "lr": rec.lr, "weight_decay": rec.weight_decay, "fold": fold,
                    "train_loss": 0.2, "train_acc": acc + 0.02, "val_loss": 0.3, "val_acc": acc, "gap": 0.1,
                })
    return pd.DataFrame(rows)


def cv_summary_from(cv: pd.DataFrame) -> pd.DataFrame:
    g = cv.groupby("config_id")
    out = g.first()[["cell", "bn", "dropout", "model", "order", "p_conv", "p_fc", "augment"]].copy()
    out["n_folds"] = g["val_acc"].count()
    out["val_acc_mean"] = g["val_acc"].mean()
    out["val_acc_std"] = g["val_acc"].std()
    out["val_acc_ci_low"] = out["val_acc_mean"] - 0.01
    out["val_acc_ci_high"] = out["val_acc_mean"] + 0.01
    out["val_loss_mean"] = g["val_loss"].mean()
    out["val_loss_std"] = g["val_loss"].std()
    out["gap_mean"] = g["gap"].mean()
    out["gap_std"] = g["gap"].std()
    return out.reset_index()


def make_final(cv: pd.DataFrame, seeds: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    best = cv.groupby("config_id")["val_acc"].mean().nlargest(2)
    first = cv.groupby("config_id").first()
    rows = []
    for config_id, acc in best.items():
        for s in range(seeds):
            rows.append({"config_id": config_id, "cell": first.loc[config_id, "cell"], "bn": first.loc[config_id, "bn"],
                         "dropout": first.loc[config_id, "dropout"], "seed": s,
                         "test_acc": acc - 0.003 + rng.normal(0, 0.001), "test_loss": 0.3})
    return pd.DataFrame(rows)


def write_experiment(folder: Path, trials: pd.DataFrame, epochs=None, cv=None, cv_summary=None, final=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    trials.to_csv(folder / "trials.csv", index=False)
    for name, table in (("epochs", epochs), ("cv", cv), ("cv_summary", cv_summary), ("final", final)):
        if table is not None:
            table.to_csv(folder / f"{name}.csv", index=False)
    return folder
