"""`study analyze` at scale: a study of 100,000 search trials in 12 cells, timed, with its peak memory.

    python -m benchmarks.analysis_scale                  # 100,000 trials (about a minute with the tables' writing)
    python -m benchmarks.analysis_scale --trials 3000 20000 100000

Needs numpy, pandas and the analysis' own packages only (no PyTorch, no Ray). Each table is the shape `study run`
writes (docs/experiment-directory.md): trials.csv with every column, epochs.csv with one row per trial and
epoch, cv.csv with 3 seeds of each cell's best trial, and study.json's scheduler settings. The search is the full
budget's: 30 epochs, ASHA with grace period 3 and reduction factor 3 (rungs at 3, 9 and 27), so about one trial in
nine trains the full budget, the trials the ASHA-fidelity jackknife works on. `--quick-shape` uses the quick
budget's instead (4 epochs, one rung at 2: half the trials are full-budget, the jackknife's worst case).

Each size runs `study analyze` in a fresh process (its time includes reading the tables and writing plots and
report), and the child's peak resident memory is read from the kernel. The baseline, in the same run: the
delete-one jackknife by its definition (each trial removed and tau recounted, O(n^3)), which is what the analysis
ran before, against the one the analysis runs now, on small tables where both finish; the two intervals must agree
to 1e-12.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.fidelity import interval_from_leave_one_out, jackknife_interval, stratified_tau
from study.vocabulary.machine import cpu_name

GOAL_S, GOAL_MB = 60.0, 2048.0  # the bound for 100,000 trials on 2 cores
FULL_SHAPE = dict(max_epochs=30, grace_period=3, reduction_factor=3)
QUICK_SHAPE = dict(max_epochs=4, grace_period=2, reduction_factor=2)
BN = ("none", "pre_act", "post_act")
DROPOUT = ("none", "fc", "conv", "all")


def jackknife_by_definition(groups, tau: float) -> tuple[float, float]:
    """The delete-one jackknife interval computed as defined: every trial removed in turn and the stratified tau
    counted again over all pairs (what `analysis.fidelity` did before; O(n^3)). The reference of the fast one."""
    leave_one_out = []
    for g, (x, y) in enumerate(groups):
        for i in range(len(x)):
            rest = [(np.delete(x, i), np.delete(y, i)) if h == g else other for h, other in enumerate(groups)]
            leave_one_out.append(_tau_by_pairs(rest))
    return interval_from_leave_one_out(tau, np.array([v for v in leave_one_out if math.isfinite(v)]))


def _tau_by_pairs(groups) -> float:
    """Stratified Kendall tau from the full sign matrices (the definition, as the analysis had it)."""
    concordant = discordant = pairs = 0
    for x, y in groups:
        if len(x) < 2:
            continue
        product = (np.sign(x[:, None] - x[None, :]) * np.sign(y[:, None] - y[None, :]))[np.triu_indices(len(x), k=1)]
        concordant += int((product > 0).sum())
        discordant += int((product < 0).sum())
        pairs += len(product)
    return (concordant - discordant) / pairs if pairs else math.nan


def fidelity_groups(cells: int, per_cell: int, seed: int = 0, ties: bool = True):
    """(early, final) score pairs per cell, correlated about 0.7, rounded as accuracies on 6,000 images are
    (so ties occur, as in real tables) unless `ties` is False."""
    rng = np.random.default_rng(seed)
    out = []
    for c in range(cells):
        final = rng.normal(0.9 + 0.002 * c, 0.01, per_cell)
        early = 0.7 * (final - final.mean()) + rng.normal(0.8, 0.007, per_cell)
        if ties:
            final, early = np.round(final * 6000) / 6000, np.round(early * 6000) / 6000
        out.append((early, final))
    return out


# --------------------------------------------------------------------------- tables


def write_study(folder: Path, n_trials: int, *, cells: int = 12, seed: int = 0, shape: dict = FULL_SHAPE) -> Path:
    """An experiment directory of `n_trials` search trials in `cells` cells (the bn x dropout factorial of the
    medium model, 12 cells), with epochs.csv, cv.csv and study.json. Vectorised: 100,000 trials in a few seconds."""
    rng = np.random.default_rng(seed)
    max_epochs, grace, rf = shape["max_epochs"], shape["grace_period"], shape["reduction_factor"]
    grid = [(b, d) for b in BN for d in DROPOUT][:cells]
    cell_of = np.arange(n_trials) % len(grid)  # trials arrive round-robin over the cells, as concurrent cells do
    bn = np.array([grid[c][0] for c in cell_of])
    dropout = np.array([grid[c][1] for c in cell_of])
    conv = np.isin(dropout, ("conv", "all"))
    fc = np.isin(dropout, ("fc", "all"))
    lr = 10 ** rng.uniform(-3, math.log10(0.3), n_trials)
    wd = 10 ** rng.uniform(-6, -2, n_trials)
    p_conv = np.where(conv, rng.uniform(0.05, 0.5, n_trials), 0.0)
    p_fc = np.where(fc, rng.uniform(0.1, 0.6, n_trials), 0.0)
    best_lr = np.where(bn == "none", 0.03, 0.1)
    peak = 0.91 + 0.002 * (cell_of % 4) + 0.001 * (bn != "none")
    final = peak - 0.02 * (np.log10(lr / best_lr)) ** 2 - 0.01 * (p_conv + p_fc) ** 2 + rng.normal(0, 0.004, n_trials)
    diverged = lr > np.where(bn == "none", 0.12, 0.6) * rng.uniform(0.8, 1.2, n_trials)
    final = np.where(diverged, 0.1, final)
    tau = np.where(bn == "none", 3.0, 2.0) + np.where(dropout != "none", 1.0, 0.0)
    epoch_axis = np.arange(1, max_epochs + 1)
    curve = final[:, None] - (final[:, None] - 0.7) * np.exp(-(epoch_axis[None, :] - 1) / tau[:, None])
    curve = curve + rng.normal(0, 0.003, curve.shape)
    curve = np.where(diverged[:, None], 0.1 + rng.normal(0, 0.005, curve.shape), curve)
    curve = np.round(np.clip(curve, 0, 1) * 6000) / 6000  # accuracies on 6,000 validation images

    # ASHA per cell, rung by rung: a trial goes on past a rung when its score there is in the best 1/rf of its
    # cell's scores at that rung (synchronous halving: the shape of the tables is what matters here).
    epochs = np.full(n_trials, max_epochs)
    rung = grace
    while rung < max_epochs:
        alive = epochs > rung
        for c in range(len(grid)):
            members = np.flatnonzero(alive & (cell_of == c))
            if len(members) < 2:
                continue
            cutoff = np.quantile(curve[members, rung - 1], 1 - 1 / rf)
            stopped = members[curve[members, rung - 1] < cutoff]
            epochs[stopped] = rung
        rung = int(rung * rf)
    errored = rng.random(n_trials) < 0.003
    epochs = np.where(errored, rng.integers(1, max_epochs + 1, n_trials), epochs)
    status = np.where(errored, "error", np.where(diverged, "diverged", np.where(epochs >= max_epochs, "completed",
                                                                                   "pruned")))
    row = np.arange(n_trials)
    last = curve[row, epochs - 1]
    best_epoch = np.array([int(np.argmax(curve[i, :e])) + 1 for i, e in enumerate(epochs)])
    best = curve[row, best_epoch - 1]
    ids = np.array([f"{i:06d}" for i in range(n_trials)], dtype=object)
    cell_names = np.array([f"bn={b},dropout={d}" for b, d in grid], dtype=object)[cell_of]
    val_loss = 2.3 * (1 - last) + rng.normal(0, 0.01, n_trials)
    train_eval_loss = val_loss - 0.05
    var_shift = np.where(bn == "none", np.nan, 1 + 0.3 * p_conv + rng.exponential(0.02, n_trials))
    trials = pd.DataFrame({
        "trial_id": ids, "cell": cell_names, "model": "medium", "bn": bn, "dropout": dropout, "order": "bn_first",
        "dropout_kind": "bernoulli", "p_conv": p_conv, "p_fc": p_fc, "augment": False,
        "lr": lr, "weight_decay": wd, "momentum": 0.9, "optimizer": "sgd", "schedule": "cosine",
        "batch_size": 256, "max_epochs": max_epochs, "train_size": 54_000, "val_size": 6_000,
        "seed": rng.integers(0, 2**31 - 1, n_trials), "precision": "fp32", "status": status, "epochs": epochs,
        "train_loss": val_loss + 0.02, "train_acc": last - 0.01, "train_eval_loss": train_eval_loss,
        "train_eval_acc": last + 0.01, "val_loss": val_loss, "val_acc": last, "gap": val_loss - train_eval_loss,
        "ece": rng.uniform(0.005, 0.03, n_trials), "conf_wrong": rng.uniform(0.5, 0.7, n_trials),
        "var_shift_max": var_shift, "var_shift_mean": var_shift - 0.01,
        "val_acc_bn_reestimated": np.where((bn != "none") & (status == "completed"), last + 0.001, np.nan),
        "epoch_s": 5.0, "samples_per_s": 10_800.0, "best_val_acc": best, "best_epoch": best_epoch,
        "error": np.where(errored, "RuntimeError: CUDA error: an illegal memory access was encountered", ""),
    })
    # epochs.csv: one row per trial and epoch trained.
    trial_of = np.repeat(row, epochs)
    epoch_of = np.concatenate([np.arange(1, e + 1) for e in epochs])
    acc = curve[trial_of, epoch_of - 1]
    e_loss = 2.3 * (1 - acc)
    epochs_table = pd.DataFrame({
        "trial_id": ids[trial_of], "epoch": epoch_of, "train_loss": e_loss + 0.02, "train_acc": acc - 0.01,
        "train_eval_loss": e_loss - 0.05, "train_eval_acc": acc + 0.01, "val_loss": e_loss, "val_acc": acc,
        "gap": 0.05, "ece": 0.01, "conf_wrong": 0.6, "var_shift_max": var_shift[trial_of],
        "var_shift_mean": var_shift[trial_of] - 0.01, "var_shift_bn0": var_shift[trial_of],
        "var_shift_bn1": var_shift[trial_of] - 0.02, "lr": lr[trial_of], "epoch_s": 5.0, "samples_per_s": 10_800.0,
    })
    # cv.csv: each cell's best completed trial on 3 seeds.
    done = trials[trials["status"] == "completed"].sort_values("best_val_acc", ascending=False)
    picks = done.drop_duplicates("cell")
    cv = picks.loc[picks.index.repeat(3)].reset_index(drop=True)
    cv.insert(0, "config_id", cv["trial_id"])
    cv["replicate"] = np.tile(np.arange(3), len(picks))
    cv["replicate_kind"], cv["fold"] = "seed", np.nan
    cv["seed"] = cv["seed"] + 1 + cv["replicate"]
    cv["val_acc"] = cv["best_val_acc"] - 0.003 + rng.normal(0, 0.002, len(cv))
    cv["n_train"], cv["n_val"] = 54_000, 6_000
    cv = cv.drop(columns=["best_val_acc", "best_epoch", "val_size", "samples_per_s"])
    folder.mkdir(parents=True, exist_ok=True)
    trials.to_csv(folder / "trials.csv", index=False)
    epochs_table.to_csv(folder / "epochs.csv", index=False)
    cv.to_csv(folder / "cv.csv", index=False)
    (folder / "study.json").write_text(json.dumps({
        "space": {"nuisance": {"lr": {"low": 1e-3, "high": 0.3, "log": True},
                               "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True}}},
        "plan": {"scheduler": {"reduction_factor": rf, "grace_period": grace, "max_t": max_epochs}},
    }))
    return folder


# --------------------------------------------------------------------------- timing


def time_analyze(folder: Path) -> tuple[float, float, int]:
    """(wall seconds, peak resident MB, exit code) of `study analyze folder` in a fresh process."""
    code = ("import sys, resource, time; from study.cli import main; t = time.perf_counter(); rc = main(['analyze', "
            f"{str(folder)!r}]); print('ANALYZE', time.perf_counter() - t, "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("ANALYZE")]
    if done.returncode != 0 or not line:
        raise RuntimeError(f"study analyze {folder} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    _, seconds, rss_kb, rc = line[-1].split()
    return float(seconds), int(rss_kb) / 1024, int(rc) if rc != "None" else 0


def time_jackknife(per_cell: int, cells: int = 12, repeats: int = 1) -> dict:
    """The jackknife by definition against the analysis' own, on the same small groups."""
    groups = fidelity_groups(cells, per_cell)
    tau = stratified_tau(groups)
    out = {}
    for name, method in (("definition", jackknife_by_definition), ("analysis", jackknife_interval)):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            interval = method(groups, tau)
            times.append(time.perf_counter() - start)
        out[name] = (min(times), interval)
    gap = max(abs(a - b) for a, b in zip(out["definition"][1], out["analysis"][1]))
    return {"trials": cells * per_cell, "definition_s": out["definition"][0], "analysis_s": out["analysis"][0],
            "speedup": out["definition"][0] / out["analysis"][0], "max_difference": gap}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.analysis_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100_000], help="study sizes (search trials)")
    parser.add_argument("--quick-shape", action="store_true", help="the quick budget's rungs: half the trials full")
    parser.add_argument("--baseline-sizes", type=int, nargs="+", default=[20, 50, 100],
                        help="full-budget trials per cell (12 cells) for the jackknife baseline")
    args = parser.parse_args(argv)
    shape = QUICK_SHAPE if args.quick_shape else FULL_SHAPE
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the start")
    print("\nBaseline in this run: the delete-one jackknife by its definition against the analysis' own")
    print(f"{'trials':>8} {'definition s':>13} {'analysis s':>11} {'speedup':>9} {'max |diff|':>11}")
    for per_cell in args.baseline_sizes:
        r = time_jackknife(per_cell)
        print(f"{r['trials']:>8} {r['definition_s']:>13.3f} {r['analysis_s']:>11.4f} {r['speedup']:>8.0f}x "
              f"{r['max_difference']:>11.1e}")
        if r["max_difference"] > 1e-12:
            print("  the two intervals differ: the fast jackknife is wrong")
            return 1
    print(f"\n`study analyze` ({shape['max_epochs']} epochs, grace {shape['grace_period']}, rf "
          f"{shape['reduction_factor']}); goal under {GOAL_S:.0f} s and {GOAL_MB:.0f} MB at 100,000 trials")
    print(f"{'trials':>8} {'full':>7} {'epoch rows':>11} {'analyze s':>10} {'peak MB':>8} {'s / goal':>9} "
          f"{'MB / goal':>10}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="bn-dropout-analysis-scale-") as tmp:
        for n in args.trials:
            folder = write_study(Path(tmp) / f"study-{n}", n, shape=shape)
            trials = pd.read_csv(folder / "trials.csv", usecols=["status"])
            rows = sum(1 for _ in open(folder / "epochs.csv")) - 1
            seconds, mb, _ = time_analyze(folder)
            full = int((trials["status"] == "completed").sum())
            print(f"{n:>8} {full:>7} {rows:>11} {seconds:>10.1f} {mb:>8.0f} {seconds / GOAL_S:>9.2f} "
                  f"{mb / GOAL_MB:>10.2f}")
            ok &= n < 100_000 or (seconds < GOAL_S and mb < GOAL_MB)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
