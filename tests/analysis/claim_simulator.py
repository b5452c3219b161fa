"""The default space's study simulated with a known truth for every claim and every drop rate.

`search_simulator` runs both stages (a search with ASHA, then each cell's best retrained on
seeds) for the 25 cells of ``search_spaces/default.yaml``; here each cell also gets true
values of what the claims measure besides accuracy (validation loss, generalization gap,
variance shift, the accuracy BN re-estimation wins back, the confidence of wrong
predictions), and each replicate measures them with noise. A `World` says what is true:
`planted_world` makes every claim of the table true (and `mirrored_world` every directional
claim false), `null_world` makes nothing differ (the equivalence claim sits at its margin),
and `rate_world` plants a best drop rate that differs with and without BN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from search_simulator import CellTruth, FACTOR_COLUMNS, Truth, pick_best, simulate_replicates, simulate_search
from search_spaces import load_space

Factors = dict


def default_cells() -> list[dict]:
    """The default space's cells: full factor values and the cell's name."""
    return [{**cell.factors, "cell": cell.name} for cell in load_space("default").named_cells()]


def _zero(f: Factors) -> float:
    return 0.0


@dataclass(frozen=True)
class World:
    """What is true of each cell (functions of its factors), and how noisy one seed is."""

    accuracy: Callable[[Factors], float] = _zero  # added to the base accuracy (0.90): the tuned peak
    val_loss: Callable[[Factors], float] = _zero  # added to 0.30
    gap: Callable[[Factors], float] = _zero  # added to 0.05
    shift: Callable[[Factors], float] = lambda f: 1.02  # var_shift_max of a cell with BN
    gain_per_shift: float = 0.0  # accuracy re-estimation wins back per unit of shift
    conf_wrong: Callable[[Factors], float] = _zero  # added to 0.70
    noise_sd: Callable[[Factors], float] = lambda f: 0.003 if f["bn"] == "none" else 0.004  # unequal, as real
    extras: dict = field(default_factory=dict)


def with_bn(f: Factors) -> bool:
    return f["bn"] != "none"


def conv_dropout(f: Factors) -> bool:
    return f["dropout"] in ("conv", "all")


def true_shift(f: Factors, first: float = 1.25, uout_first: float = 1.03, fc: float = 1.02, after: float = 1.10) -> float:
    """Dropout2d(p) right before BN shifts most; Uout little; after BN it reaches the next BN through a conv."""
    if not with_bn(f):
        return float("nan")
    if conv_dropout(f):
        if f["order"] == "dropout_first":
            return uout_first if f["dropout_kind"] == "uout" else first
        return after
    return fc if f["dropout"] == "fc" else 1.02


# The claims the mechanism decides whichever way the advice goes: in the mirrored world (sign -1) they stay as planted.
MECHANISM_KEPT = {"dropout_before_bn_shifts_variance", "dropout_after_last_bn_no_shift", "bn_reestimation_recovers",
                  "uout_removes_shift"}


def planted_world(sign: float = 1.0, effect: float = 0.01) -> World:
    """Every claim true (`sign` -1: every directional claim false, the variance shift *raising* accuracy; the
    shift itself, and what re-estimation wins back, stay as the mechanism has them)."""
    def accuracy(f):
        a = 0.0
        if with_bn(f) and conv_dropout(f) and f["order"] == "bn_first":
            a += sign * effect  # BN before Dropout
        if with_bn(f) and f["dropout"] == "fc":
            a += sign * effect  # with BN, Dropout only in the classifier
        if f["model"] == "large" and with_bn(f) and f["dropout"] != "none" and f["augment"]:
            a += sign * 4 * effect  # the post's experiment 8 is best
        return a

    def gap(f):  # all three generalize best (smallest gap)
        return -sign * 0.05 if with_bn(f) and f["dropout"] != "none" and f["augment"] else 0.0

    return World(
        accuracy=lambda f: accuracy(f) - sign * 0.2 * (np.nan_to_num(true_shift(f), nan=1.0) - 1.0),
        val_loss=lambda f: -sign * 0.03 if with_bn(f) and f["dropout"] != "none" else 0.0,
        gap=gap,
        shift=true_shift,
        gain_per_shift=0.15,
        conf_wrong=lambda f: -sign * 0.08 if with_bn(f) else 0.0,
    )


def null_world() -> World:
    """No claim holds: equal accuracy, loss, gap and confidence everywhere; Dropout2d before BN shifts no more
    than after it, Uout as much as Bernoulli, the shift costs nothing and re-estimation wins nothing back, and
    Dropout in the classifier shifts by the margin (0.05) more than no Dropout."""
    return World(shift=lambda f: true_shift(f, first=1.10, uout_first=1.10, fc=1.07))


def rate_world(best_without_bn: dict, best_with_bn: dict, drop: float = 0.01) -> World:
    """Accuracy falls by `drop` per level away from the best rate of each position: `best_*` map p_conv and
    p_fc to their best level (the factorial's rates and one level below and above them)."""
    levels = {"p_conv": (0.05, 0.1, 0.2), "p_fc": (0.15, 0.3, 0.6)}

    def accuracy(f):
        best = best_with_bn if with_bn(f) else best_without_bn
        out = 0.0
        for rate, grid in levels.items():
            if f[rate] > 0 and f[rate] in grid:
                out -= drop * abs(grid.index(f[rate]) - grid.index(best[rate]))
        return out

    return World(accuracy=accuracy)


def simulate_claim_study(world: World, *, seed: int, samples_per_cell: int = 4, replicates: int = 5,
                         max_epochs: int = 4, diverged: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, cv) of the default space under `world`; one stage-2 replicate diverges when `diverged`."""
    cells = default_cells()
    truth = Truth(tuple(
        CellTruth(cell=f["cell"], factors={k: f[k] for k in FACTOR_COLUMNS}, peak=0.90 + world.accuracy(f),
                  noise_sd=world.noise_sd(f), best_lr=0.03 if f["bn"] == "none" else 0.05, curvature=0.0005,
                  wd_curvature=0.00005, diverge_lr=0.5, tau=1.0)
        for f in cells
    ))
    trials = simulate_search(truth, samples_per_cell=samples_per_cell, max_epochs=max_epochs, grace_period=2,
                             reduction_factor=2, seed=seed)
    cv = simulate_replicates(truth, pick_best(trials), replicates=replicates, seed=seed)
    rng = np.random.default_rng([seed, 7])
    by_cell = {f["cell"]: f for f in cells}
    rows = [by_cell[c] for c in cv["cell"]]
    n = len(cv)

    def measured(fn, base, sd):
        return np.array([base + fn(f) for f in rows]) + rng.normal(0, sd, n)

    cv["val_loss"] = measured(world.val_loss, 0.30, 0.01)
    cv["gap"] = measured(world.gap, 0.05, 0.01)
    cv["train_eval_loss"] = cv["val_loss"] - cv["gap"]  # the analysis recomputes the gap from the two losses
    shift = np.array([world.shift(f) for f in rows])
    cv["var_shift_max"] = shift + rng.normal(0, 1, n) * np.where(cv["order"] == "dropout_first", 0.03, 0.01)
    cv["var_shift_mean"] = cv["var_shift_max"]
    recovered = world.gain_per_shift * (np.nan_to_num(shift, nan=1.0) - 1.0) + rng.normal(0, 0.002, n)
    cv["val_acc_bn_reestimated"] = np.where(cv["bn"] == "none", np.nan, cv["val_acc"] + recovered)
    cv["conf_wrong"] = measured(world.conf_wrong, 0.70, 0.02)
    cv["ece"] = 0.04 + rng.normal(0, 0.005, n)
    if diverged:  # a replicate of the Dropout-before-BN cell diverged: no metrics, never scored
        row = cv.index[(cv["order"] == "dropout_first") & (cv["dropout_kind"] == "bernoulli")][0]
        cv.loc[row, "status"] = "diverged"
        cv.loc[row, ["val_acc", "var_shift_max", "var_shift_mean", "val_acc_bn_reestimated", "conf_wrong", "ece"]] = np.nan
    return trials, cv
