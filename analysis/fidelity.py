"""Is ASHA's early judgement trustworthy here? Early scores against final scores, per rung.

ASHA stops a trial at a rung (an epoch milestone) when its score there is below the
best 1/reduction_factor of the scores recorded at that rung. That is only as good as
the agreement between a trial's score at the rung and its score at the end. Among the
trials of a cell that trained the full budget, this module measures it at every rung:

- Kendall's tau between `val_acc` at the rung's epoch and the final score
  (`best_val_acc`), counting pairs within cells only (cells differ in level, which
  would otherwise inflate it), with a 95% interval from its delete-one jackknife
  standard error;
- in how many cells the eventual best trial would have been stopped at the rung, had
  ASHA compared it with every score recorded there (pruned trials' included): a
  judgement in hindsight, since ASHA decides as trials arrive.

The rungs are the epochs at which pruned trials stopped (where ASHA stops them), so a
table from any scheduler with rungs analyses the same way; without pruned trials, or
without epochs.csv, there is nothing to measure and the result says why. The reduction
factor is the one study.json records, or else inferred from the rungs' spacing.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import stats
from analysis.results import AshaFidelity, RungFidelity

WEAK_TAU = 0.5  # below it at the first rung, early stopping is close to a coin toss among good trials
METHOD = (
    "Kendall tau between val_acc at the rung's epoch and best_val_acc, over the full-budget trials, pairs within "
    "cells only, 95% t interval from its delete-one jackknife standard error; the best trial "
    "of a cell counted as stopped when its score at the rung is below the cutoff of all scores recorded there"
)


def asha_fidelity(trials: pd.DataFrame, epochs: pd.DataFrame | None,
                  reduction_factor: float | None = None) -> tuple[AshaFidelity, str]:
    """Agreement of each rung's scores with the final ones (see the module docstring), and the warning
    to give when the first rung agrees weakly ("" otherwise). `reduction_factor`: ASHA's, as study.json
    records it; None infers it from the rungs' spacing."""
    def nothing(reason: str) -> tuple[AshaFidelity, str]:
        return AshaFidelity([], reason, METHOD), ""

    if epochs is None or epochs.empty or "val_acc" not in epochs:
        return nothing("no epochs.csv with per-epoch val_acc")
    pruned = trials[trials["status"] == "pruned"]
    full = trials[(trials["status"] == "completed") & (trials["epochs"] >= trials["max_epochs"])]
    rungs = sorted({int(e) for e in pruned["epochs"] if e > 0})
    if not rungs:
        return nothing("no trial was pruned, so the search had no rung to judge")
    if len(full) < 3:
        return nothing("fewer than 3 trials trained the full budget")
    at = epochs.pivot_table(index="trial_id", columns="epoch", values="val_acc", aggfunc="last")
    rf = reduction_factor or reduction_factor_of(rungs)
    out = []
    for rung in rungs:
        if rung not in at.columns:
            continue
        frame = full[["trial_id", "cell", "best_val_acc"]].assign(early=full["trial_id"].map(at[rung])).dropna()
        groups = [(g["early"].to_numpy(float), g["best_val_acc"].to_numpy(float)) for _, g in frame.groupby("cell")]
        tau = stratified_tau(groups)
        low, high = jackknife_interval(groups, tau)
        stopped, cells = best_stopped(trials, at, rung, rf)
        out.append(RungFidelity(rung, tau, low, high, int(len(frame)), int(sum(len(x) >= 2 for x, _ in groups)),
                                stopped, cells))
    warning = ""
    first = out[0] if out else None
    if first is not None and math.isfinite(first.tau) and first.tau < WEAK_TAU:
        warning = (
            f"ASHA's first rung (epoch {first.epoch}) agrees weakly with the final scores: Kendall tau {first.tau:.2f} "
            f"(95% CI {first.ci_low:.2f} to {first.ci_high:.2f}) over {first.n_trials} full-budget trials; early "
            "stopping there may discard good configurations. Raise --grace-period (or run with fewer, longer trials)."
        )
    return AshaFidelity(out, "" if out else "no rung's epoch is in epochs.csv", METHOD), warning


def stratified_tau(groups: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Kendall's tau over the pairs within each group: (concordant - discordant) / pairs; NaN with no pair.
    Ties in either score count as neither."""
    score = sum(int(pair_scores(x, y).sum()) for x, y in groups) // 2  # each pair counted from both ends
    pairs = sum(len(x) * (len(x) - 1) // 2 for x, _ in groups)
    return score / pairs if pairs else math.nan


# Elements of one block of the pair matrix (about 64 MB of float64): bounds the memory of a cell of any size.
_BLOCK = 8_000_000


def pair_scores(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per trial i: sum over the other trials j of sign(x_i - x_j) * sign(y_i - y_j), its concordant minus
    discordant pairs (ties count 0). Summed over i this counts every pair twice. O(n^2) time in blocks of rows,
    so O(n) memory."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    out = np.zeros(n, np.int64)
    rows = max(1, _BLOCK // max(n, 1))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        product = np.sign(x[start:stop, None] - x[None, :]) * np.sign(y[start:stop, None] - y[None, :])
        out[start:stop] = product.sum(axis=1).astype(np.int64)
    return out


def best_stopped(trials: pd.DataFrame, at: pd.DataFrame, rung: int, reduction_factor: float) -> tuple[int, int]:
    """(cells whose best full-budget trial scored below the rung's cutoff, cells judged)."""
    stopped = judged = 0
    for _, cell in trials.groupby("cell"):
        reached = cell[cell["epochs"] >= rung]
        scores = pd.Series(reached["trial_id"].map(at[rung]).to_numpy(float), index=reached["trial_id"]).dropna()
        full = cell[(cell["status"] == "completed") & (cell["epochs"] >= cell["max_epochs"])]
        if len(scores) < 2 or full.empty:
            continue
        best = full.loc[full["best_val_acc"].idxmax(), "trial_id"]
        if best not in scores.index:
            continue
        judged += 1
        # As Tune's ASHA: a trial below the (1 - 1/rf) quantile of the rung's recorded scores is stopped.
        cutoff = np.quantile(scores.to_numpy(), 1 - 1 / reduction_factor)
        stopped += int(scores[best] < cutoff)
    return stopped, judged


def reduction_factor_of(rungs: list[int]) -> float:
    """ASHA's reduction factor from its rungs' epochs (grace period x factor^k); 2 with a single rung,
    the study's budgets' smallest."""
    if len(rungs) >= 2:
        return float(math.exp(np.median(np.diff(np.log(rungs)))))
    return 2.0


def jackknife_interval(groups: list[tuple[np.ndarray, np.ndarray]], tau: float) -> tuple[float, float]:
    """A 95% t interval for the stratified tau from its delete-one jackknife standard error, within [-1, 1].

    Not a bootstrap: resampling trials with replacement duplicates them, and a duplicate's
    pairs are ties, which pull every resampled tau towards 0.
    """
    # Deleting trial i of group g removes exactly its own pairs: its score c_i from the sum and n_g - 1 from the
    # pair count. So every delete-one tau follows from one pass over the pairs (O(n^2), not O(n^3)), and it is the
    # same number the definition gives (tests/analysis/test_asha_fidelity.py checks it against the direct one).
    scores = [pair_scores(x, y) for x, y in groups]
    total = sum(int(c.sum()) for c in scores) // 2
    pairs = sum(len(x) * (len(x) - 1) // 2 for x, _ in groups)
    leave_one_out = []
    for c, (x, _) in zip(scores, groups):
        rest = pairs - (len(x) - 1)
        if rest > 0:
            leave_one_out.append((total - c) / rest)
    return interval_from_leave_one_out(tau, np.concatenate(leave_one_out) if leave_one_out else np.array([]))


def interval_from_leave_one_out(tau: float, values: np.ndarray) -> tuple[float, float]:
    """The 95% t interval of `tau` from its delete-one values' jackknife standard error, within [-1, 1]."""
    n = len(values)
    if n < 3 or not math.isfinite(tau):
        return math.nan, math.nan
    se = math.sqrt((n - 1) / n * float(((values - values.mean()) ** 2).sum()))
    iv = stats.interval_from_se(tau, se, n - 1)
    return max(-1.0, iv.low), min(1.0, iv.high)
