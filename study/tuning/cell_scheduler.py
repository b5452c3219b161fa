"""A Ray Tune scheduler that runs one ASHA per scientific cell.

ASHA stops a trial whose metric at a rung is below the top 1/reduction_factor of the
trials that reached that rung before it. With one global ASHA, a trial of a slow
starter (Dropout slows early epochs; BN speeds them up) is stopped because trials of
*another cell* did better at epoch 1: the comparison the study makes would be
decided by early-epoch speed. `CellScheduler` keeps one `ASHAScheduler` per cell
(the trial config's `cell` key, set by `CellSearcher`), so rungs never mix cells.

Tune does not checkpoint schedulers (`TuneController` saves the searcher and the
trials, not the scheduler), so after `Tuner.restore` every rung would start empty.
Given `state_file`, `CellScheduler` writes its rungs there (JSON, see
`study.tuning.state_files`) whenever they change and reads them back on first use
after a restore.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from study.tuning import ray_private
from study.tuning.state_files import SCHEDULER_FORMAT, StateFileError, read_state, write_state

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

logger = logging.getLogger(__name__)

NO_CELL = ""  # trials without a `cell` key share one ASHA (plain ASHA behaviour)


class CellScheduler(FIFOScheduler):
    """Route each trial's results to its cell's own `ASHAScheduler`.

    Args:
        max_t: epochs a trial may train (`max_epochs`); a trial reaching it is stopped.
        grace_period: epochs every trial trains before ASHA may stop it.
        reduction_factor: ASHA keeps the best 1/reduction_factor at each rung.
        time_attr: the result key that counts epochs.
        metric, mode: as in Tune; usually left None and taken from `TuneConfig`.
        early_stopping: False runs every trial to `max_t` (replicate trials of a
            space without nuisance ranges must not be stopped for bad luck).
        state_file: where to keep the rungs across an interruption (e.g.
            ``EXPERIMENT/optuna/asha_rungs.json``); None keeps them in memory only.
    """

    def __init__(
        self,
        max_t: int,
        grace_period: int = 1,
        reduction_factor: float = 4,
        time_attr: str = "epoch",
        metric: str | None = None,
        mode: str | None = None,
        early_stopping: bool = True,
        state_file: str | Path | None = None,
    ):
        if isinstance(max_t, bool) or not isinstance(max_t, int) or max_t < 1:
            raise ValueError(f"max_t must be an integer >= 1, got {max_t!r}")
        if isinstance(grace_period, bool) or not isinstance(grace_period, int) or not 1 <= grace_period <= max_t:
            raise ValueError(f"grace_period must be an integer in [1, max_t={max_t}], got {grace_period!r}")
        if not reduction_factor > 1:
            raise ValueError(f"reduction_factor must be > 1, got {reduction_factor!r}")
        if mode not in (None, "max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        super().__init__()
        self._max_t = max_t
        self._grace_period = grace_period
        self._reduction_factor = reduction_factor
        self._time_attr = time_attr
        self._metric = metric
        self._mode = mode
        self._early_stopping = early_stopping
        self._state_file = None if state_file is None else str(state_file)
        self._cells: dict[str, ASHAScheduler] = {}
        self._trial_cell: dict[str, str] = {}
        self._stopped: set[str] = set()  # trials ASHA stopped early (so a resumed one stays stopped)
        self._loaded = False

    # ---- search properties

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        if (metric and self._metric and metric != self._metric) or (mode and self._mode and mode != self._mode):
            return False
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        for asha in self._cells.values():
            asha.set_search_properties(self._metric, self._mode)
        return True

    # ---- routing

    def cell_of(self, trial: Trial) -> str:
        return str((trial.config or {}).get("cell", NO_CELL))

    def asha(self, cell: str) -> ASHAScheduler:
        """The ASHA instance of one cell (created on first use)."""
        if cell not in self._cells:
            self._cells[cell] = ASHAScheduler(
                time_attr=self._time_attr,
                metric=self._metric,
                mode=self._mode,
                max_t=self._max_t,
                grace_period=self._grace_period,
                reduction_factor=self._reduction_factor,
            )
        return self._cells[cell]

    def on_trial_add(self, tune_controller: "TuneController", trial: Trial) -> None:
        ray_private.follow_moved_experiment(tune_controller, trial)
        self._load_once()
        cell = self.cell_of(trial)
        self._trial_cell[trial.trial_id] = cell
        self.asha(cell).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: "TuneController", trial: Trial, result: dict) -> str:
        self._load_once()
        epoch = result.get(self._time_attr)
        if not self._early_stopping:
            return TrialScheduler.STOP if epoch is not None and epoch >= self._max_t else TrialScheduler.CONTINUE
        if trial.trial_id in self._stopped:
            return TrialScheduler.STOP
        asha = self._asha_of(tune_controller, trial)
        before = ray_private.rung_sizes(asha)
        decision = asha.on_trial_result(tune_controller, trial, result)
        changed = ray_private.rung_sizes(asha) != before
        if decision == TrialScheduler.STOP and epoch is not None and epoch < self._max_t:
            self._stopped.add(trial.trial_id)
            changed = True
        if changed:
            self._persist()
        return decision

    def on_trial_complete(self, tune_controller: "TuneController", trial: Trial, result: dict) -> None:
        if not self._early_stopping:
            return
        asha = self._asha_of(tune_controller, trial)
        before = ray_private.rung_sizes(asha)
        asha.on_trial_complete(tune_controller, trial, result)
        if ray_private.rung_sizes(asha) != before:
            self._persist()

    def on_trial_remove(self, tune_controller: "TuneController", trial: Trial) -> None:
        asha = self._cells.get(self._trial_cell.get(trial.trial_id, self.cell_of(trial)))
        if asha is not None and ray_private.tracks(asha, trial.trial_id):
            asha.on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller: "TuneController", trial: Trial) -> None:
        pass

    def debug_string(self) -> str:
        lines = [f"Using CellScheduler: one ASHA per cell ({len(self._cells)} cells), {len(self._stopped)} stopped early"]
        for cell, asha in self._cells.items():
            lines.append(f"  {cell or '(no cell)'}: " + ray_private.describe(asha))
        return "\n".join(lines)

    # ---- persistence

    def rungs(self) -> dict[str, list[dict[str, float]]]:
        """Per cell, per rung (highest milestone first): trial id -> recorded metric (sign-adjusted)."""
        return {cell: [dict(recorded) for _, recorded in ray_private.rungs(asha)] for cell, asha in self._cells.items()}

    def save(self, checkpoint_path: str) -> None:
        write_state(checkpoint_path, SCHEDULER_FORMAT, {"rungs": self.rungs(), "stopped": sorted(self._stopped)})

    def restore(self, checkpoint_path: str) -> None:
        state = read_rungs(checkpoint_path)
        for cell, rungs in state["rungs"].items():
            asha = self.asha(cell)
            for (_, recorded), saved in zip(ray_private.rungs(asha), rungs):
                recorded.update(saved)
        self._stopped |= set(state["stopped"])

    def _asha_of(self, tune_controller, trial: Trial) -> ASHAScheduler:
        cell = self._trial_cell.get(trial.trial_id)
        if cell is None:  # a trial we were not told about (should not happen): add it now
            self.on_trial_add(tune_controller, trial)
            cell = self._trial_cell[trial.trial_id]
        return self._cells[cell]

    def _persist(self) -> None:
        if self._state_file is None:
            return
        self.save(self._state_file)  # whole or not at all: a kill never leaves half a file

    def _load_once(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._state_file is not None and Path(self._state_file).is_file():
            self.restore(self._state_file)
            logger.info("CellScheduler: restored ASHA rungs of %d cells from %s", len(self._cells), self._state_file)

    def retarget(self, state_file: str | Path) -> None:
        """Keep the rungs in `state_file` from now on (a resumed experiment that moved)."""
        self._state_file, self._loaded = str(state_file), False

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_loaded"] = False  # a restored copy reads the state file again
        return state



RUNGS_RECOVERY = ("delete it to resume with empty rungs (ASHA then judges the remaining trials against fewer "
                  "earlier ones), or start a new study with --name NEW_NAME")


def read_rungs(path: str | Path) -> dict:
    """A rungs file, checked; `StateFileError` names what is wrong."""
    return check_rungs(read_state(path, SCHEDULER_FORMAT, "ASHA state", RUNGS_RECOVERY), f"ASHA state {path}")


def check_rungs(state: dict, what: str, recovery: str = RUNGS_RECOVERY) -> dict:
    """`state` (of `SCHEDULER_FORMAT`) holds rungs per cell and the stopped trials; `StateFileError` otherwise."""
    rungs, stopped = state.get("rungs"), state.get("stopped")
    if not isinstance(rungs, dict) or not isinstance(stopped, list) or not all(
        isinstance(cell_rungs, list) and all(isinstance(rung, dict) for rung in cell_rungs) for cell_rungs in rungs.values()
    ):
        raise StateFileError(f"{what} does not hold rungs per cell and a list of stopped trials; {recovery}")
    return state
