"""Training functions: loss falls, checkpoints resume exactly, divergence is caught."""

from __future__ import annotations

import pytest
import torch

from study import training
from study.config import TrialConfig
from study.device_data import load_split
from study.training import DivergedError, fit, run_epoch, start_training, steps_per_epoch


def _config(fake_data_dir, **overrides) -> TrialConfig:
    flat = {
        "model": "small", "bn": "pre_act", "dropout": "all", "p_conv": 0.1, "p_fc": 0.2,
        "data_dir": str(fake_data_dir), "val_size": 100, "batch_size": 32, "max_epochs": 3,
        "lr": 0.05, "augment": True, "device": "cpu",
    }
    flat.update(overrides)
    return TrialConfig.from_flat(flat)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_loss_falls_on_a_small_synthetic_set(fake_data_dir):
    cfg = _config(fake_data_dir)
    split = load_split(cfg.data, torch.device("cpu"))
    state = fit(cfg, split)
    losses = [m["train_loss"] for m in state.history]
    assert losses[-1] < losses[0] * 0.7
    assert state.history[-1]["val_acc"] > 0.5  # chance is 0.1
    assert [m["epoch"] for m in state.history] == [1, 2, 3]


def test_metrics_have_the_design_names_and_consistent_gap(fake_data_dir):
    cfg = _config(fake_data_dir, max_epochs=1)
    split = load_split(cfg.data, torch.device("cpu"))
    metrics = fit(cfg, split).history[0]
    for name in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "gap", "lr", "epoch_s", "samples_per_s"):
        assert name in metrics
    assert metrics["gap"] == pytest.approx(metrics["val_loss"] - metrics["train_loss"])
    assert 0 <= metrics["train_acc"] <= 1 and 0 <= metrics["val_acc"] <= 1


def test_same_seed_same_numbers_other_seed_other_numbers(fake_data_dir):
    split = load_split(_config(fake_data_dir).data, torch.device("cpu"))
    a = fit(_config(fake_data_dir, max_epochs=1), split).history
    b = fit(_config(fake_data_dir, max_epochs=1), split).history
    c = fit(_config(fake_data_dir, max_epochs=1, seed=1), split).history
    assert a[0]["train_loss"] == b[0]["train_loss"] and a[0]["val_loss"] == b[0]["val_loss"]
    assert a[0]["train_loss"] != c[0]["train_loss"]


# Each optimizer and each schedule at least once (their states are saved separately);
# one-cycle with SGD, whose momentum it cycles.
@pytest.mark.parametrize(("optimizer", "schedule"), [("sgd", "onecycle"), ("adamw", "cosine"), ("adamw", "none")])
def test_checkpoint_round_trip_resumes_the_same_numbers(fake_data_dir, schedule, optimizer):
    lr = 0.05 if optimizer == "sgd" else 0.003
    cfg = _config(fake_data_dir, schedule=schedule, optimizer=optimizer, lr=lr)
    split = load_split(cfg.data, torch.device("cpu"))
    steps = steps_per_epoch(split.n_train, cfg.data.batch_size)

    straight = fit(cfg, split).history

    first = start_training(cfg, steps)
    run_epoch(first, split)
    checkpoint = first.state_dict()
    torch.manual_seed(12345)  # disturb the global RNG: the checkpoint must restore it
    resumed = start_training(cfg, steps)
    resumed.load_state_dict(checkpoint)
    run_epoch(resumed, split)
    run_epoch(resumed, split)

    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
    assert [[m[k] for k in keys] for m in resumed.history] == [[m[k] for k in keys] for m in straight]


def test_nan_loss_raises_diverged_error(fake_data_dir, monkeypatch):
    cfg = _config(fake_data_dir, max_epochs=1)
    split = load_split(cfg.data, torch.device("cpu"))
    monkeypatch.setattr(training, "normalize", lambda x: torch.full(x.shape, float("nan")))
    state = start_training(cfg, steps_per_epoch(split.n_train, cfg.data.batch_size))
    with pytest.raises(DivergedError, match="nan"):
        run_epoch(state, split)


def test_schedules_shape_the_learning_rate(fake_data_dir):
    split = load_split(_config(fake_data_dir).data, torch.device("cpu"))
    last_lr = {s: fit(_config(fake_data_dir, schedule=s, max_epochs=2), split).history for s in ("none", "cosine")}
    assert last_lr["none"][-1]["lr"] == pytest.approx(0.05)
    assert last_lr["cosine"][0]["lr"] < 0.05 and last_lr["cosine"][-1]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_weight_decay_applies_to_weights_only():
    from study.config import OptimConfig
    from study.models import build_model
    from study.config import ModelConfig

    model = build_model(ModelConfig(model="small", bn="pre_act"))
    opt = training.make_optimizer(model, OptimConfig(weight_decay=0.01))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for p in model.parameters():
        assert (id(p) in decayed) == (p.ndim > 1)
