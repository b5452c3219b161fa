"""A Ray Tune searcher with one Optuna study per scientific cell, and equal budgets.

Fair comparison (docs/search-spaces.md) needs three things from the searcher:

- every cell gets exactly `samples_per_cell` trials: suggestions go round robin over
  the cells whose budget is not used up, then the searcher answers FINISHED;
- nuisance hyperparameters (and continuous rates) are tuned inside each cell by the
  cell's own seeded Optuna study, which sees only that cell's trials, so no cell wins
  because a shared sampler favoured it. The sampler is the same kind in every cell
  (`sampler`: scrambled Sobol "qmc", "tpe" or "random", see `study.tuning.cells.make_sampler`);
- Optuna is told the truth about each trial. Ray's `OptunaSearch` records a trial
  that ASHA stopped after 2 epochs as COMPLETE with its 2-epoch score, and TPE then
  ranks it against 30-epoch scores. Here a trial that stopped before `max_epochs` is
  told PRUNED (its per-epoch values are stored as intermediate values, and TPE ranks
  pruned trials below complete ones, by how far they got; qmc and random ignore the
  values); an errored trial is FAIL;
  a trial that trained to `max_epochs` is COMPLETE with its final-epoch metric.

Why the final epoch rather than the best epoch: ASHA compares trials by the metric
at the current epoch, a pruned trial's Optuna value is its last intermediate value,
and the final epoch is the model the schedule was designed to end at. The maximum
over epochs is biased upward by validation noise, and more so for noisy, long
trials. (`completed_value="best"` is available; trials.csv keeps both values.)

Persistence and resume: each cell's study lives in Optuna's journal file storage,
``<journal_dir>/<cell>.log`` with study name = cell name. Ray pickles the searcher
in ``tuner.pkl`` before the run (study handles are dropped then, and reopened from
the journal on first use); at every experiment checkpoint `save` writes
``searcher-state-*.json`` (`study.tuning.state_files`): the routing state (trial ->
cell, per-cell counts, the Optuna trial number of every live trial) and a copy of
the journals (which also hold where a qmc sampler stands in its Sobol sequence: a
study system attribute), where each sampler stands in its random sequence, and the
ASHA rungs `CellScheduler` keeps beside the journals (Tune saves no scheduler state).
`restore` puts the journals' and the rungs' copy back in place of the files on disk, so
the Optuna studies agree exactly with the trials Tune restores: what happened after
the checkpoint is replayed by Tune (a live trial resumes from its own checkpoint and
re-reports its later epochs; a trial asked after the checkpoint is forgotten by
Tune, which asks again), and the journal must not keep a second record of it, or a
cell's study would hold more finished trials than the cell ran. A journal found on a fresh start of a local
experiment (a run killed before its first checkpoint) keeps its trials; its RUNNING
ones are marked FAIL with the user attribute ``orphaned``. (A remote experiment's
local copy is made anew from the experiment before every run:
`study.tuning.state_files.fetch_journals`.)

Browse a cell's study: ``pip install optuna-dashboard`` then
``optuna-dashboard EXPERIMENT/optuna/<cell>.log``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from search_spaces import Cell
from study.tuning import optuna_private
from study.tuning.cell_scheduler import check_rungs
from study.tuning.cells import distributions, journal_path, make_sampler, open_cell_study, suggestion
from study.tuning.planning import resolve_sampler
from study.tuning.state_files import (
    RUNGS_FILE, SCHEDULER_FORMAT, SEARCHER_FILE_PATTERN, SEARCHER_FORMAT, StateFileError, parse_state,
    publish_journals, read_state, unpublish_journals, write_state,
)

logger = logging.getLogger(__name__)

SEARCHER_RECOVERY = ("move it away to resume from the previous one, or start a new study with --name NEW_NAME "
                     "(nothing else in the experiment was changed)")

COMPLETED_VALUES = ("last", "best")


class CellSearcher(Searcher):
    """Route each suggestion to one Optuna study per cell, round robin.

    Args:
        cells: the space's cells (`SearchSpace.named_cells()`), in order; cell i's
            sampler is seeded with ``seed + i``.
        samples_per_cell: trials per cell; Tune's `num_samples` must be at least
            ``samples_per_cell * len(cells)`` (see `total_samples`).
        max_epochs: the trials' `max_epochs`; a trial that stops before it was pruned.
        journal_dir: folder for the journals ``<cell>.log``; None keeps the studies
            in memory (tests).
        publish_copy: also copy `journal_dir` into ``optuna/`` beside each
            checkpoint (an experiment in remote storage, where that folder is what
            Tune syncs to the experiment: `study.tuning.state_files.publish_journals`).
        metric, mode: as in Tune; usually left None and taken from `TuneConfig`.
        seed: base seed of the samplers; a cell with nothing to sample gives its
            k-th trial the training seed ``seed + k`` (its trials are replicates).
        time_attr: the result key that counts epochs.
        completed_value: "last" (final-epoch metric) or "best" (best over epochs),
            the value a COMPLETE trial is told.
        sampler: every cell's sampler, one of `study.tuning.planning.SAMPLERS`; None takes
            `study.tuning.planning.default_sampler(samples_per_cell)` (see `sampler` for
            the name used).
    """

    CKPT_FILE_TMPL = SEARCHER_FILE_PATTERN  # Tune's name for what `save` writes: JSON, not Tune's default pickle

    def __init__(
        self,
        cells: Sequence[Cell],
        samples_per_cell: int,
        max_epochs: int,
        journal_dir: str | Path | None = None,
        metric: str | None = None,
        mode: str | None = None,
        seed: int = 0,
        time_attr: str = "epoch",
        completed_value: str = "last",
        sampler: str | None = None,
        publish_copy: bool = False,
    ):
        cells = list(cells)
        if not cells:
            raise ValueError("CellSearcher needs at least one cell, got none")
        names = [c.name for c in cells]
        if len(set(names)) != len(names):
            raise ValueError(f"cell names must be unique, got {names!r}")
        if isinstance(samples_per_cell, bool) or not isinstance(samples_per_cell, int) or samples_per_cell < 1:
            raise ValueError(f"samples_per_cell must be an integer >= 1, got {samples_per_cell!r}")
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise ValueError(f"max_epochs must be an integer >= 1, got {max_epochs!r}")
        if completed_value not in COMPLETED_VALUES:
            raise ValueError(f"completed_value must be one of {', '.join(COMPLETED_VALUES)}, got {completed_value!r}")
        if mode not in (None, "max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        sampler = resolve_sampler(sampler, samples_per_cell)
        super().__init__(metric=metric, mode=mode)
        self._cells = cells
        self._samples_per_cell = samples_per_cell
        self._max_epochs = max_epochs
        self._journal_dir = None if journal_dir is None else str(journal_dir)
        self._publish_copy = publish_copy
        self._seed = int(seed)
        self._time_attr = time_attr
        self._completed_value = completed_value
        self._sampler = sampler
        # Routing state (saved and restored).
        self._counts = {c.name: 0 for c in cells}  # trials suggested per cell
        self._next = 0  # round-robin position
        self._trial_cell: dict[str, str] = {}  # Tune trial id -> cell name
        self._live: dict[str, int] = {}  # Tune trial id -> Optuna trial number, until told
        self._told: dict[str, str] = {}  # Tune trial id -> Optuna state told
        self._samplers = {
            c.name: make_sampler(sampler, self._seed + i, samples_per_cell, distributions(c))
            for i, c in enumerate(cells)
        }
        self._init_transient()

    # ---- pickling: Tune pickles the searcher; study handles are reopened lazily.

    def _init_transient(self) -> None:
        self._studies: dict[str, optuna.Study] = {}
        self._restored = False

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_studies", None)
        state.pop("_restored", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_sampler", "tpe")  # pickled before the choice existed: TPE
        self.__dict__.setdefault("_publish_copy", False)
        self._init_transient()

    def retarget(self, journal_dir: str | Path | None, publish_copy: bool) -> None:
        """Keep the journals in `journal_dir` from now on (a resumed experiment that moved, maybe to or from
        remote storage: a local experiment must not publish, or Tune's sync would copy over its live journals)."""
        self._journal_dir = None if journal_dir is None else str(journal_dir)
        self._publish_copy = publish_copy
        self._init_transient()

    # ---- what Tune calls

    @property
    def cells(self) -> list[Cell]:
        return list(self._cells)

    @property
    def sampler(self) -> str:
        """The name of every cell's sampler ("qmc", "tpe" or "random")."""
        return self._sampler

    @property
    def total_samples(self) -> int:
        """The trial count that gives every cell its budget: Tune's `num_samples`."""
        return self._samples_per_cell * len(self._cells)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec) -> bool:
        if metric and self._metric and metric != self._metric:
            raise ValueError(f"CellSearcher was built for metric {self._metric!r} but the Tuner asks for {metric!r}")
        if mode and self._mode and mode != self._mode:
            raise ValueError(f"CellSearcher was built for mode {self._mode!r} but the Tuner asks for {mode!r}")
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        if (config or {}).get("max_epochs", self._max_epochs) != self._max_epochs:
            raise ValueError(
                f"param_space has max_epochs={config['max_epochs']!r} but CellSearcher(max_epochs={self._max_epochs}); "
                "they must agree, or finished trials would be recorded as pruned"
            )
        num_samples = spec.get("num_samples")
        if num_samples is not None and num_samples < self.total_samples:
            raise ValueError(
                f"num_samples={num_samples} is below samples_per_cell x cells = {self._samples_per_cell} x "
                f"{len(self._cells)} = {self.total_samples}: cells would get unequal budgets; "
                f"set num_samples={self.total_samples}"
            )
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        if not self._metric or not self._mode:
            raise RuntimeError("CellSearcher needs metric and mode: pass them to it or to tune.TuneConfig")
        if trial_id in self._trial_cell:  # asked again for the same trial: same answer
            cell = self._cell(self._trial_cell[trial_id])
            frozen = self._frozen(cell.name, self._live.get(trial_id))
            return suggestion(cell, frozen.params) if frozen is not None else None
        cell = self._next_cell()
        if cell is None:
            return Searcher.FINISHED
        study = self._study(cell.name)
        trial = study.ask(fixed_distributions=distributions(cell))
        trial.set_user_attr("tune_trial_id", trial_id)
        k = self._counts[cell.name]
        self._counts[cell.name] = k + 1
        self._trial_cell[trial_id] = cell.name
        self._live[trial_id] = trial.number
        replicate_seed = self._seed + k if not cell.ranges else None
        return suggestion(cell, trial.params, seed=replicate_seed)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._live:
            self._report(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self._live:
            return  # already told, or never ours (e.g. a trial restarted under a new id)
        name, number = self._trial_cell[trial_id], self._live[trial_id]
        study = self._study(name)
        if result:
            self._report(trial_id, result)
        value = _finite(result.get(self._metric)) if result else None
        epoch = result.get(self._time_attr) if result else None
        if error:
            state, told = TrialState.FAIL, None
        elif value is not None and epoch is not None and epoch >= self._max_epochs:
            state, told = TrialState.COMPLETE, self._complete_value(name, number, value)
        elif result and self._metric in result:
            state, told = TrialState.PRUNED, None  # stopped early (ASHA): Optuna stores the last intermediate value
        else:
            state, told = TrialState.FAIL, None  # never reported a usable metric
        try:
            study.tell(number, told, state=state, skip_if_finished=True)
        except ValueError as exc:  # e.g. a NaN value
            logger.warning("cell %s: could not tell trial %s as %s (%s); telling FAIL", name, number, state.name, exc)
            study.tell(number, None, state=TrialState.FAIL, skip_if_finished=True)
            state = TrialState.FAIL
        del self._live[trial_id]
        self._told[trial_id] = state.name

    def save(self, checkpoint_path: str) -> None:
        """The routing state and each cell's journal, as JSON (Tune names the file with `CKPT_FILE_TMPL`)."""
        journals, rungs = self._journal_texts(), self._rungs_text()
        write_state(checkpoint_path, SEARCHER_FORMAT, {  # the keys of SEARCHER_STATE
            "cells": [c.name for c in self._cells], "metric": self._metric, "mode": self._mode,
            "counts": self._counts, "next": self._next,
            "trial_cell": self._trial_cell, "live": self._live, "told": self._told, "journals": journals,
            "samplers": {name: optuna_private.random_states(sampler) for name, sampler in self._samplers.items()},
            "rungs": rungs,
        })
        if self._journal_dir is None:
            return
        if self._publish_copy:  # what the checkpoint holds, as files: read once
            files = {journal_path(self._journal_dir, name).name: text for name, text in journals.items()}
            publish_journals({**files, **({RUNGS_FILE: rungs} if rungs is not None else {})}, Path(checkpoint_path).parent)
        else:
            unpublish_journals(self._journal_dir, Path(checkpoint_path).parent)

    def restore(self, checkpoint_path: str) -> None:
        state = read_searcher_state(checkpoint_path)
        names = [c.name for c in self._cells]
        if state["cells"] != names:
            raise StateFileError(
                f"searcher state {checkpoint_path} is of cells {state['cells']!r}, not this study's {names!r}; "
                "resume with the space the experiment was started with"
            )
        # Tune set metric and mode on the running searcher (set_search_properties), after tuner.pkl was written.
        self._metric, self._mode = state["metric"], state["mode"]
        self._counts, self._next = {k: int(v) for k, v in state["counts"].items()}, int(state["next"])
        self._trial_cell, self._live, self._told = dict(state["trial_cell"]), dict(state["live"]), dict(state["told"])
        try:  # each sampler goes on with its random sequence where the checkpoint left it
            for name, states in state["samplers"].items():
                optuna_private.set_random_states(self._samplers[name], states)
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFileError(f"searcher state {checkpoint_path} holds sampler states that do not fit this "
                                 f"study's {self._sampler} samplers ({exc}); {SEARCHER_RECOVERY}") from None
        self._init_transient()
        self._restored = True
        if self._journal_dir is not None:
            for cell in self._cells:  # the journals as they were at the checkpoint (see the module docstring)
                path = journal_path(self._journal_dir, cell.name)
                if cell.name in state["journals"]:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(state["journals"][cell.name])
                else:  # the cell had no trial at the checkpoint
                    path.unlink(missing_ok=True)
            self._restore_rungs(state, checkpoint_path)

    # ---- inspection (for study.json and tests)

    def budget(self) -> dict[str, dict[str, int]]:
        """Per cell: trials suggested, and how many were told each Optuna state."""
        out = {c.name: {"suggested": self._counts[c.name], "running": 0} for c in self._cells}
        for trial_id, name in self._trial_cell.items():
            key = self._told.get(trial_id, "running").lower()
            out[name][key] = out[name].get(key, 0) + 1
        return out

    def trial_cell(self, trial_id: str) -> str | None:
        return self._trial_cell.get(trial_id)

    # ---- internals

    def _cell(self, name: str) -> Cell:
        return next(c for c in self._cells if c.name == name)

    def _next_cell(self) -> Cell | None:
        n = len(self._cells)
        for offset in range(n):
            i = (self._next + offset) % n
            if self._counts[self._cells[i].name] < self._samples_per_cell:
                self._next = (i + 1) % n
                return self._cells[i]
        return None

    def _study(self, name: str) -> optuna.Study:
        if name not in self._studies:
            study = open_cell_study(self._journal_dir, name, self._samplers[name], self._mode or "max")
            self._studies[name] = study
            self._reconcile(name, study)
        return self._studies[name]

    def _reconcile(self, name: str, study: optuna.Study) -> None:
        """Fail the journal's RUNNING trials that no live Tune trial owns (a run killed before its first checkpoint)."""
        ours = {number for tid, number in self._live.items() if self._trial_cell[tid] == name}
        trials = study.get_trials(deepcopy=False)
        if trials and self._counts[name] == 0 and not self._restored:
            logger.warning(
                "cell %s: journal %s already holds %d trials from an earlier run; they inform this run's sampler",
                name, journal_path(self._journal_dir or "", name), len(trials),
            )
        for trial in trials:
            if trial.state == TrialState.RUNNING and trial.number not in ours:
                optuna_private.set_user_attr(study, trial, "orphaned", True)
                study.tell(trial.number, None, state=TrialState.FAIL, skip_if_finished=True)

    def _frozen(self, name: str, number: int | None) -> optuna.trial.FrozenTrial | None:
        if number is None:
            return None
        return optuna_private.trial_by_number(self._study(name), number)

    def _report(self, trial_id: str, result: dict) -> None:
        """Store the epoch's metric as the Optuna trial's intermediate value at step = epoch.

        What `optuna.Trial.report(value, epoch)` does, except that a repeated epoch (a
        resumed trial re-runs the epochs after its last checkpoint) keeps the newest value.
        """
        value, step = _finite(result.get(self._metric)), result.get(self._time_attr)
        if value is None or step is None:
            return
        name, number = self._trial_cell[trial_id], self._live[trial_id]
        try:
            optuna_private.set_intermediate_value(self._study(name), number, int(step), value)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # told before an interruption; the journal already has its final record

    def _complete_value(self, name: str, number: int, last: float) -> float:
        if self._completed_value == "last":
            return last
        values = [v for v in self._frozen(name, number).intermediate_values.values() if _finite(v) is not None]
        pick = max if self._mode == "max" else min
        return pick(values) if values else last

    def _rungs_text(self) -> str | None:
        """The ASHA rungs `CellScheduler` keeps beside the journals: Tune saves no scheduler state, so the
        searcher's checkpoint carries them, and journals and rungs come back from the same moment."""
        if self._journal_dir is None:
            return None
        path = Path(self._journal_dir) / RUNGS_FILE
        return path.read_text() if path.is_file() else None

    def _restore_rungs(self, state: dict, checkpoint_path: str) -> None:
        """Put the checkpoint's rungs in place before Tune gives the scheduler its first trial."""
        path = Path(self._journal_dir) / RUNGS_FILE
        if "rungs" not in state:  # a checkpoint of an earlier version: the rungs file stays as found
            logger.warning("searcher state %s holds no ASHA rungs (an earlier version wrote it); ASHA resumes with "
                           "%s", checkpoint_path, "the rungs in " + str(path) if path.is_file() else "empty rungs")
        elif state["rungs"] is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(state["rungs"])  # checked by read_searcher_state

    def _journal_texts(self) -> dict[str, str]:
        if self._journal_dir is None:
            return {}
        out = {}
        for cell in self._cells:
            path = journal_path(self._journal_dir, cell.name)
            if path.is_file():
                out[cell.name] = path.read_text()
        return out


def read_searcher_state(path: str | Path) -> dict:
    """A searcher state file, checked; `StateFileError` names what is wrong."""
    state = read_state(path, SEARCHER_FORMAT, "searcher state", SEARCHER_RECOVERY)
    missing = [k for k in SEARCHER_STATE if k not in state]
    wrong = [k for k, kind in SEARCHER_STATE.items() if k in state and not _holds(state[k], kind)]
    if missing or wrong:
        what = "; ".join([f"lacks {', '.join(missing)}"] * bool(missing) + [f"has malformed {', '.join(wrong)}"] * bool(wrong))
        raise StateFileError(f"searcher state {path} {what}; {SEARCHER_RECOVERY}")
    if state.get("rungs") is not None:  # optional: earlier versions kept no rungs here
        what = f"the ASHA rungs in searcher state {path}"
        check_rungs(parse_state(str(state["rungs"]), SCHEDULER_FORMAT, what, SEARCHER_RECOVERY), what, SEARCHER_RECOVERY)
    return state


# What `save` writes: key -> type, and for a mapping the type of its values.
SEARCHER_STATE = {
    "cells": (list, str), "metric": (str, None), "mode": (str, None), "counts": (dict, int), "next": (int, None),
    "trial_cell": (dict, str), "live": (dict, int), "told": (dict, str), "journals": (dict, str),
    "samplers": (dict, list),
}


def _holds(value, kind: tuple) -> bool:
    outer, inner = kind
    if outer is str and value is None:  # metric and mode before Tune set them
        return True
    if not isinstance(value, outer) or isinstance(value, bool):
        return False
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return inner is None or all(isinstance(v, inner) and not isinstance(v, bool) for v in items)


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
