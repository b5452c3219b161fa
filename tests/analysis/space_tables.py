"""Planted study tables for any search space: what `study run` would write for its design.

`tests/analysis/search_simulator.py` simulates the bn x dropout grid with a known
truth; this module instead follows a space's own cell list (`SearchSpace.named_cells`),
so every shipped space (and any added later) gets tables with its cells, experiment
numbers, sampled rates and nuisance values, and the mechanism columns where a cell
has BatchNorm. A `scenario` plants the situations a small real study runs into:

- ``"scored"``: every cell has full-budget search trials and scored replicates;
- ``"sparse"``: one cell's search trials all diverged (no replicate), one cell has a
  single scored replicate (no interval), and the mechanism was not measured in one
  cell with BN (empty columns, as when its replicates failed);
- ``"one_cell"``: only the first cell has a full-budget trial (the others pruned or
  diverged), so stage 2 retrains that one cell alone;
- ``"search_only"``: the search alone, no stage 2.

numpy and pandas only; everything is seeded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from search_spaces import SearchSpace
from study.vocabulary.factors import RATE_FACTORS

SCENARIOS = ("scored", "sparse", "one_cell", "search_only")
MAX_EPOCHS = 3
SETTINGS = {"batch_size": 64, "max_epochs": MAX_EPOCHS, "train_size": 400, "val_size": 100, "precision": "fp32"}


def _draw(rng: np.random.Generator, r) -> float:
    if r.log:
        return float(10 ** rng.uniform(np.log10(r.low), np.log10(r.high)))
    return float(rng.uniform(r.low, r.high))


def _metrics(rng: np.random.Generator, acc: float, bn: bool, measured: bool = True) -> dict:
    loss = float(-np.log(max(acc, 1e-3)))
    shift = float(1.0 + rng.uniform(0.0, 0.5)) if bn and measured else np.nan
    return {
        "train_loss": loss * 0.9, "train_acc": min(acc + 0.02, 1.0), "train_eval_loss": loss * 0.8,
        "train_eval_acc": min(acc + 0.03, 1.0), "val_loss": loss, "val_acc": acc, "gap": loss * 0.2,
        "ece": 0.03, "conf_wrong": 0.6, "var_shift_max": shift, "var_shift_mean": shift if shift != shift else shift * 0.9,
        "val_acc_bn_reestimated": acc + 0.001 if bn and measured else np.nan, "epoch_s": 0.5,
    }


def space_tables(space: SearchSpace, scenario: str = "scored", *, trials_per_cell: int = 4, replicates: int = 2,
                 seed: int = 0) -> dict[str, pd.DataFrame]:
    """{"trials", "epochs"[, "cv"]} for `space`'s design under `scenario` (see the module docstring)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
    rng = np.random.default_rng(seed)
    cells = space.named_cells()
    dead = cells[1].name if scenario == "sparse" and len(cells) > 2 else None
    single = cells[-1].name if scenario == "sparse" else None
    unmeasured = next((c.name for c in cells if c.factors["bn"] != "none" and c.name not in (dead, single)), None)
    trials, epochs, cv = [], [], []
    for c, cell in enumerate(cells):
        bn = cell.factors["bn"] != "none"
        peak = 0.80 + 0.1 * rng.random()
        best = None
        for k in range(trials_per_cell):
            trial_id = f"t{c:03d}_{k}"
            sampled = {name: _draw(rng, r) for name, r in cell.ranges.items()}
            row = {**space.fixed, **cell.factors, **cell.settings, **SETTINGS, **sampled}
            row.update(trial_id=trial_id, cell=cell.name, seed=1000 * c + k)
            if cell.experiment is not None:
                row["experiment"] = cell.experiment
            # Trial 0 trains the full budget; the others alternate pruned and completed.
            status = "completed" if k % 2 == 0 else "pruned"
            if cell.name == dead or (scenario == "one_cell" and c > 0):
                status = "diverged" if k % 2 == 0 else "pruned"
            trained = MAX_EPOCHS if status != "pruned" else 1
            acc = 0.1 if status == "diverged" else peak - 0.02 * k + rng.normal(0, 0.005)
            row.update(status=status, epochs=trained, best_val_acc=acc, best_epoch=trained, error="",
                       samples_per_s=800.0, **_metrics(rng, acc, bn))
            trials.append(row)
            for e in range(1, trained + 1):
                epochs.append({"trial_id": trial_id, "epoch": e, **_metrics(rng, acc - 0.05 * (trained - e), bn),
                               "lr": row.get("lr", 0.05), "samples_per_s": 800.0})
            if status == "completed" and (best is None or acc > best["best_val_acc"]):
                best = row
        if best is None or scenario == "search_only":
            continue
        n_rep = 1 if cell.name == single else replicates
        for r in range(n_rep):
            acc = float(best["best_val_acc"] + rng.normal(0, 0.004))
            measured = cell.name != unmeasured
            cv.append({
                **{k: v for k, v in best.items() if k not in ("trial_id", "status", "epochs", "best_val_acc", "best_epoch")},
                "config_id": best["trial_id"], "trial_id": best["trial_id"], "seed": best["seed"] + 1000 * (r + 1),
                "replicate": r, "replicate_kind": "seed", "fold": np.nan, "status": "completed", "epochs": MAX_EPOCHS,
                "n_train": SETTINGS["train_size"], "n_val": SETTINGS["val_size"], "error": "",
                **_metrics(rng, acc, bn, measured),
            })
    out = {"trials": pd.DataFrame(trials), "epochs": pd.DataFrame(epochs)}
    if cv:
        out["cv"] = pd.DataFrame(cv)
    for frame in out.values():
        for rate in RATE_FACTORS:
            if rate in frame:
                frame[rate] = frame[rate].astype(float)
    return out


def write_experiment(space: SearchSpace, folder: Path, scenario: str = "scored", **kwargs) -> Path:
    """An experiment directory with the planted tables and a study.json recording the space."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in space_tables(space, scenario, **kwargs).items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    record = {"space": space.to_dict(), "plan": {"scheduler": {"reduction_factor": 2}}}
    (folder / "study.json").write_text(json.dumps(record, default=str))
    return folder
