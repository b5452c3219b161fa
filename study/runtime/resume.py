"""Resume-or-start, the same for every stage (the search, stage 2, final evaluation).

A stage's Tune state lives in a folder of the experiment, and what it was asked to do
(its plan) in a record file beside it. Running the same command again restores the
Tuner when the folder holds a run of the same plan; a different plan on top of an
existing run is refused with the caller's message, rather than mixed in.
"""

from __future__ import annotations

import json
from typing import Callable

from ray import tune

from study.runtime.results import read_text, write_json
from study.vocabulary.errors import UserError
from study.vocabulary.tables import jsonable


def restore_or_build(path: str, experiment: str, record_file: str, plan: dict, trainable,
                     build_tuner: Callable[[], tune.Tuner], first_record: Callable[[], dict],
                     refuse: Callable[[], UserError]) -> tune.Tuner:
    """`Tuner.restore(path)` when it holds a run whose recorded plan equals `plan`, else a new Tuner.

    `record_file` (in `experiment`) holds the plan under "plan"; a new run writes
    `first_record()` there first. A different recorded plan raises `refuse()`.
    """
    if tune.Tuner.can_restore(path):
        previous = read_text(experiment, record_file)
        recorded = json.loads(previous).get("plan") if previous else None
        if recorded is not None and recorded != jsonable(plan):
            raise refuse()
        print(f"Resuming {path}")
        return tune.Tuner.restore(path, trainable=trainable, resume_errored=False)
    write_json(experiment, record_file, first_record())
    return build_tuner()
