"""Resume-or-start, the same for every stage (the search, stage 2, final evaluation).

A stage's Tune state lives in a folder of the experiment, and what it was asked to do
(its plan) in a record file beside it. Running the same command again restores the
Tuner when the folder holds a run of the same plan; a different plan on top of an
existing run is refused with the caller's message, naming what differs, rather than
mixed in. Plans are compared by content: where the experiment, the dataset or the
space file lie does not count.
"""

from __future__ import annotations

import json
import pickle
from typing import Callable

from ray import tune

from study.vocabulary.storage import files_in, read_bytes, read_text, write_bytes, write_json
from study.vocabulary.errors import UserError
from study.vocabulary.tables import jsonable


# Where things are, not what they are: a study moved, copied, synced back from cloud
# storage or run from a fresh clone resumes; the dataset itself is compared by its
# fingerprint (`study.data.datasets.fingerprint`), which the plans carry.
LOCATION_KEYS = frozenset({"data_dir", "journal_dir", "source"})
# Added to the plans after runs were recorded without them: compared only where recorded.
ADDED_KEYS = frozenset({"dataset"})
# Settings added inside a plan's parts (its budget, its param_space) since experiments were first recorded:
# a record without one was made before it existed, and ran as its default (precision: fp32, as
# `TrialConfig.precision` still defaults to), so the comparison skips it there.
ADDED_SETTINGS = frozenset({"precision"})
MAX_LISTED = 6


def restore_or_build(path: str, experiment: str, record_file: str, plan: dict, trainable,
                     build_tuner: Callable[[], tune.Tuner], first_record: Callable[[], dict],
                     start_over: str, error: type[UserError] = UserError, resume_errored: bool = False) -> tune.Tuner:
    """`Tuner.restore(path)` when it holds a run whose recorded plan matches `plan`, else a new Tuner.

    `record_file` (in `experiment`) holds the plan under "plan"; a new run writes
    `first_record()` there first. Plans are compared without `LOCATION_KEYS`; a
    difference raises `error`, naming each differing setting with its recorded and
    its current value. So does a record or Tune state file that cannot be read, before
    Tune could start the stage over. Both messages end with `start_over`, what the
    user can do instead of resuming (e.g. "start a new study with --name NEW_NAME").
    `resume_errored`: trials that ended in an error train again from their last checkpoint (stage 2 and final
    evaluation, whose every training counts; not the search, whose searcher has already been told of the error).
    """
    if tune.Tuner.can_restore(path):
        recorded = _recorded_plan(experiment, record_file, start_over, error)
        if recorded is not None:
            current = {k: v for k, v in jsonable(plan).items() if k in recorded or k not in ADDED_KEYS}
            found = differences(comparable(recorded), comparable(without_added_settings(current, recorded)))
            if found:
                raise error(f"{path} was started with different settings ({'; '.join(found)}); run it with the "
                            f"same options to resume it, or {start_over}")
        check_snapshot(path, start_over, error)
        keep_tuner_state_whole(path)
        print(f"Resuming {path}")
        try:
            return tune.Tuner.restore(path, trainable=trainable, resume_errored=resume_errored)
        except (EOFError, pickle.UnpicklingError) as exc:  # Tune's own pickle, the only state it cannot do without
            raise unreadable(f"{path}/tuner.pkl, Ray Tune's record of this run,", exc, start_over, error) from None
    write_json(experiment, record_file, first_record())
    return build_tuner()


TUNER_STATE, TUNER_STATE_COPY = "tuner.pkl", "tuner.pkl.whole"


def keep_tuner_state_whole(path: str) -> None:
    """Keep a whole copy of Tune's tuner.pkl beside it, and put it back when tuner.pkl was cut short.

    A resumed run's Tune copies its staging folder, tuner.pkl included, back into the
    experiment at every snapshot, in place: a kill during that copy leaves tuner.pkl
    cut short (seen once in the resume test, after a SIGKILL of a resumed `study
    final`), and without it the stage could never resume. The file's content never
    changes after Tune first writes it, so the copy taken at a resume is the same file.
    """
    state = read_bytes(path, TUNER_STATE)
    if _whole_pickle(state):
        if read_bytes(path, TUNER_STATE_COPY) != state:
            write_bytes(path, TUNER_STATE_COPY, state)
        return
    copy = read_bytes(path, TUNER_STATE_COPY)
    if _whole_pickle(copy):
        write_bytes(path, TUNER_STATE, copy)
        print(f"Note: {path}/{TUNER_STATE} was cut short (a kill while Ray Tune copied it); put back from "
              f"{TUNER_STATE_COPY}")


def _whole_pickle(data: bytes | None) -> bool:
    return bool(data) and data.endswith(b".")  # every whole pickle ends with its STOP opcode, "."


def unreadable(what: str, exc: Exception, start_over: str, error: type[UserError]) -> UserError:
    return error(f"{what} cannot be read ({type(exc).__name__}: {exc}); nothing was changed. Put back a copy of it "
                 f"(e.g. `aws s3 sync` again), or {start_over}")


def _recorded_plan(experiment: str, record_file: str, start_over: str, error: type[UserError]) -> dict | None:
    """The plan in the record file; None when there is no record file (or, written by an early version, no plan)."""
    try:
        previous = read_text(experiment, record_file)
        if previous is None:
            return None
        record = json.loads(previous)
        if not isinstance(record, dict):
            raise ValueError(f"it holds a JSON {type(record).__name__}, not an object")
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise unreadable(f"{experiment}/{record_file}, the settings this run was started with,", exc, start_over,
                         error) from None
    return record.get("plan")


def check_snapshot(path: str, start_over: str, error: type[UserError]) -> None:
    """Tune's newest experiment snapshot in `path` is whole: Tune would log a broken one and start the stage over."""
    names = files_in(path, "experiment_state-*.json")
    if not names:
        return
    try:
        snapshot = json.loads(read_text(path, names[-1]) or "")
        if not isinstance(snapshot.get("trial_data"), list):
            raise ValueError("it has no list of trials")
    except (json.JSONDecodeError, AttributeError, ValueError) as exc:
        older = f" (moving it away resumes from {names[-2]}, the one before)" if len(names) > 1 else ""
        raise unreadable(f"{path}/{names[-1]}, Ray Tune's newest snapshot of this run{older},", exc, start_over,
                         error) from None


def without_added_settings(current, recorded):
    """`current` without the `ADDED_SETTINGS` that the matching dict of `recorded` lacks, at any depth."""
    if isinstance(current, dict) and isinstance(recorded, dict):
        return {k: without_added_settings(v, recorded.get(k)) for k, v in current.items()
                if k in recorded or k not in ADDED_SETTINGS}
    return current


def comparable(record):
    """`record` without the keys that say where things are."""
    if isinstance(record, dict):
        return {k: comparable(v) for k, v in record.items() if k not in LOCATION_KEYS}
    if isinstance(record, list):
        return [comparable(v) for v in record]
    return record


def differences(recorded, current, where: str = "") -> list[str]:
    """'budget.max_epochs: 3 when started, 5 now' for each setting that differs (the first few)."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        out = []
        for key in [*recorded, *(k for k in current if k not in recorded)]:
            name = f"{where}.{key}" if where else str(key)
            if key not in current:
                out.append(f"{name}: {_short(recorded[key])} when started, absent now")
            elif key not in recorded:
                out.append(f"{name}: absent when started, {_short(current[key])} now")
            else:
                out += differences(recorded[key], current[key], name)
        return out[:MAX_LISTED]
    if isinstance(recorded, list) and isinstance(current, list) and len(recorded) == len(current):
        out = []
        for i, (a, b) in enumerate(zip(recorded, current)):
            out += differences(a, b, f"{where}[{i}]")
        return out[:MAX_LISTED]
    if recorded != current:
        return [f"{where or 'plan'}: {_short(recorded)} when started, {_short(current)} now"]
    return []


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
