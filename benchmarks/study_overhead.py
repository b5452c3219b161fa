"""What the study machinery costs per trial: the embedded Ray, Tune, the searcher,
the scheduler, checkpoints and result files, on top of the trials' own training.

A study of short trials runs one trial at a time with every core, so its wall
time is the trials' training time (the `epoch_s` they report) plus the overhead;
the difference divided by the number of trials is the overhead per trial. Ray's
start-up is measured apart: a study pays it once. The trial workers report their
peak resident memory (`peak_rss_mb`), read back from Tune's result files.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.common import Measured

SPACE = "default"  # 12 cells: the trial count must be a multiple of 12


@dataclass(frozen=True)
class OverheadResult:
    trials: int
    ray_init_s: float
    wall_s: Measured  # study wall time, Ray start-up excluded
    training_s: Measured  # sum of the trials' epoch_s
    per_trial_s: Measured  # (wall - training) / trials
    worker_peak_rss_mb: float


def _peak_rss_mb(experiment: Path) -> float:
    peaks = []
    for result_file in experiment.glob("*/result.json"):
        for line in result_file.read_text().splitlines():
            if line.strip():
                peaks.append(json.loads(line).get("peak_rss_mb", 0.0))
    return max(peaks, default=float("nan"))


def run(data_dir: str | None, trials: int, repeats: int) -> OverheadResult:
    import ray

    from study.planning import StudyOptions, plan_study
    from study.tuning import run_study

    cores = os.cpu_count() or 1
    start = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    ray_init_s = time.perf_counter() - start
    walls, trainings, per_trial, rss = [], [], [], []
    try:
        with tempfile.TemporaryDirectory() as storage:
            for repeat in range(repeats):
                options = StudyOptions(
                    space=SPACE, budget="smoke", num_samples=trials, max_concurrent=1, cpus_per_trial=cores,
                    storage=storage, name=f"overhead-{repeat}", data_dir=data_dir, seed=repeat,
                )
                start = time.perf_counter()
                experiment, _ = run_study(plan_study(options))
                wall = time.perf_counter() - start
                training = pd.read_csv(Path(experiment) / "epochs.csv")["epoch_s"].sum()
                walls.append(wall)
                trainings.append(training)
                per_trial.append((wall - training) / trials)
                rss.append(_peak_rss_mb(Path(experiment)))
                print(f"  study {repeat}: {trials} trials, wall {wall:.1f} s, training {training:.1f} s, "
                      f"overhead {per_trial[-1]:.2f} s/trial", flush=True)
    finally:
        ray.shutdown()
    return OverheadResult(trials, ray_init_s, Measured.of(walls), Measured.of(trainings), Measured.of(per_trial),
                          max(rss))
