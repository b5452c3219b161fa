"""Before `Tuner.restore`: the search's own state files read with a check, so a broken one stops the command
with one paragraph that names it and says how to recover, instead of a restore that fails half-way or starts
the experiment over. (Apart from `study.tuning.state_files`, which the searcher and the scheduler import.)"""

from __future__ import annotations

from pathlib import Path

from study.tuning.cell_scheduler import read_rungs
from study.tuning.cell_search import read_searcher_state
from study.tuning.state_files import RUNGS_FILE, StateFileError, files_in, newest_searcher_state


def check_before_resume(experiment: str | Path, journal_dir: str | Path) -> None:
    """Read the searcher state and the ASHA rungs; raise `StateFileError` if one is broken."""
    searcher_state = newest_searcher_state(experiment)
    if searcher_state is not None:
        read_searcher_state(searcher_state)
    elif files_in(str(experiment), "searcher-state-*.pkl"):
        raise StateFileError(
            f"experiment {experiment} was written by an earlier version of the tool, which kept the searcher's "
            "state as a pickle; this version does not load pickles of its own state (one could run code). Start "
            "a new study with --name NEW_NAME; the old one's tables stay readable by `study analyze`."
        )
    rungs = Path(journal_dir) / RUNGS_FILE
    if rungs.is_file():
        read_rungs(rungs)
