"""The search's own state files: JSON, read with a check, and checked before a resume starts.

Two files are the project's, not Ray's: the searcher's state (`CellSearcher.save`,
``searcher-state-<session>.json`` in the experiment directory: routing state and a
copy of each cell's Optuna journal) and the ASHA rungs (`CellScheduler`,
``asha_rungs.json`` beside the journals). Both are plain JSON, so a planted file
can hold wrong numbers but never runs code. (Ray's own files, ``tuner.pkl`` and the
search generator's state, are Ray's pickles: trusted input, as README says.)

`check_before_resume` reads both before `Tuner.restore`, so a broken file stops the
command with one paragraph that names it and says how to recover, instead of a
restore that fails half-way or starts the experiment over.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

from study.runtime.results import write_text
from study.vocabulary.errors import UserError

SEARCHER_FORMAT = "cell-searcher/1"
SCHEDULER_FORMAT = "cell-scheduler/1"
SEARCHER_FILE_PATTERN = "searcher-state-{}.json"  # Tune fills in the session
RUNGS_FILE = "asha_rungs.json"


class StateFileError(UserError):
    """A state file of the search that cannot be read back."""


def write_state(path: str | Path, state_format: str, state: dict) -> None:
    """Write a state file whole or not at all (as every table of the experiment is written)."""
    path = Path(path)
    write_text(str(path.parent), path.name, json.dumps({"format": state_format, **state}))


def read_state(path: str | Path, state_format: str, what: str, recovery: str) -> dict:
    """The state in `path`, checked to be JSON of `state_format`; `StateFileError` otherwise."""
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateFileError(f"{what} {path} cannot be read ({type(exc).__name__}: {exc}); {recovery}") from None
    if not isinstance(state, dict) or state.get("format") != state_format:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise StateFileError(f"{what} {path} is not a {state_format!r} state file (format {found!r}); {recovery}")
    return state


def newest_searcher_state(experiment_dir: str | Path) -> Path | None:
    """The file `Tuner.restore` gives the searcher: Tune picks the greatest name."""
    paths = glob.glob(str(Path(experiment_dir) / SEARCHER_FILE_PATTERN.format("*")))
    return Path(max(paths)) if paths else None


def check_before_resume(experiment_dir: str | Path | None, journal_dir: str | Path) -> None:
    """Read the searcher state (local experiments) and the ASHA rungs; raise `StateFileError` if one is broken."""
    from study.tuning.cell_scheduler import read_rungs
    from study.tuning.cell_search import read_searcher_state

    searcher_state = newest_searcher_state(experiment_dir) if experiment_dir is not None else None
    if searcher_state is not None:
        read_searcher_state(searcher_state)
    elif experiment_dir is not None and glob.glob(str(Path(experiment_dir) / "searcher-state-*.pkl")):
        raise StateFileError(
            f"experiment {experiment_dir} was written by an earlier version of the tool, which kept the searcher's "
            "state as a pickle; this version does not load pickles of its own state (one could run code). Start "
            "a new study with --name NEW_NAME; the old one's tables stay readable by `study analyze`."
        )
    rungs = Path(journal_dir) / RUNGS_FILE
    if rungs.is_file():
        read_rungs(rungs)
