"""Replicate sets: the names and places of an experiment's stage-2 runs (docs/command-line.md, 'Replicate sets').

A replicate set is one stage-2 run over the selected configurations: seeds (what
`study run` ends with) or K folds (`study cv --folds K`), with its own selection and
count. One experiment may hold several side by side, each resumed and locked on its
own, none overwriting another:

- the experiment's own stage 2, in the place it always had: `cv/` (Ray Tune's state)
  beside `cv.csv`, `cv_summary.csv`, `cv_tests.csv` and `cv.json`: the first set made
  in the experiment (`study run`'s seeds, or the first `study cv` after a
  `--search-only` study), and so the one any experiment from before sets had names holds;
- every other set in `replicates/NAME/`: the same four files, and Tune's state in
  `replicates/NAME/tune/`.

A set's name says what it is, so the same `study cv` options always find the same
set: ``seeds-5``, ``folds-3``, ``top2-seeds-5`` (the 2 best of every cell),
``overall4-folds-5`` (the 4 best of the study), with ``-train1500`` or ``-epochs10``
when `--train-size` or `--max-epochs` changed the study's own. Pure Python.
"""

from __future__ import annotations

import re

SETS_DIR = "replicates"  # the folder of the experiment that holds the named sets
TUNE_FOLDER = "tune"  # Ray Tune's state inside a named set's folder
KIND_WORDS = {"seed": "seeds", "fold": "folds"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def set_name(kind: str, n: int, *, top_k: int | None = None, overall: int | None = None,
             train_size: int | None = None, max_epochs: int | None = None) -> str:
    """The name of the set these `study cv` options make (see the module docstring)."""
    if kind not in KIND_WORDS:
        raise ValueError(f"replicate kind {kind!r} is not one of {', '.join(KIND_WORDS)}")
    prefix = f"top{top_k}-" if top_k is not None else (f"overall{overall}-" if overall is not None else "")
    name = f"{prefix}{KIND_WORDS[kind]}-{n}"
    if train_size is not None:
        name += f"-train{train_size}"
    if max_epochs is not None:
        name += f"-epochs{max_epochs}"
    return name


def name_from_record(record: dict) -> str | None:
    """A set's name from its cv.json; a record from before sets had names gets the name its plan implies.

    None when the record says neither (a hand-made or damaged file).
    """
    if isinstance(record.get("replicate_set"), str):
        return record["replicate_set"]
    plan = record.get("plan") or {}
    replicates = plan.get("replicates") or {}
    kind, n = replicates.get("kind"), replicates.get("n")
    if kind not in KIND_WORDS or not isinstance(n, int):
        return None
    # Older records name the selection in words only: "the 2 best completed trials of every cell".
    words = str(plan.get("selection", ""))
    top_k = _count(r"the (\d+) best completed trials of every cell", words)
    overall = _count(r"the (\d+) best completed trials of the study", words)
    return set_name(kind, n, top_k=top_k, overall=overall)


def name_from_table(kinds, replicates) -> str:
    """The name of a hand-made cv.csv without cv.json: its kind and its number of replicates."""
    kinds = {str(k) for k in kinds if isinstance(k, str)}
    count = len({r for r in replicates if r == r})  # NaN is not a replicate
    if len(kinds) == 1 and kinds <= set(KIND_WORDS) and count:
        return set_name(kinds.pop(), count)
    return "cv"


def check_set_name(name: str) -> str:
    """A set name as given on the command line; a `ValueError` naming it when it cannot be one."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"replicate set name {name!r} is not a set name (lower-case letters, digits and '-', "
            "e.g. seeds-5 or folds-3); the report's 'Replicate sets' section lists an experiment's sets"
        )
    return name


def _count(pattern: str, words: str) -> int | None:
    found = re.search(pattern, words)
    return int(found.group(1)) if found else None


def replicate_key(config_id: str, replicate: int) -> str:
    """How a stage-2 run's `configs` name one training: a configuration and its replicate."""
    return f"{config_id}/{replicate}"
