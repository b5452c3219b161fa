"""Cells at the Optuna edge: distributions, the suggestion a trial gets, journals.

A cell (`search_spaces.Cell`) is one combination of scientific values. Each cell has
its own Optuna study, persisted as a journal file ``<journal_dir>/<cell>.log`` whose
study name is the cell name. Read one back with `load_cell_study`, or browse it with
optuna-dashboard (``pip install optuna-dashboard``, then
``optuna-dashboard EXPERIMENT/optuna/<cell>.log``: given an existing file path,
optuna-dashboard opens it as a journal file storage).

Each study's sampler is one of `study.tuning.planning.SAMPLERS`, built by `make_sampler`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna

from search_spaces import Cell
from study.tuning.planning import check_sampler, tpe_startup_trials

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


class CellQMCSampler(optuna.samplers.QMCSampler):
    """Optuna's `QMCSampler` (scrambled Sobol) told the cell's search space up front.

    The stock sampler infers its space from the study's trials: from the first
    finished one, or before any has finished from the running ones' distributions.
    The study's very first trial has neither, so the stock sampler draws it with its
    independent sampler (uniform random) and starts the Sobol sequence at the second
    trial. A cell's space is fixed (`distributions`), so here it is the relative
    space from the first trial on: trial k of the cell is Sobol point k, and no
    parameter is ever sampled independently (`warn_independent_sampling` stays on, to
    flag it if one ever were).

    Where the sequence stands is not in the sampler: `QMCSampler` counts the points
    it has drawn in a study system attribute (``qmc:<hash of type, space, seed>``),
    so it lives in the cell's journal and a resumed study goes on where the journal
    stopped (`CellSearcher.restore` puts back the journal of the checkpoint).
    """

    def __init__(self, space: dict[str, optuna.distributions.BaseDistribution], seed: int):
        with warnings.catch_warnings():  # one ExperimentalWarning per cell otherwise (experimental since 3.0)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # Scrambled: the unscrambled sequence ignores the seed and starts at the
            # space's lower corner. The seed also seeds the independent RandomSampler,
            # which is never asked for a value here.
            super().__init__(qmc_type="sobol", scramble=True, seed=seed)
        self._space = dict(space)

    def infer_relative_search_space(self, study, trial) -> dict[str, optuna.distributions.BaseDistribution]:
        return dict(self._space)


def make_sampler(sampler: str, seed: int, samples_per_cell: int, space: dict) -> optuna.samplers.BaseSampler:
    """The seeded sampler of one cell's study: "qmc", "tpe" or "random" (see `study.tuning.planning.SAMPLERS`).

    `space` is the cell's `distributions`; `samples_per_cell` sizes TPE's start-up.
    """
    check_sampler(sampler)
    if sampler == "qmc":
        return CellQMCSampler(space, seed=seed)
    if sampler == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, constant_liar=True, n_startup_trials=tpe_startup_trials(samples_per_cell)
        )
    return optuna.samplers.RandomSampler(seed=seed)


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
