"""A simulated two-stage study with a known truth, for testing what the analysis concludes.

The real study (docs/concepts.md) runs in two stages:

1. the search: per cell, `samples_per_cell` trials with sampled nuisance values
   (lr, weight_decay), trained epoch by epoch and stopped early by an asynchronous
   ASHA that compares trials of one cell only (`study.tuning.cell_scheduler`);
2. the replicates: each cell's best completed trial is retrained on R seeds to the
   full budget, with no early stopping.

Here every cell has a `CellTruth`: the accuracy its best nuisance values reach (`peak`,
the quantity a study should rank), how accuracy falls off away from the best lr
(`curvature`, per decade squared), where training diverges (`diverge_lr`), and how much
one seed's result varies (`noise_sd`). A run's full-budget accuracy is
``true_accuracy(lr, wd) + seed_noise``, one seed-noise draw per run, and it learns along
a curve that rises towards that value, with small per-epoch noise on top. ASHA sees
those curves, so it prunes the trials that are behind *at a rung*, exactly as Ray's
rule does (`AshaBracket` copies it). The output tables have the columns of the real
`trials.csv` and `cv.csv` (docs/experiment-directory.md).

numpy and pandas only; a 12-cell study of 24 trials x 30 epochs takes about 0.1 s.
Everything is seeded: the same arguments give the same tables.

Not modelled: an adaptive sampler (Optuna's TPE would draw fewer diverging lrs after
the first ones), epoch times that differ between trials, and any dependence of the
seed noise on the nuisance values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from synthetic import cells as factor_cells

CHANCE_ACC = 0.10  # a diverged network predicts about one class in ten
DIVERGED_BELOW = 0.2  # the analysis' threshold: accuracy below 20% is divergence
LR_RANGE = (0.005, 0.3)
WD_RANGE = (1e-6, 1e-2)
FIXED = {"momentum": 0.9, "optimizer": "sgd", "schedule": "cosine", "batch_size": 256, "train_size": 54_000, "val_size": 6_000}
FACTOR_COLUMNS = ("model", "bn", "dropout", "order", "dropout_kind", "p_conv", "p_fc", "augment")
TRIAL_COLUMNS = (
    "trial_id", "cell", *FACTOR_COLUMNS, "lr", "weight_decay", "momentum", "optimizer", "schedule",
    "batch_size", "max_epochs", "train_size", "val_size", "seed", "status", "epochs", "train_loss", "train_acc",
    "val_loss", "val_acc", "gap", "epoch_s", "samples_per_s", "best_val_acc", "best_epoch", "error",
)
CV_COLUMNS = (
    "config_id", "trial_id", "cell", *FACTOR_COLUMNS, "lr", "weight_decay", "momentum", "optimizer", "schedule",
    "batch_size", "max_epochs", "train_size", "seed", "replicate", "replicate_kind", "fold", "status", "epochs",
    "train_loss", "train_acc", "train_eval_loss", "val_loss", "val_acc", "gap", "n_train", "n_val", "error",
)
EPOCH_COLUMNS = ("trial_id", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "gap", "lr", "epoch_s", "samples_per_s")


# --------------------------------------------------------------------------- truth


@dataclass(frozen=True)
class CellTruth:
    """What one cell really does. Accuracies are fractions; lr and wd are base values."""

    cell: str
    factors: dict
    peak: float  # full-budget accuracy at (best_lr, best_wd), before seed noise: the tuned best
    noise_sd: float = 0.003  # sd of one run's seed noise (persists through training)
    best_lr: float = 0.05
    curvature: float = 0.001  # accuracy lost per decade^2 of log10(lr) away from best_lr
    diverge_lr: float = 0.6  # runs with lr above this diverge
    divergence_width: float = 0.03  # decades: P(diverge) is logistic in log10(lr); 0 = a sharp step
    nan_share: float = 0.3  # share of diverged runs whose loss turns NaN (they stop at once)
    best_wd: float = 1e-4
    wd_curvature: float = 0.0002  # accuracy lost per decade^2 of log10(wd) away from best_wd
    tau: float = 3.0  # epochs: time constant of the learning curve (BN learns faster)
    epoch_sd: float = 0.0005  # per-epoch noise around the curve

    def accuracy(self, lr, wd):
        """The noise-free full-budget accuracy at these nuisance values (ignores divergence)."""
        dl = np.log10(lr) - math.log10(self.best_lr)
        dw = np.log10(wd) - math.log10(self.best_wd)
        return self.peak - self.curvature * dl**2 - self.wd_curvature * dw**2

    def p_diverge(self, lr):
        """Probability that a run at this lr diverges."""
        x = np.log10(np.asarray(lr, dtype=float)) - math.log10(self.diverge_lr)
        if self.divergence_width == 0:
            return (x > 0).astype(float)
        return 1.0 / (1.0 + np.exp(-x / self.divergence_width))


@dataclass(frozen=True)
class Truth:
    """Every cell's truth, and the nuisance ranges the search samples from."""

    cells: tuple[CellTruth, ...]
    lr_range: tuple[float, float] = LR_RANGE
    wd_range: tuple[float, float] = WD_RANGE

    def __post_init__(self):
        names = [c.cell for c in self.cells]
        if len(set(names)) != len(names):
            raise ValueError(f"cell names must be unique, got {names}")

    def cell(self, name: str) -> CellTruth:
        for c in self.cells:
            if c.cell == name:
                return c
        raise KeyError(f"no cell {name!r}; cells are {[c.cell for c in self.cells]}")

    @property
    def names(self) -> list[str]:
        return [c.cell for c in self.cells]

    def peaks(self) -> dict[str, float]:
        """The tuned best of each cell: what a study's ranking should recover."""
        return {c.cell: c.peak for c in self.cells}

    def diverged_share(self) -> dict[str, float]:
        """Expected share of a cell's search draws that diverge (lr log-uniform in `lr_range`)."""
        grid = np.logspace(*np.log10(self.lr_range), 2001)
        return {c.cell: float(np.mean(c.p_diverge(grid))) for c in self.cells}


Spec = float | Mapping[str, float] | Callable[[dict], float] | None


def _value(spec: Spec, factors: dict, default: float) -> float:
    """A per-cell value from a number, a {cell: value} mapping, or a function of the factors."""
    if spec is None:
        return default
    if callable(spec):
        return float(spec(factors))
    if isinstance(spec, Mapping):
        return float(spec.get(factors["cell"], default))
    return float(spec)


def null_truth(
    *,
    peak: float = 0.91,
    noise_by_cell: Spec = None,
    best_lr_by_cell: Spec = None,
    diverge_lr_by_cell: Spec = None,
    curvature: float = 0.0005,
    wd_curvature: float = 0.00005,
    **cell_kwargs,
) -> Truth:
    """Every cell reaches the same `peak` when tuned: nothing to find.

    The cells still differ in everything that is *not* the estimand, as real ones do:
    by default cells without BN want a smaller lr (0.03 vs 0.1), diverge above 0.12 (about
    a fifth of the search range) instead of beyond it, and learn more slowly; dropout
    slows learning too. `noise_by_cell` gives unequal seed noise (number, {cell: sd} or
    a function of the factors dict).

    The lr and wd responses are flat (`curvature` 0.0005 per decade^2 of lr, under
    0.1 pp over the range; `wd_curvature` 0.00005, at most 0.02 pp): stage 2 tests
    equal true accuracy *at the selected configurations*, and a cell's selection misses
    its peak by a random amount; here that miss varies by about 0.01 pp between cells, a
    tenth of the smallest replicate-mean standard error the tests use, so the stage-2
    null is the null of equal peaks. (With a sharp response and noisy selection the
    misses differ by a fraction of the seed noise, and equal peaks would not mean equal
    selected configurations.)
    """
    out = []
    for f in factor_cells():
        no_bn = f["bn"] == "none"
        out.append(CellTruth(
            cell=f["cell"],
            factors={k: f.get(k, "bernoulli") for k in FACTOR_COLUMNS},  # dropout_kind: Bernoulli
            peak=peak,
            noise_sd=_value(noise_by_cell, f, 0.003),
            best_lr=_value(best_lr_by_cell, f, 0.03 if no_bn else 0.1),
            diverge_lr=_value(diverge_lr_by_cell, f, 0.12 if no_bn else 0.6),
            curvature=curvature,
            wd_curvature=wd_curvature,
            tau=(3.0 if no_bn else 2.0) + (1.0 if f["dropout"] != "none" else 0.0),
            **cell_kwargs,
        ))
    return Truth(tuple(out))


def planted_truth(
    delta: float = 0.02,
    *,
    cell: str | None = None,
    factor: str | None = None,
    value=None,
    **null_kwargs,
) -> Truth:
    """`null_truth` with one cell (``cell=...``), or every cell with one factor value
    (``factor="bn", value="pre_act"``: an additive main effect), better by `delta`."""
    if (cell is None) == (factor is None):
        raise ValueError(f"give either cell or factor (with value), got cell={cell!r}, factor={factor!r}")
    base = null_truth(**null_kwargs)
    if cell is not None:
        base.cell(cell)  # raises for an unknown cell
        hit = lambda c: c.cell == cell  # noqa: E731
    else:
        if not any(c.factors.get(factor) == value for c in base.cells):
            raise ValueError(f"no cell has {factor}={value!r}")
        hit = lambda c: c.factors.get(factor) == value  # noqa: E731
    return Truth(tuple(replace(c, peak=c.peak + delta) if hit(c) else c for c in base.cells))


FRAGILE_CELL = "bn=none,dropout=all"


def fragile_best_truth(
    margin: float = 0.02,
    *,
    cell: str = FRAGILE_CELL,
    best_lr: float = 0.007,
    diverge_lr: float = 0.01,
    curvature: float = 0.2,
    nan_share: float = 0.15,
    **null_kwargs,
) -> Truth:
    """The best placement when tuned is the worst on average over the search (most seeds).

    `cell` (bn=none with Dropout everywhere, as the post's experiment 5) is `margin`
    better than every other cell at its best lr (0.007), but it diverges above 0.01:
    about 83% of the search range [0.005, 0.3] (the other cells: none with BN, 22% without).
    A collapsed network scores exactly 10% at every epoch, so diverged trials tie at a
    rung, and ASHA lets ties continue: once two thirds of a rung's values are 10%, its
    cutoff is 10% and diverged trials train on, often to the full budget (the first
    trial always does). The mean over the cell's full-budget search trials is then the
    lowest of all cells unless its first trials happened not to diverge (about one seed
    in five, when the mean is the highest instead); its tuned best, retrained on seeds,
    is the best cell by about `margin`. `nan_share` of its diverged runs end in a NaN
    loss (those stop at once and never reach the full budget).
    """
    base = null_truth(**null_kwargs)
    base.cell(cell)
    return Truth(tuple(
        replace(c, peak=c.peak + margin, best_lr=best_lr, diverge_lr=diverge_lr, curvature=curvature, nan_share=nan_share)
        if c.cell == cell else c
        for c in base.cells
    ))


# --------------------------------------------------------------------------- ASHA


def asha_rungs(grace_period: float, max_t: int, reduction_factor: float) -> list[float]:
    """Ray's rung milestones (one bracket, s = 0), lowest first: g, g*rf, ... (Ray's count)."""
    n = int(np.log(max_t / grace_period) / np.log(reduction_factor) + 1)  # as _Bracket.__init__
    return [grace_period * reduction_factor**k for k in range(n)]


class AshaBracket:
    """Ray Tune's asynchronous successive halving rule (`ray.tune.schedulers.async_hyperband._Bracket`,
    one bracket, `stop_last_trials=True`), for a metric to maximise.

    A result at epoch t is judged at the highest rung milestone <= t that the trial has
    not reported at yet (so at t == milestone for integer rungs): the cutoff is
    ``np.nanpercentile(values recorded at that rung so far, (1 - 1/rf) * 100)`` (linear
    interpolation), computed *before* the trial's value is added; the trial stops if its
    value is strictly below the cutoff (ties continue), the first trial at a rung always
    continues (no cutoff yet), and its value is recorded whether it continues or stops.
    Results at t >= max_t are never judged: the trial is complete (Ray stops it first).
    """

    def __init__(self, grace_period: float, max_t: int, reduction_factor: float):
        self.rf = float(reduction_factor)
        self.max_t = max_t
        # Highest first, as Ray keeps them.
        self.rungs: list[tuple[float, dict]] = [(m, {}) for m in reversed(asha_rungs(grace_period, max_t, reduction_factor))]

    def cutoff(self, recorded: dict) -> float | None:
        if not recorded:
            return None
        return float(np.nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100))

    def on_result(self, trial_id, t: float, value: float) -> bool:
        """True to continue the trial, False to stop it."""
        if t >= self.max_t:
            return False
        for milestone, recorded in self.rungs:
            if t < milestone or trial_id in recorded:
                continue
            cut = self.cutoff(recorded)
            stop = cut is not None and value < cut
            recorded[trial_id] = value
            return not stop
        return True


# --------------------------------------------------------------------------- one run


@dataclass
class Run:
    """One training run's per-epoch curve, before any early stopping."""

    val_acc: np.ndarray  # [max_epochs]
    val_loss: np.ndarray
    train_loss: np.ndarray
    train_eval_loss: np.ndarray
    train_acc: np.ndarray
    diverged: bool
    nan_epoch: int | None  # epoch (1-based) at which the loss became NaN; the run stops there
    final_true: float  # true accuracy at the config + this run's seed noise (NaN if diverged)

    @property
    def length(self) -> int:
        """Epochs the run trains if nothing stops it early."""
        return self.nan_epoch if self.nan_epoch is not None else len(self.val_acc)


def simulate_run(truth: CellTruth, lr: float, wd: float, max_epochs: int, rng: np.random.Generator) -> Run:
    """Train one (lr, wd) run of this cell for up to `max_epochs` epochs.

    Not diverged: ``val_acc[t] = final - rise * (exp(-t/tau) - exp(-T/tau)) + e_t`` with
    ``final = accuracy(lr, wd) + seed noise``, so epoch T sits at `final` (up to e_t).
    Diverged: accuracy exactly 0.10 from the first epoch, loss about ln 10; with
    probability `nan_share` the loss turns NaN at epoch 1 to 3 and the run stops.
    """
    t = np.arange(1, max_epochs + 1, dtype=float)
    has_dropout = truth.factors.get("dropout", "none") != "none"
    diverged = bool(rng.random() < float(truth.p_diverge(lr)))
    seed_noise = rng.normal(0.0, truth.noise_sd)
    eps = rng.normal(0.0, truth.epoch_sd, max_epochs)
    nan_epoch = None
    if diverged:
        # A collapsed network predicts one class: exactly 10% of the stratified validation
        # split, every epoch (so diverged trials tie at ASHA's rungs, and ties continue).
        acc = np.full(max_epochs, CHANCE_ACC)
        val_loss = math.log(10) + rng.uniform(0.0, 0.3, max_epochs)
        train_eval_loss = val_loss - 0.01
        if rng.random() < truth.nan_share:
            nan_epoch = int(rng.integers(1, min(3, max_epochs) + 1))
            val_loss[nan_epoch - 1] = np.nan
            train_eval_loss[nan_epoch - 1] = np.nan
        final = math.nan
    else:
        final = float(truth.accuracy(lr, wd)) + seed_noise
        rise = 0.12
        acc = np.clip(final - rise * (np.exp(-t / truth.tau) - math.exp(-max_epochs / truth.tau)) + eps, 0.0, 1.0)
        # Plausible losses (no test relies on their values): validation loss falls with
        # accuracy; the generalisation gap grows with training, more without Dropout.
        val_loss = 0.25 + (math.log(10) - 0.25) * (1.0 - acc) / (1.0 - CHANCE_ACC)
        gap = (0.03 + 0.12 * t / max_epochs) * (0.6 if has_dropout else 1.0)
        train_eval_loss = val_loss - gap
    train_loss = train_eval_loss + (0.06 if has_dropout else 0.0)  # train mode: Dropout on
    train_acc = np.clip(acc + (0.01 if has_dropout else 0.03), 0.0, 1.0)
    return Run(acc, val_loss, train_loss, train_eval_loss, train_acc, diverged, nan_epoch, final)


def _summary(run: Run, epochs: int) -> dict:
    """The trials.csv / cv.csv metric columns of a run stopped after `epochs` epochs."""
    if epochs == 0:
        nan = math.nan
        return dict(epochs=0, train_loss=nan, train_acc=nan, train_eval_loss=nan, val_loss=nan, val_acc=nan,
                    gap=nan, best_val_acc=nan, best_epoch=0)
    i = epochs - 1
    acc = run.val_acc[:epochs]
    best = int(np.argmax(acc))
    return dict(
        epochs=epochs, train_loss=float(run.train_loss[i]), train_acc=float(run.train_acc[i]),
        train_eval_loss=float(run.train_eval_loss[i]), val_loss=float(run.val_loss[i]), val_acc=float(acc[i]),
        gap=float(run.val_loss[i] - run.train_eval_loss[i]), best_val_acc=float(acc[best]), best_epoch=best + 1,
    )


def _status(run: Run, epochs: int, max_epochs: int, errored: bool) -> str:
    if errored:
        return "error"
    last = _summary(run, epochs)
    if run.nan_epoch is not None or not math.isfinite(last["val_loss"]) or last["best_val_acc"] < DIVERGED_BELOW:
        return "diverged"
    return "completed" if epochs >= max_epochs else "pruned"


# --------------------------------------------------------------------------- stage 1


def stratified_draws(n: int, ranges: list[tuple[float, float]], rng: np.random.Generator) -> np.ndarray:
    """A Latin hypercube of n points, log-uniform inside each range, in random order: [n, len(ranges)].

    Every one of the n equal-width slices of each log-range holds exactly one draw (a
    simple low-discrepancy design, as a quasi-random sampler's start would give).
    """
    out = np.empty((n, len(ranges)))
    for j, (lo, hi) in enumerate(ranges):
        u = (rng.permutation(n) + rng.random(n)) / n
        out[:, j] = 10 ** (math.log10(lo) + u * (math.log10(hi) - math.log10(lo)))
    return out


def simulate_search(
    truth: Truth,
    *,
    samples_per_cell: int,
    max_epochs: int,
    grace_period: int,
    reduction_factor: float,
    seed: int,
    error_rate: float = 0.0,
    sampler: str = "stratified",
    interleave: bool = True,
    return_epochs: bool = False,
):
    """Stage 1: the trials table (and, with `return_epochs`, the epochs table).

    Per cell, trials start in order and report every epoch to the cell's own
    `AshaBracket` (see `_asha_cell` for why the order is all that matters). A diverged run whose
    loss turned NaN stops at that epoch; one that stays finite at ~10% trains on until
    ASHA stops it or it completes; either way its status is "diverged". With probability
    `error_rate` a trial raises at a random epoch (status "error"). `sampler` is
    "stratified" (`stratified_draws`) or "random" (independent log-uniform draws).
    `interleave` numbers the trials round-robin across cells (as concurrent cells
    arrive), else cell by cell; ASHA is per cell, so only the trial ids change.
    """
    if samples_per_cell < 1 or max_epochs < 1 or not 1 <= grace_period <= max_epochs or reduction_factor <= 1:
        raise ValueError(
            f"need samples_per_cell >= 1, max_epochs >= 1, 1 <= grace_period <= max_epochs, reduction_factor > 1; got "
            f"{samples_per_cell}, {max_epochs}, {grace_period}, {reduction_factor}"
        )
    if sampler not in ("stratified", "random"):
        raise ValueError(f"sampler must be 'stratified' or 'random', got {sampler!r}")
    n_cells = len(truth.cells)
    streams = np.random.SeedSequence([seed, 1]).spawn(n_cells)
    rows, epoch_rows = [], []
    for c, (cell, stream) in enumerate(zip(truth.cells, streams)):
        rng = np.random.default_rng(stream)
        ranges = [truth.lr_range, truth.wd_range]
        if sampler == "stratified":
            draws = stratified_draws(samples_per_cell, ranges, rng)
        else:
            draws = 10 ** rng.uniform(np.log10([r[0] for r in ranges]), np.log10([r[1] for r in ranges]), (samples_per_cell, 2))
        ids = [
            f"t{(k * n_cells + c) if interleave else (c * samples_per_cell + k):05d}" for k in range(samples_per_cell)
        ]
        runs = [simulate_run(cell, draws[k, 0], draws[k, 1], max_epochs, rng) for k in range(samples_per_cell)]
        error_at = [
            int(rng.integers(0, max_epochs)) if rng.random() < error_rate else None for _ in range(samples_per_cell)
        ]
        trained = _asha_cell(runs, error_at, ids, max_epochs, grace_period, reduction_factor)
        seeds = rng.integers(0, 2**31 - 1, samples_per_cell)
        for k in range(samples_per_cell):
            run, (epochs, stopped) = runs[k], trained[k]
            errored = not stopped and error_at[k] is not None and error_at[k] < run.length
            s = _summary(run, epochs)
            s.pop("train_eval_loss")
            rows.append({
                "trial_id": ids[k], "cell": cell.cell, **cell.factors,
                "lr": float(draws[k, 0]), "weight_decay": float(draws[k, 1]),
                "momentum": FIXED["momentum"], "optimizer": FIXED["optimizer"], "schedule": FIXED["schedule"],
                "batch_size": FIXED["batch_size"], "max_epochs": max_epochs, "train_size": FIXED["train_size"],
                "val_size": FIXED["val_size"], "seed": int(seeds[k]),
                "status": _status(run, epochs, max_epochs, errored), **s,
                "epoch_s": 5.0, "samples_per_s": FIXED["train_size"] / 5.0,
                "error": "RuntimeError: simulated failure" if errored else "",
            })
            if return_epochs:
                for e in range(epochs):
                    epoch_rows.append({
                        "trial_id": ids[k], "epoch": e + 1, "train_loss": float(run.train_loss[e]),
                        "train_acc": float(run.train_acc[e]), "val_loss": float(run.val_loss[e]),
                        "val_acc": float(run.val_acc[e]), "gap": float(run.val_loss[e] - run.train_eval_loss[e]),
                        "lr": float(draws[k, 0]) * 0.5 * (1 + math.cos(math.pi * e / max_epochs)),
                        "epoch_s": 5.0, "samples_per_s": FIXED["train_size"] / 5.0,
                    })
    trials = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS)).sort_values("trial_id", ignore_index=True)
    trials["epochs"] = trials["epochs"].astype(int)
    if return_epochs:
        return trials, pd.DataFrame(epoch_rows, columns=list(EPOCH_COLUMNS))
    return trials


def _asha_cell(runs, error_at, ids, max_epochs, grace_period, reduction_factor) -> list[tuple[int, bool]]:
    """(epochs trained, stopped by ASHA) for each run of one cell, in start order, under the cell's own ASHA.

    Every reported epoch goes to the bracket, as Tune sends every result. Runs take
    one after another here; with concurrent workers and equal epoch times, runs still
    reach every rung in start order (a run never starts before an earlier one), so the
    bracket sees the same values in the same order and decides the same.
    """
    bracket = AshaBracket(grace_period, max_epochs, reduction_factor)
    out = []
    for run, err, trial_id in zip(runs, error_at, ids):
        # Epochs reported if nothing stops it: up to a NaN loss (that epoch is reported),
        # the epochs before an error, or the full budget (a result at max_t is never judged).
        end = run.length if err is None else min(run.length, err)
        stopped_at = next(
            (e for e in range(1, min(end, max_epochs - 1) + 1) if not bracket.on_result(trial_id, e, float(run.val_acc[e - 1]))),
            None,
        )
        out.append((end, False) if stopped_at is None else (stopped_at, True))
    return out


# --------------------------------------------------------------------------- stage 2


def pick_best(trials: pd.DataFrame) -> pd.DataFrame:
    """Each cell's best completed trial by best_val_acc, ties to the smaller trial_id."""
    done = trials[trials["status"] == "completed"]
    ordered = done.sort_values(["cell", "best_val_acc", "trial_id"], ascending=[True, False, True])
    return ordered.drop_duplicates("cell", keep="first").reset_index(drop=True)


def simulate_replicates(truth: Truth, configs: pd.DataFrame, *, replicates: int, seed: int, error_rate: float = 0.0) -> pd.DataFrame:
    """Stage 2: retrain each configuration (a trials row) on `replicates` seeds, full budget.

    Replicate r of a configuration has seed ``its trial's seed + 1 + r`` (never the
    search trial's own seed) and an independent seed-noise draw: its final val_acc is
    ``accuracy(lr, wd) + seed noise`` (+ the last epoch's noise), unless the run
    diverges (possible where P(diverge) at that lr is not 0). No early stopping.
    """
    rows = []
    for _, rec in configs.iterrows():
        cell = truth.cell(rec["cell"])
        rng = np.random.default_rng(np.random.SeedSequence([seed, 2, int(rec["seed"]) % (2**31)]))
        max_epochs = int(rec["max_epochs"])
        for r in range(replicates):
            run = simulate_run(cell, float(rec["lr"]), float(rec["weight_decay"]), max_epochs, rng)
            errored = rng.random() < error_rate
            epochs = int(rng.integers(0, max_epochs)) if errored else run.length
            s = _summary(run, epochs)
            status = _status(run, epochs, max_epochs, errored)
            rows.append({
                "config_id": rec["trial_id"], "trial_id": rec["trial_id"], "cell": rec["cell"],
                **{f: rec[f] for f in FACTOR_COLUMNS},
                **{k: rec[k] for k in ("lr", "weight_decay", "momentum", "optimizer", "schedule", "batch_size", "max_epochs", "train_size")},
                "seed": int(rec["seed"]) + 1 + r, "replicate": r, "replicate_kind": "seed", "fold": np.nan,
                "status": status, "epochs": epochs,
                **{k: s[k] for k in ("train_loss", "train_acc", "train_eval_loss", "val_loss", "val_acc", "gap")},
                "n_train": int(rec["train_size"]), "n_val": int(rec["val_size"]),
                "error": "RuntimeError: simulated failure" if errored else "",
            })
    cv = pd.DataFrame(rows, columns=list(CV_COLUMNS))
    cv["epochs"] = cv["epochs"].astype(int)
    return cv


def simulate_study(
    truth: Truth,
    *,
    samples_per_cell: int,
    max_epochs: int,
    grace_period: int,
    reduction_factor: float,
    replicates: int,
    seed: int,
    **search_kwargs,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both stages: (trials, cv). `search_kwargs` go to `simulate_search` (error_rate, sampler, ...)."""
    trials = simulate_search(
        truth, samples_per_cell=samples_per_cell, max_epochs=max_epochs, grace_period=grace_period,
        reduction_factor=reduction_factor, seed=seed, **search_kwargs,
    )
    cv = simulate_replicates(truth, pick_best(trials), replicates=replicates, seed=seed)
    return trials, cv


# Budgets of the tests: "full" as study.tuning.budgets' full preset (24 trials, 30 epochs,
# grace 3, rf 3: rungs at 3, 9, 27), "small" for many fast repetitions (rungs at 2, 6).
FULL = dict(samples_per_cell=24, max_epochs=30, grace_period=3, reduction_factor=3)
SMALL = dict(samples_per_cell=12, max_epochs=12, grace_period=2, reduction_factor=3)
