"""The search's own state files: JSON, read with a check, and checked before a resume starts.

Two files are the project's, not Ray's: the searcher's state (`CellSearcher.save`,
``searcher-state-<session>.json`` in the experiment directory: routing state and a
copy of each cell's Optuna journal) and the ASHA rungs (`CellScheduler`,
``asha_rungs.json`` beside the journals). Both are plain JSON, so a planted file
can hold wrong numbers but never runs code. (Ray's own files, ``tuner.pkl`` and the
search generator's state, are Ray's pickles: trusted input, as docs/experiment-directory.md says.)

`study.tuning.resume_check.check_before_resume` reads both before `Tuner.restore`, so
a broken file stops the command with one paragraph that names it and says how to
recover, instead of a restore that fails half-way or starts the experiment over.

The searcher's checkpoint holds the journals and the rungs as they were when Tune
saved the experiment, and a resume puts both back before Tune replays what came
after: one file, written whole, is the state a resume trusts.

An experiment in remote storage (``s3://...``) holds the whole state too. The driver
works on a local copy of the journals and rungs (Optuna's journal needs a local
file); each searcher checkpoint also publishes that copy into ``optuna/`` beside
itself (`publish_journals`), in the folder Tune syncs to the experiment, so
``aws s3 sync`` brings back what optuna-dashboard reads; `fetch_journals` makes the
local copy that folder again before a run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from study.vocabulary.storage import files_in, read_text, write_text
from study.vocabulary.errors import UserError
from study.vocabulary.tables import JOURNALS_DIR

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
    except (OSError, UnicodeDecodeError) as exc:
        raise StateFileError(f"{what} {path} cannot be read ({type(exc).__name__}: {exc}); {recovery}") from None
    return parse_state(text, state_format, f"{what} {path}", recovery)


def parse_state(text: str, state_format: str, what: str, recovery: str) -> dict:
    """`text` as a state of `state_format`; `StateFileError` naming `what` otherwise."""
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(f"{what} cannot be read ({type(exc).__name__}: {exc}); {recovery}") from None
    if not isinstance(state, dict) or state.get("format") != state_format:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise StateFileError(f"{what} is not a {state_format!r} state file (format {found!r}); {recovery}")
    return state


def newest_searcher_state(experiment: str | Path) -> str | None:
    """The file `Tuner.restore` gives the searcher: Tune picks the greatest name."""
    names = files_in(str(experiment), SEARCHER_FILE_PATTERN.format("*"))
    return f"{experiment}/{names[-1]}" if names else None


def publish_journals(files: dict[str, str], checkpoint_dir: str | Path) -> None:
    """Make `checkpoint_dir`/optuna hold exactly `files` (file name -> text: the journals and the rungs the
    searcher checkpoint beside it holds), for Tune to upload.

    The copy is what optuna-dashboard reads from a synced experiment and what a resume
    on a new head node starts its local copy from; what the resume trusts is the
    searcher checkpoint itself (`CellSearcher.save`). Each file is replaced whole, so an
    upload still running from the previous checkpoint reads either the old file or the
    new one, never a half-written one.
    """
    _mirror(sorted(files), files.__getitem__, Path(checkpoint_dir) / JOURNALS_DIR)


def unpublish_journals(journal_dir: str | Path, checkpoint_dir: str | Path) -> None:
    """Remove a copy that an earlier, remote run of the same Tune session left beside the checkpoint: for a
    local experiment Tune would upload it over the live journals. Never the journals themselves."""
    copy = Path(checkpoint_dir) / JOURNALS_DIR
    if copy.is_dir() and copy.resolve() != Path(journal_dir).resolve():
        shutil.rmtree(copy)


def fetch_journals(experiment_uri: str, journal_dir: str | Path) -> int:
    """Make the driver's local copy of a remote experiment's journals and rungs the experiment's own.

    `journal_dir` becomes a copy of ``EXPERIMENT/optuna/`` (empty for a new experiment),
    so a new experiment never inherits an old copy, and a resume on any head node
    starts from what the experiment last published (the searcher's checkpoint then
    puts back the journals and rungs it holds). Returns how many files were fetched.
    """
    remote = f"{experiment_uri}/{JOURNALS_DIR}"
    names = files_in(remote)
    _mirror(names, lambda name: read_text(remote, name) or "", Path(journal_dir))
    return len(names)


def _mirror(names: list[str], content, target: Path) -> None:
    """`target` holds exactly the files `names`, each `content(name)`, each written whole."""
    target.mkdir(parents=True, exist_ok=True)
    for stale in set(files_in(str(target))) - set(names):
        (target / stale).unlink()
    for name in names:
        write_text(str(target), name, content(name))
