"""What the study machinery costs: the embedded Ray, Tune, the searcher, the
scheduler, checkpoints and result files, on top of the trials' own training.

A study of short trials runs one trial at a time with every core, so its wall
time is the trials' training time (the `epoch_s` they report) plus the overhead.
Part of that overhead a study pays once, whatever its size (the trial worker's
start, which imports PyTorch and reads the dataset, and the driver's set-up and
results), part every trial. Two studies, of N and 3N trials, in the same Ray
session separate them: the overhead that grows with the trial count is the cost
per trial, the rest the one-off cost. Ray's own start-up is measured apart. The
trial workers report their peak resident memory (`peak_rss_mb`), read back from
Tune's result files.

The studies show the tool's one-line display (`study.runtime.progress`); one more
N-trial study per repeat shows Ray Tune's own console output instead (`--verbose`),
the two in alternating order, so the display's cost to the driver is measured
against Tune's output in the same run.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import Measured

SPACE = "default"  # 12 cells: the trial count must be a multiple of 12
SIZE_RATIO = 3  # the larger study of each pair has this many times the trials


@dataclass(frozen=True)
class OverheadResult:
    trials: int  # the smaller study's; the larger has SIZE_RATIO times as many
    ray_init_s: float
    wall_s: Measured  # the smaller study's wall time, Ray start-up excluded
    training_s: Measured  # its trials' epoch_s, summed
    per_trial_s: Measured  # overhead per additional trial
    once_s: Measured  # overhead a study pays once, whatever its size
    worker_peak_rss_mb: float
    display_overhead_s: Measured  # the smaller study's overhead with the one-line display
    tune_output_overhead_s: Measured  # ... and with Ray Tune's own console output


def split_overhead(small: tuple[int, float], large: tuple[int, float]) -> tuple[float, float]:
    """(per trial, once) from the overheads (wall minus training) of two study sizes,
    each given as (trials, overhead seconds): a straight line through both."""
    (n_small, small_s), (n_large, large_s) = small, large
    if n_large <= n_small:
        raise ValueError(f"the larger study must have more trials: {n_small} and {n_large}")
    per_trial = (large_s - small_s) / (n_large - n_small)
    return per_trial, small_s - per_trial * n_small


def _peak_rss_mb(experiment: Path) -> float:
    peaks = []
    for result_file in experiment.glob("*/result.json"):
        for line in result_file.read_text().splitlines():
            if line.strip():
                peaks.append(json.loads(line).get("peak_rss_mb", 0.0))
    return max(peaks, default=float("nan"))


def run(data_dir: str | None, trials: int, repeats: int) -> OverheadResult:
    import ray

    from study.runtime.ray_session import worker_runtime_env

    cores = os.cpu_count() or 1
    start = time.perf_counter()
    # The study's own worker environment, as `study.runtime.ray_session.connect` starts Ray.
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, runtime_env=worker_runtime_env())
    ray_init_s = time.perf_counter() - start
    walls, trainings, per_trial, once, rss, display, tune_output = [], [], [], [], [], [], []
    try:
        with tempfile.TemporaryDirectory() as storage:
            for repeat in range(repeats):
                def small_study(verbose: bool) -> _StudyTiming:
                    kind = "tune-output" if verbose else "small"
                    return _study(data_dir, trials, cores, storage, f"overhead-{repeat}-{kind}", repeat, verbose)

                first_tune = repeat % 2 == 1  # alternate which of the two goes first
                with_tune = small_study(verbose=True) if first_tune else None
                small = small_study(verbose=False)
                with_tune = with_tune or small_study(verbose=True)
                large = _study(data_dir, SIZE_RATIO * trials, cores, storage, f"overhead-{repeat}-large", repeat)
                display.append(small.overhead_s)
                tune_output.append(with_tune.overhead_s)
                each, fixed = split_overhead((trials, small.overhead_s), (SIZE_RATIO * trials, large.overhead_s))
                walls.append(small.wall_s)
                trainings.append(small.training_s)
                per_trial.append(each)
                once.append(fixed)
                rss.extend([small.peak_rss_mb, large.peak_rss_mb])
                print(f"  repeat {repeat}: overhead {each:.2f} s per trial, {fixed:.1f} s once; {trials} trials: "
                      f"{small.overhead_s:.1f} s with the display, {with_tune.overhead_s:.1f} s with Tune's output",
                      flush=True)
    finally:
        ray.shutdown()
    return OverheadResult(trials, ray_init_s, Measured.of(walls), Measured.of(trainings), Measured.of(per_trial),
                          Measured.of(once), max(rss), Measured.of(display), Measured.of(tune_output))


@dataclass(frozen=True)
class _StudyTiming:
    wall_s: float
    training_s: float
    peak_rss_mb: float

    @property
    def overhead_s(self) -> float:
        return self.wall_s - self.training_s


def _study(data_dir: str | None, trials: int, cores: int, storage: str, name: str, seed: int,
           verbose: bool = False) -> _StudyTiming:
    from study.tuning.planning import StudyOptions, plan_study
    from study.tuning.run import run_study

    options = StudyOptions(space=SPACE, budget="smoke", num_samples=trials, max_concurrent=1, cpus_per_trial=cores,
                           storage=storage, name=name, data_dir=data_dir, seed=seed)
    start = time.perf_counter()
    experiment, _ = run_study(plan_study(options), verbose=verbose)
    wall = time.perf_counter() - start
    import pandas as pd  # here, like Ray: a GPU machine with only torch and torchvision runs the other benchmarks

    training = pd.read_csv(Path(experiment) / "epochs.csv")["epoch_s"].sum()
    print(f"  study {name}: {trials} trials, wall {wall:.1f} s, training {training:.1f} s", flush=True)
    return _StudyTiming(wall, training, _peak_rss_mb(Path(experiment)))
