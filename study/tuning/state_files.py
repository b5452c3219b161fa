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

An experiment in remote storage (``s3://...``) holds the whole state too. The driver
works on a local copy of the journals and rungs (Optuna's journal needs a local
file); each searcher checkpoint publishes that copy into ``optuna/`` beside itself
(`publish_journals`), in the folder Tune syncs to the experiment, so the remote
``EXPERIMENT/optuna/`` always matches the experiment's last saved state; and
`fetch_journals` makes the local copy that folder again before a run, so a resume on
a new head node keeps every cell's rungs and ``aws s3 sync`` brings back what
optuna-dashboard reads.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from study.runtime.results import files_in, read_text, write_text
from study.vocabulary.errors import UserError
from study.vocabulary.tables import JOURNALS

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
    """The state in `path` (local or a URI), checked to be JSON of `state_format`; `StateFileError` otherwise."""
    try:
        text = read_text(os.path.dirname(str(path)), os.path.basename(str(path)))
        if text is None:
            raise FileNotFoundError(f"no such file: {path}")
        state = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateFileError(f"{what} {path} cannot be read ({type(exc).__name__}: {exc}); {recovery}") from None
    if not isinstance(state, dict) or state.get("format") != state_format:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise StateFileError(f"{what} {path} is not a {state_format!r} state file (format {found!r}); {recovery}")
    return state


def newest_searcher_state(experiment: str | Path) -> str | None:
    """The file `Tuner.restore` gives the searcher: Tune picks the greatest name."""
    names = files_in(str(experiment), SEARCHER_FILE_PATTERN.format("*"))
    return f"{experiment}/{names[-1]}" if names else None


def check_before_resume(experiment: str | Path, journal_dir: str | Path) -> None:
    """Read the searcher state and the ASHA rungs; raise `StateFileError` if one is broken."""
    from study.tuning.cell_scheduler import read_rungs
    from study.tuning.cell_search import read_searcher_state

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


def publish_journals(journal_dir: str | Path, checkpoint_dir: str | Path) -> None:
    """Copy every file of `journal_dir` (journals and rungs) into `checkpoint_dir`/optuna, replacing what was there.

    The searcher calls this, on the driver's one thread, as it writes a checkpoint for
    an experiment in remote storage: no journal grows during the copy, and Tune
    uploads the checkpoint's folder whole, so the remote copy is one moment's state.
    """
    target = Path(checkpoint_dir) / JOURNALS
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    source = Path(journal_dir)
    for name in files_in(str(source)):
        shutil.copyfile(source / name, target / name)


def fetch_journals(experiment_uri: str, journal_dir: str | Path) -> int:
    """Make the driver's local copy of a remote experiment's journals and rungs the experiment's own.

    `journal_dir` is emptied, then filled from ``EXPERIMENT/optuna/`` (empty for a new
    experiment), so a resume on any head node starts from the state the experiment
    last saved, and a new experiment never inherits an old copy. Returns how many
    files were fetched.
    """
    local = Path(journal_dir)
    shutil.rmtree(local, ignore_errors=True)
    local.mkdir(parents=True)
    remote = f"{experiment_uri}/{JOURNALS}"
    names = files_in(remote)
    for name in names:
        (local / name).write_text(read_text(remote, name) or "")
    return len(names)
