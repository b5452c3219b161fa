"""The private Ray Tune API the per-cell scheduler relies on, in one place (tested with Ray 2.60).

`study.tuning.cell_scheduler` runs one `ASHAScheduler` per cell and persists each
cell's rungs so a resumed study keeps them. ASHA keeps its rungs in
`_brackets[i]._rungs` (a list of ``(milestone, {trial_id: recorded metric})``,
highest milestone first) and the trials it knows in `_trial_info`; no public API
reads or restores them. `tests/study/tuning/test_private_apis.py` pins what these
helpers rely on, and pyproject.toml bounds Ray to the versions tested.
"""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler


def rungs(asha: ASHAScheduler) -> list[tuple[float, dict]]:
    """The single bracket's rungs, highest milestone first: (milestone, {trial_id: recorded metric}).

    The dicts are ASHA's own: updating one changes what ASHA compares against.
    """
    return asha._brackets[0]._rungs


def rung_sizes(asha: ASHAScheduler) -> tuple[int, ...]:
    """How many results each rung of each bracket has recorded (a change means the state moved)."""
    return tuple(len(recorded) for bracket in asha._brackets for _, recorded in bracket._rungs)


def tracks(asha: ASHAScheduler, trial_id: str) -> bool:
    """Whether ASHA was told about the trial (on_trial_add) and still holds it."""
    return trial_id in asha._trial_info


def describe(asha: ASHAScheduler) -> str:
    """ASHA's own one-line description of every bracket."""
    return " | ".join(bracket.debug_str() for bracket in asha._brackets)
