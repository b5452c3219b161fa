"""Training functions: loss falls, checkpoints resume exactly, divergence is flagged and stops training."""

from __future__ import annotations

import pytest
import torch

from study.training import loop as training
from study.training import numerics
from study.vocabulary.config import TrialConfig
from study.data.device_data import load_split
from study.vocabulary.factors import EPOCH_METRICS
from study.training.loop import fit, run_epoch, start_training, steps_per_epoch


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
    for name in EPOCH_METRICS:
        assert name in metrics
    # The gap is between two eval-mode losses on clean images, not the train-mode loss.
    assert metrics["gap"] == pytest.approx(metrics["val_loss"] - metrics["train_eval_loss"])
    assert metrics["train_eval_loss"] != metrics["train_loss"]
    for name in ("train_acc", "train_eval_acc", "val_acc"):
        assert 0 <= metrics[name] <= 1
    assert metrics["diverged"] is False


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

    keys = ("train_loss", "train_acc", "train_eval_loss", "train_eval_acc", "val_loss", "val_acc", "lr")
    assert [[m[k] for k in keys] for m in resumed.history] == [[m[k] for k in keys] for m in straight]


def _spy_on_evaluate(monkeypatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Record the images and labels of every `training.evaluate` call."""
    calls = []
    real = training.evaluate

    def spy(model, x, y, device, calibration=None, flip_average=False):
        calls.append((x.clone(), y.clone()))
        return real(model, x, y, device, calibration, flip_average)

    monkeypatch.setattr(training, "evaluate", spy)
    return calls


def test_train_eval_measures_the_same_clean_training_images_every_epoch(fake_data_dir, monkeypatch):
    monkeypatch.setattr(training, "TRAIN_EVAL_SIZE", 50)  # fewer than the split's training and validation images
    cfg = _config(fake_data_dir, augment=True)
    split = load_split(cfg.data, torch.device("cpu"))
    assert min(split.n_train, split.n_val) > 50
    calls = _spy_on_evaluate(monkeypatch)
    state = fit(cfg, split)
    val_calls = [c for c in calls if len(c[1]) == split.n_val]
    train_calls = [c for c in calls if len(c[1]) == 50]
    # The validation images once per epoch, and once more after the last with BN re-estimated.
    assert len(val_calls) == cfg.max_epochs + 1 and len(train_calls) == cfg.max_epochs
    assert len(calls) == 2 * cfg.max_epochs + 1
    for x, y in train_calls:  # the first 50 rows, as stored: no augmentation, no shuffle
        assert torch.equal(x, split.train_x[:50]) and torch.equal(y, split.train_y[:50])
    # Eval mode and no RNG: the same model gives the same numbers on a second pass.
    again = training.train_eval_metrics(state, split)
    assert {"train_eval_loss", "train_eval_acc", "var_shift_max", "var_shift_bn1"} <= set(again)
    assert again == {k: state.history[-1][k] for k in again}


@pytest.mark.parametrize(("val_size", "cap", "expected"), [(100, 2000, 100), (300, 200, 200), (550, 2000, 50)])
def test_train_eval_takes_at_most_the_validation_size_and_the_cap(fake_data_dir, monkeypatch, val_size, cap, expected):
    monkeypatch.setattr(training, "TRAIN_EVAL_SIZE", cap)
    split = load_split(_config(fake_data_dir, val_size=val_size).data, torch.device("cpu"))
    assert (split.n_train, split.n_val) == (600 - val_size, val_size)
    x, y = training.train_eval_images(split)  # min(n_train, n_val, TRAIN_EVAL_SIZE) first rows
    assert torch.equal(x, split.train_x[:expected]) and torch.equal(y, split.train_y[:expected])


def test_no_validation_no_train_eval_pass(fake_data_dir, monkeypatch):
    cfg = _config(fake_data_dir, max_epochs=1)
    split = load_split(cfg.data, torch.device("cpu"))
    calls = _spy_on_evaluate(monkeypatch)
    state = start_training(cfg, steps_per_epoch(split.n_train, cfg.data.batch_size))
    metrics = run_epoch(state, split, validate=False)
    assert calls == []
    assert not {"val_loss", "val_acc", "gap", "train_eval_loss", "train_eval_acc"} & set(metrics)
    assert metrics["diverged"] is False


def test_nan_loss_flags_the_epoch_diverged_and_fit_stops(fake_data_dir, monkeypatch):
    cfg = _config(fake_data_dir, max_epochs=3)
    split = load_split(cfg.data, torch.device("cpu"))
    monkeypatch.setattr(numerics, "normalize", lambda x: torch.full(x.shape, float("nan")))
    state = fit(cfg, split)
    assert len(state.history) == 1 and state.diverged  # stopped after the diverged epoch
    [metrics] = state.history
    assert metrics["diverged"] is True and metrics["epoch"] == 1
    assert metrics["train_loss"] != metrics["train_loss"]  # NaN
    assert 0 <= metrics["val_acc"] <= 1  # validated as usual: a NaN model's accuracy is what it is


def test_a_huge_learning_rate_diverges_without_raising(fake_data_dir):
    cfg = _config(fake_data_dir, lr=9.0, optimizer="sgd", dropout="fc", batch_size=64, max_epochs=3)
    state = fit(cfg, load_split(cfg.data, torch.device("cpu")))
    assert state.diverged and state.history[-1]["diverged"] is True
    assert state.epoch < cfg.max_epochs


def test_a_finite_run_stuck_at_chance_trains_on(fake_data_dir):
    """Only a non-finite loss stops training; chance accuracy is judged on the finished
    trial (`results.trial_row`), since an early epoch near chance can still recover."""
    cfg = _config(fake_data_dir, lr=9.0, optimizer="sgd", max_epochs=3)  # cosine, momentum 0.9: finite, stuck
    state = fit(cfg, load_split(cfg.data, torch.device("cpu")))
    assert state.epoch == 3 and not state.diverged
    assert all(m["train_loss"] == m["train_loss"] for m in state.history)  # finite, no NaN
    assert state.history[-1]["val_acc"] < 0.2


def test_schedules_shape_the_learning_rate(fake_data_dir):
    split = load_split(_config(fake_data_dir).data, torch.device("cpu"))
    last_lr = {s: fit(_config(fake_data_dir, schedule=s, max_epochs=2), split).history for s in ("none", "cosine")}
    assert last_lr["none"][-1]["lr"] == pytest.approx(0.05)
    assert last_lr["cosine"][0]["lr"] < 0.05 and last_lr["cosine"][-1]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_weight_decay_applies_to_weights_only():
    from study.vocabulary.config import OptimConfig
    from study.training.models import build_model
    from study.vocabulary.config import ModelConfig

    model = build_model(ModelConfig(model="small", bn="pre_act"))
    opt = training.make_optimizer(model, OptimConfig(weight_decay=0.01))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for p in model.parameters():
        assert (id(p) in decayed) == (p.ndim > 1)


def test_mechanism_metrics_come_with_bn_only_and_reestimation_leaves_the_model_alone(fake_data_dir):
    cfg = _config(fake_data_dir, max_epochs=2, dropout="conv", order="dropout_first", p_conv=0.5)
    split = load_split(cfg.data, torch.device("cpu"))
    state = fit(cfg, split, epochs=1)
    first = state.history[0]
    # Per BN layer (small: two conv blocks), their max and mean; no re-estimation before the last epoch.
    assert first["var_shift_max"] == max(first["var_shift_bn0"], first["var_shift_bn1"]) >= 1
    assert "var_shift_bn2" not in first and "val_acc_bn_reestimated" not in first
    running = [b.running_var.clone() for b in training.bn_layers(state.model)]
    weights = {k: v.clone() for k, v in state.model.state_dict().items()}
    last = run_epoch(state, split)
    assert 0 <= last["val_acc_bn_reestimated"] <= 1
    # The copy was re-estimated; the trained model kept its statistics: measured again, the same shift.
    after = training.train_eval_metrics(state, split)
    assert after["var_shift_max"] == last["var_shift_max"]
    assert any(not torch.equal(a, b.running_var) for a, b in zip(running, training.bn_layers(state.model)))
    assert set(weights) == set(state.model.state_dict())
    reestimated = training.bn_reestimated(state, split)
    shift_after = training.train_eval_metrics(
        training.TrainingState(**{**vars(state), "model": reestimated}), split)["var_shift_max"]
    # Dropout(0.5) before BN: the learnt statistics are shifted (about 2x); re-estimated, barely.
    assert last["var_shift_max"] > 1.5 > 1.2 > shift_after

    plain = fit(_config(fake_data_dir, max_epochs=1, bn="none"), split).history[-1]
    assert not [k for k in plain if k.startswith("var_shift") or k.endswith("bn_reestimated")]


def test_label_smoothing_smooths_the_training_loss_only(fake_data_dir, monkeypatch):
    """The training step passes the smoothing to its loss; the evaluation's losses stay plain cross-entropy."""
    seen = []
    real = training.F.cross_entropy

    def recording(*args, **kwargs):
        seen.append(kwargs.get("label_smoothing", 0.0))
        return real(*args, **kwargs)

    monkeypatch.setattr(training.F, "cross_entropy", recording)
    cfg = _config(fake_data_dir, max_epochs=1, label_smoothing=0.1)
    split = load_split(cfg.data, torch.device("cpu"))
    fit(cfg, split)
    assert seen.count(0.1) == steps_per_epoch(split.n_train, cfg.data.batch_size)  # each training batch
    assert set(seen) == {0.1, 0.0}  # and the evaluations, plain


def test_random_erasing_changes_training_and_leaves_its_absence_as_it_was(fake_data_dir):
    split = load_split(_config(fake_data_dir).data, torch.device("cpu"))
    plain = fit(_config(fake_data_dir, max_epochs=1), split).history[0]
    explicit_zero = fit(_config(fake_data_dir, max_epochs=1, random_erasing=0.0), split).history[0]
    erased = fit(_config(fake_data_dir, max_epochs=1, random_erasing=0.5), split).history[0]
    assert plain["train_loss"] == explicit_zero["train_loss"]  # no draws at 0: the same random stream
    assert erased["train_loss"] != plain["train_loss"]


def _numerics_and_images(fake_data_dir):
    """fp32 CPU numerics as training chooses them, and 300 validation images of the fake data."""
    cfg = _config(fake_data_dir, val_size=300)
    split = load_split(cfg.data, torch.device("cpu"))
    return start_training(cfg, 1).numerics, split.val_x, split.val_y


def test_flip_average_scores_the_mean_of_the_two_views_probabilities(fake_data_dir):
    num, x, y = _numerics_and_images(fake_data_dir)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))  # sees left and right apart
    with torch.no_grad():
        views = [model(numerics.normalize(v)).softmax(1) for v in (x, x.flip(-1))]
    probs = (views[0] + views[1]) / 2
    expected_loss = -probs[torch.arange(len(y)), y].log().mean().item()
    expected_acc = (probs.argmax(1) == y).float().mean().item()

    loss, acc = training.evaluate(model, x, y, num, flip_average=True)
    assert loss == pytest.approx(expected_loss, rel=1e-5) and acc == pytest.approx(expected_acc)
    # The mirror view changed the scores: plain evaluation is the first view alone.
    plain_loss, plain_acc = training.evaluate(model, x, y, num)
    assert plain_loss == pytest.approx(-views[0][torch.arange(len(y)), y].log().mean().item(), rel=1e-5)
    assert plain_loss != pytest.approx(loss, rel=1e-3)


def test_flip_average_changes_nothing_for_a_mirror_symmetric_model(fake_data_dir):
    num, x, y = _numerics_and_images(fake_data_dir)
    torch.manual_seed(0)
    # Each image's mean per row, then a linear map: the same for an image and its mirror.
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d((28, 1)), torch.nn.Flatten(), torch.nn.Linear(28, 10))
    assert training.evaluate(model, x, y, num, flip_average=True) == pytest.approx(training.evaluate(model, x, y, num))
