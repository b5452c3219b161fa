"""Cells at the Optuna edge: distributions, the suggestion a trial gets, journals.

A cell (`search_spaces.Cell`) is one combination of scientific values. Each cell has
its own Optuna study, persisted as a journal file ``<journal_dir>/<cell>.log`` whose
study name is the cell name. Read one back with `load_cell_study`, or browse it with
optuna-dashboard (``pip install optuna-dashboard``, then
``optuna-dashboard EXPERIMENT/optuna/<cell>.log``: given an existing file path,
optuna-dashboard opens it as a journal file storage).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from search_spaces import Cell

DIRECTIONS = {"max": "maximize", "min": "minimize"}


def distributions(cell: Cell) -> dict[str, optuna.distributions.BaseDistribution]:
    """What the cell's Optuna study samples: its nuisance ranges and continuous rates."""
    return {
        name: optuna.distributions.FloatDistribution(rng.low, rng.high, log=rng.log)
        for name, rng in cell.ranges.items()
    }


def suggestion(cell: Cell, params: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
    """The flat config Tune merges over `param_space` for one trial of `cell`.

    The cell's settings (its scientific values and per-cell fixed values), the values
    Optuna sampled, and the metadata keys `cell` and `experiment` (which
    `TrialConfig.from_flat` passes over). `seed` is set for replicate trials.
    """
    out: dict[str, Any] = {**cell.settings, **params, "cell": cell.name}
    if cell.experiment is not None:
        out["experiment"] = cell.experiment
    if seed is not None:
        out["seed"] = seed
    return out


def journal_path(journal_dir: str | Path, cell_name: str) -> Path:
    return Path(journal_dir) / f"{cell_name}.log"


def journal_storage(path: str | Path) -> optuna.storages.JournalStorage:
    """Optuna's append-only journal file storage (JournalFileBackend) at `path`."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def open_cell_study(
    journal_dir: str | Path | None,
    cell_name: str,
    sampler: optuna.samplers.BaseSampler | None = None,
    mode: str = "max",
) -> optuna.Study:
    """Create or reopen the cell's study (in memory when `journal_dir` is None)."""
    storage = None if journal_dir is None else journal_storage(journal_path(journal_dir, cell_name))
    return optuna.create_study(
        study_name=cell_name,
        storage=storage,
        sampler=sampler,
        pruner=optuna.pruners.NopPruner(),  # ASHA decides what stops; Optuna only records it
        direction=DIRECTIONS[mode],
        load_if_exists=True,
    )


def load_cell_study(journal_dir: str | Path, cell_name: str) -> optuna.Study:
    """Read a cell's study back from its journal (e.g. for analysis or a test)."""
    path = journal_path(journal_dir, cell_name)
    if not path.is_file():
        raise FileNotFoundError(f"no Optuna journal for cell {cell_name!r} at {str(path)!r}")
    return optuna.load_study(study_name=cell_name, storage=journal_storage(path))


def load_cell_studies(journal_dir: str | Path) -> dict[str, optuna.Study]:
    """Every cell study in a journal directory: cell name -> study."""
    return {p.stem: load_cell_study(journal_dir, p.stem) for p in sorted(Path(journal_dir).glob("*.log"))}
