"""The Ray Tune function trainable: the only place that meets `tune.report`.

It turns Tune's flat config into a validated `TrialConfig`, trains epoch by epoch
with the plain functions of `study.training`, and reports every epoch with a
checkpoint. Given a checkpoint (a retried or resumed trial) it continues from it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from ray import tune

from study.config import TrialConfig
from study.device_data import load_split
from study.training import resolve_device, run_epoch, start_training, steps_per_epoch

CHECKPOINT_FILE = "state.pt"


def _use_assigned_cpus() -> None:
    # Ray gives each trial a CPU share; match torch's thread pool to it so that
    # concurrent trials don't oversubscribe the cores.
    try:
        cpus = int(float(tune.get_context().get_trial_resources().required_resources.get("CPU", 1)))
    except Exception:  # outside a Tune session, e.g. called directly in a test
        cpus = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(max(1, cpus))


def train_trial(config: dict) -> None:
    """Train one trial to `max_epochs`, reporting metrics and a checkpoint every epoch.

    A NaN/inf loss raises `DivergedError`: Tune records the trial as errored and
    the study goes on.
    """
    cfg = TrialConfig.from_flat(config)
    _use_assigned_cpus()
    device = resolve_device(cfg.device)
    split = load_split(cfg.data, device)  # cached per worker process
    state = start_training(cfg, steps_per_epoch(split.n_train, cfg.data.batch_size), device)

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            saved = torch.load(Path(directory) / CHECKPOINT_FILE, map_location=device, weights_only=False)
        state.load_state_dict(saved)

    while state.epoch < cfg.max_epochs:
        metrics = run_epoch(state, split)
        with tempfile.TemporaryDirectory() as directory:
            torch.save(state.state_dict(), Path(directory) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
