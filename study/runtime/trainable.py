"""The Ray Tune function trainables: what the driver hands Tune to schedule.

The driver never trains, so it never needs PyTorch (importing it takes about 25 s of
CPU and 640 MB on a 2-core machine with the CUDA build). Each entry point imports its
body from `study.runtime.trial_worker` in the trial's worker process, once per process.
`train_trial` serves the search, `train_cv_trial` cross-validation and
`train_final_trial` final evaluation; their docstrings are in `study.runtime.trial_worker`.
`data_dir` (given with `tune.with_parameters`, so a resume passes it anew) is where
this command found the dataset: it overrides the one in a trial's config, which a
resumed trial carries from the run that created it, where the data may have moved.
"""

from __future__ import annotations


def train_trial(config: dict, data_dir: str | None = None) -> None:
    from study.runtime import trial_worker

    trial_worker.train_trial(config, data_dir)


def train_cv_trial(config: dict, configs: dict[str, dict]) -> None:
    from study.runtime import trial_worker

    trial_worker.train_cv_trial(config, configs)


def train_final_trial(config: dict, data_dir: str | None = None) -> None:
    from study.runtime import trial_worker

    trial_worker.train_final_trial(config, data_dir)
