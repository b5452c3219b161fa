"""The private Optuna API the searcher relies on, in one place (tested with Optuna 5.0).

`study.tuning.cell_search` tells Optuna about trials that Ray Tune runs: it stores
intermediate values by step on a trial it did not create through `optuna.Trial`,
reads a trial back by number, and marks orphaned trials. Optuna's public API offers
none of that for a trial identified by its number, so these helpers reach into
`Study._storage` and `Study._study_id` (and `FrozenTrial._trial_id`). A resumed
search continues each sampler's random sequence, which Optuna keeps only in private
attributes (`LazyRandomState` objects inside the sampler and the samplers it
holds); `random_states` and `set_random_states` read and set them as JSON data;
`tests/study/tuning/test_private_apis.py` pins what they rely on, and
pyproject.toml bounds Optuna to the versions tested.
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.samplers._lazy_random_state import LazyRandomState


def _internal_id(study: optuna.Study, number: int) -> int:
    return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)


def trial_by_number(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """The trial `number` of `study`, as stored now."""
    return study._storage.get_trial(_internal_id(study, number))


def set_intermediate_value(study: optuna.Study, number: int, step: int, value: float) -> None:
    """What `optuna.Trial.report(value, step)` does, but a repeated step keeps the newest value.

    Raises `optuna.exceptions.UpdateFinishedTrialError` when the trial is finished.
    """
    study._storage.set_trial_intermediate_value(_internal_id(study, number), int(step), value)


def set_user_attr(study: optuna.Study, trial: optuna.trial.FrozenTrial, key: str, value) -> None:
    """Set a user attribute on a running trial read back from the storage."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


def _generators(sampler: optuna.samplers.BaseSampler) -> list[np.random.RandomState]:
    """The random generators of `sampler` and of the samplers inside it, in attribute-name order."""
    out = []
    for _, value in sorted(vars(sampler).items()):
        if isinstance(value, LazyRandomState):
            out.append(value.rng)
        elif isinstance(value, optuna.samplers.BaseSampler):
            out += _generators(value)
    return out


def random_states(sampler: optuna.samplers.BaseSampler) -> list[list]:
    """Where each of the sampler's random generators stands, as JSON-ready lists."""
    out = []
    for rng in _generators(sampler):
        kind, keys, pos, has_gauss, cached = rng.get_state(legacy=True)
        out.append([kind, keys.tolist(), int(pos), int(has_gauss), float(cached)])
    return out


def set_random_states(sampler: optuna.samplers.BaseSampler, states: list[list]) -> None:
    """Put back what `random_states` returned; a ValueError when they do not fit this sampler."""
    generators = _generators(sampler)
    if len(generators) != len(states):
        raise ValueError(f"{len(states)} random states saved for a sampler with {len(generators)} generators")
    for rng, (kind, keys, pos, has_gauss, cached) in zip(generators, states):
        rng.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
