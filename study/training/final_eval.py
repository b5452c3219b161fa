"""Final evaluation as plain functions (no Ray): train on the training set, test once.

`train_and_test` is the only training code that touches the test set: it reads it
through `datasets.load_test_arrays` (via `device_data.load_full_train_and_test`)
and evaluates on it once, after the last epoch. Training never looks at the test
images, so nothing is chosen on them.

A run whose training loss becomes NaN or infinite stops after that epoch (flagged
`diverged`) and is not tested: a diverged model's test accuracy is no result, and
the test set is read for trained models only.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from study.vocabulary.config import TrialConfig
from study.data.device_data import DeviceSplit, load_full_train_and_test
from study.data.split import stratified_subset
from study.training.loop import (
    TrainingState,
    bn_reestimated,
    resolve_device,
    run_epoch,
    scored,
    start_training,
    steps_per_epoch,
    train_eval_metrics,
)


def final_split(cfg: TrialConfig, device: torch.device) -> DeviceSplit:
    """All training images (or a stratified subset of `cfg.data.train_size`) as `train_*`,
    the 10k test images as `val_*`."""
    data = load_full_train_and_test(cfg.data.data_dir, device)
    size = cfg.data.train_size
    if size is None:
        return data
    if size > data.n_train:
        raise ValueError(
            f"train_size={size} exceeds the {data.n_train} training images; "
            f"choose a --train-size of at most {data.n_train} (or leave it out to train on all)"
        )
    keep = stratified_subset(data.train_y.cpu().numpy(), np.arange(data.n_train), size, cfg.data.split_seed)
    index = torch.from_numpy(keep).to(data.device)
    return DeviceSplit(data.train_x[index], data.train_y[index], data.val_x, data.val_y, keep, None)


def test_metrics(state: TrainingState, split: DeviceSplit) -> dict:
    """test_loss, test_acc, the calibration of the test predictions (test_ece, test_conf_wrong: see
    `study.training.mechanism`), and train_eval_loss, train_eval_acc (eval mode, the fixed training
    images of `study.training.loop.TRAIN_EVAL_SIZE`) to set the test loss against, with the variance
    shift measured on them. test_acc_flip, test_loss_flip: the same model, each test image scored by the
    mean of its and its mirror image's class probabilities (`study.training.loop.evaluate`'s
    flip_average). A model with BN is tested once more with its BN statistics re-estimated
    (`study.training.loop.bn_reestimated`): test_acc_bn_reestimated, test_ece_bn_reestimated.
    Every number comes from this one evaluation after the last epoch: nothing is chosen between them."""
    test = scored(state.model, split.val_x, split.val_y, state.numerics)
    flipped = scored(state.model, split.val_x, split.val_y, state.numerics, flip_average=True)
    metrics = {**train_eval_metrics(state, split), "test_loss": test["loss"], "test_acc": test["acc"],
               "test_ece": test["ece"], "test_conf_wrong": test["conf_wrong"],
               "test_loss_flip": flipped["loss"], "test_acc_flip": flipped["acc"]}
    reestimated = bn_reestimated(state, split)
    if reestimated is not None:
        after = scored(reestimated, split.val_x, split.val_y, state.numerics)
        metrics.update(test_acc_bn_reestimated=after["acc"], test_ece_bn_reestimated=after["ece"])
    return metrics


def train_and_test(
    cfg: TrialConfig,
    device: torch.device | None = None,
    checkpoint: dict | None = None,
    on_epoch: Callable[[dict, TrainingState], None] | None = None,
) -> dict:
    """Train `cfg` for `cfg.max_epochs` epochs from scratch (or from `checkpoint`), then test once.

    `on_epoch(metrics, state)` is called after every epoch (the trainable reports and
    checkpoints there); the last epoch's metrics carry `test_loss` and `test_acc` (and
    train_eval_loss, train_eval_acc). Returns the last epoch's metrics. A diverged epoch
    (`diverged` True) ends the run untested: its metrics, without test_*, are the last.
    """
    device = device or resolve_device(cfg.device)
    split = final_split(cfg, device)
    state = start_training(cfg, steps_per_epoch(split.n_train, cfg.data.batch_size), device)
    if checkpoint is not None:
        state.load_state_dict(checkpoint)
    metrics: dict = {}
    while state.epoch < cfg.max_epochs and not state.diverged:
        metrics = run_epoch(state, split, validate=False)  # the test set is no validation set
        if state.epoch == cfg.max_epochs and not metrics["diverged"]:
            metrics = {**metrics, **test_metrics(state, split)}
        if on_epoch is not None:
            on_epoch(metrics, state)
    if state.diverged:
        return metrics or dict(state.history[-1])  # resumed from the diverged epoch: nothing to add
    if "test_acc" not in metrics:
        # Resumed from the last epoch's checkpoint (stopped after its report): test the trained model.
        metrics = {**state.history[-1], **test_metrics(state, split)}
        if on_epoch is not None:
            on_epoch(metrics, state)
    return metrics
