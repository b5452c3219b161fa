"""The Ray Tune trainables' bodies, run in the trial's worker: the only place that meets `tune.report`.

`study.runtime.trainable` holds the entry points Tune schedules; they import this module in
the worker, so the driver never imports PyTorch. Each turns Tune's flat config into
a validated `TrialConfig`, trains epoch by epoch with the plain functions of
`study.training.loop`, and reports every epoch with a checkpoint. Given a checkpoint (a
retried or resumed trial) it continues from it. `train_trial` serves the search,
`train_cv_trial` cross-validation (the same training, validated on one fold) and
`train_final_trial` final evaluation (the whole training set, then the test set once).

A trial whose training loss becomes NaN or infinite reports that epoch (flagged
`diverged`) and returns normally: Tune does not retry it (a retry would diverge
again) and the tables record its status as `diverged`, not `error`. Checkpoints
are loaded with ``weights_only=True``: a checkpoint file runs no code.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
from pathlib import Path

import torch
from ray import tune

from study.vocabulary.config import TrialConfig
from study.data.device_data import DeviceSplit, load_split
from study.training.final_eval import train_and_test
from study.runtime.storage_full import install_whole_file_uploads
from study.vocabulary.replicate_sets import replicate_key
from study.training.loop import TrainingState, resolve_device, run_epoch, start_training, steps_per_epoch

CHECKPOINT_FILE = "state.pt"


def _assigned_resources() -> dict:
    try:
        return dict(tune.get_context().get_trial_resources().required_resources)
    except Exception:  # outside a Tune session, e.g. called directly in a test
        return {"CPU": float(os.environ.get("OMP_NUM_THREADS", "1"))}


def _use_assigned_resources(device: torch.device) -> None:
    """Keep a trial inside its share of the machine."""
    resources = _assigned_resources()
    # Match torch's thread pool to the CPU share, so concurrent trials don't
    # oversubscribe the cores.
    torch.set_num_threads(max(1, int(resources.get("CPU", 1))))
    # A fractional GPU (e.g. 0.25) shares the device with other trials: cap this
    # process's CUDA allocations at its share, so one trial cannot starve the rest.
    gpus = float(resources.get("GPU", 0))
    if device.type == "cuda" and 0 < gpus < 1:
        torch.cuda.set_per_process_memory_fraction(gpus, device)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def with_data_dir(config: dict, data_dir: str | None) -> dict:
    """`config` reading the dataset from `data_dir` (this command's), when given."""
    return {**config, "data_dir": data_dir} if data_dir else config


def train_trial(config: dict, data_dir: str | None = None) -> None:
    """Train one trial to `max_epochs`, reporting metrics and a checkpoint every epoch.

    After an epoch flagged `diverged` (NaN/inf training loss) it reports that epoch and
    returns: the trial ends normally, before its budget, and the study goes on.
    """
    install_whole_file_uploads()  # a checkpoint cut short by a full disk never looks whole
    cfg = TrialConfig.from_flat(with_data_dir(config, data_dir))
    state, split = _start_or_resume(cfg)
    while state.epoch < cfg.max_epochs and not state.diverged:
        _report(run_epoch(state, split), state)


def train_cv_trial(config: dict, configs: dict[str, dict]) -> None:
    """One replicate (a seed, or a CV fold) of a picked configuration, validated after its last epoch.

    Tune's config holds only `config_id` and `replicate` (short trial names, small
    state); `configs`, passed with `tune.with_parameters`, maps
    `study.vocabulary.replicate_sets.replicate_key(config_id, replicate)` to the training's flat
    config (its seed or its fold set). The score is val_acc after the last epoch and
    nothing is chosen per epoch, so the validation images (12,000 in a fold of 5,
    more than the quick budget's 1,500-image training subset) are evaluated once
    rather than every epoch.

    A diverged epoch ends it as in `train_trial` (that epoch, not validated, is its last report).
    """
    install_whole_file_uploads()  # a checkpoint cut short by a full disk never looks whole
    cfg = TrialConfig.from_flat(configs[replicate_key(config["config_id"], config["replicate"])])
    state, split = _start_or_resume(cfg)
    while state.epoch < cfg.max_epochs and not state.diverged:
        _report(run_epoch(state, split, validate=state.epoch + 1 == cfg.max_epochs), state)


def _start_or_resume(cfg: TrialConfig) -> tuple[TrainingState, DeviceSplit]:
    """Model, optimizer and data for `cfg`, from the checkpoint Tune hands a resumed trial if any."""
    device = resolve_device(cfg.device)
    _use_assigned_resources(device)
    split = load_split(cfg.data, device)  # cached per worker process
    state = start_training(cfg, steps_per_epoch(split.n_train, cfg.data.batch_size), device)
    saved = _saved_state(device)
    if saved is not None:
        state.load_state_dict(saved)
    return state, split


def train_final_trial(config: dict, data_dir: str | None = None) -> None:
    """Train one seed of the chosen configuration on the training set, then test it once.

    The last report carries `test_loss` and `test_acc` (see `study.training.final_eval`).
    """
    install_whole_file_uploads()  # a checkpoint cut short by a full disk never looks whole
    cfg = TrialConfig.from_flat(with_data_dir(config, data_dir))
    device = resolve_device(cfg.device)
    _use_assigned_resources(device)
    train_and_test(cfg, device, checkpoint=_saved_state(device), on_epoch=_report)


def _saved_state(device: torch.device) -> dict | None:
    """The state of the checkpoint Tune hands a retried or resumed trial, if any.

    `weights_only=True`: the file is unpickled with PyTorch's restricted loader, which
    builds tensors, numbers, strings, lists and dicts only (what `TrainingState.state_dict`
    holds) and refuses anything that would run code.
    """
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return torch.load(Path(directory) / CHECKPOINT_FILE, map_location=device, weights_only=True)


# A checkpoint is written to a temporary folder and copied to the experiment by Tune. A
# worker killed in between leaves its folder behind; they are named by the writer's
# pid, and each new one removes those of processes that have ended.
STAGING_PREFIX = "bn-dropout-checkpoint-"


def _report(metrics: dict, state) -> None:
    """Report one epoch's metrics with a checkpoint of `state` (a `TrainingState`)."""
    remove_abandoned_staging()
    with tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{os.getpid()}-") as directory:
        torch.save(state.state_dict(), Path(directory) / CHECKPOINT_FILE)
        # peak_rss_mb: a diagnostic the benchmarks read back from Tune's result files.
        metrics = {**metrics, "peak_rss_mb": _peak_rss_mb()}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def remove_abandoned_staging(root: str | None = None) -> None:
    """Delete checkpoint folders left in the temporary directory by processes of this host that have ended."""
    for path in Path(root or tempfile.gettempdir()).glob(f"{STAGING_PREFIX}*-*"):
        pid = path.name[len(STAGING_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether a process of this host with that pid runs (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
