"""Final evaluation trains, then tests once; nothing but final evaluation reads the test set.

A spy replaces `datasets.load_test_arrays`, the one reader of the test files, and
records every call made in this process (the trainables run in-process here, with a
stand-in for `ray.tune`). The end-to-end test checks the same across Ray workers.
"""

from __future__ import annotations

import pytest
import torch

from study.data import datasets

from study.data import device_data

from study.runtime import trainable

from study.training import numerics
from study.vocabulary.config import TrialConfig
from study.retraining.cross_validation import CVOptions, plan_cv
from study.retraining.final import FinalOptions, plan_final
from study.training.final_eval import train_and_test


@pytest.fixture
def test_set_reads(monkeypatch):
    """Every call to `datasets.load_test_arrays` in this process, by data directory."""
    calls: list[str] = []
    real = datasets.load_test_arrays

    def spy(data_dir):
        calls.append(str(data_dir))
        return real(data_dir)

    monkeypatch.setattr(datasets, "load_test_arrays", spy)
    device_data.clear_cache()  # nothing cached from earlier tests hides a read
    return calls


def _config(data_dir, **overrides) -> TrialConfig:
    flat = {"model": "small", "bn": "pre_act", "dropout": "fc", "p_fc": 0.2, "data_dir": str(data_dir),
            "batch_size": 64, "max_epochs": 2, "lr": 0.05, "device": "cpu", "train_size": 300}
    return TrialConfig.from_flat({**flat, **overrides})


def test_search_and_cross_validation_never_read_the_test_set(small_experiment, fake_data_dir, test_set_reads,
                                                            fake_tune):
    trainable.train_trial(_config(fake_data_dir, max_epochs=1, val_size=100).to_flat())
    plan = plan_cv(CVOptions(str(small_experiment), folds=2, max_epochs=1))
    trainable.train_cv_trial({"config_id": "t3", "replicate": 1}, configs=plan.trial_configs())
    assert [(r["epoch"], "val_acc" in r) for r in fake_tune.reports] == [(1, True), (1, True)]
    assert test_set_reads == []


def test_final_training_reads_the_test_set_once_and_tests_after_the_last_epoch(fake_data_dir, test_set_reads):
    epochs = []
    metrics = train_and_test(_config(fake_data_dir), on_epoch=lambda m, state: epochs.append(dict(m)))
    assert test_set_reads == [str(fake_data_dir)]
    assert [m["epoch"] for m in epochs] == [1, 2]
    assert "test_acc" not in epochs[0]  # no test evaluation while training
    assert epochs[-1] == metrics and 0.0 <= metrics["test_acc"] <= 1.0 and metrics["test_loss"] > 0
    assert 0.0 <= metrics["test_ece"] <= 1.0 and 0.0 <= metrics["test_conf_wrong"] <= 1.0  # test-set calibration
    # The eval-mode loss on the fixed training images, to set the test loss against; after the last epoch only.
    assert "train_eval_loss" not in epochs[0] and metrics["train_eval_loss"] > 0 and 0 <= metrics["train_eval_acc"] <= 1
    assert metrics["diverged"] is False


def test_a_diverged_final_run_stops_untested(fake_data_dir, monkeypatch):
    monkeypatch.setattr(numerics, "normalize", lambda x: torch.full(x.shape, float("nan")))  # a NaN loss
    epochs = []
    cfg = _config(fake_data_dir, max_epochs=3)
    metrics = train_and_test(cfg, on_epoch=lambda m, state: epochs.append((dict(m), state.state_dict())))
    assert [m["epoch"] for m, _ in epochs] == [1] and metrics == epochs[-1][0]
    assert metrics["diverged"] is True and "test_acc" not in metrics  # final.csv records it as untested
    # Resumed from the diverged epoch's checkpoint: no training, no test.
    again = train_and_test(cfg, checkpoint=epochs[-1][1])
    assert again["epoch"] == 1 and again["diverged"] is True and "test_acc" not in again


def test_final_trainable_reports_the_test_result(fake_data_dir, test_set_reads, fake_tune):
    trainable.train_final_trial(_config(fake_data_dir, max_epochs=1).to_flat() | {"cell": "bn=pre_act"})
    assert len(test_set_reads) == 1
    assert fake_tune.reports[-1]["epoch"] == 1 and "test_acc" in fake_tune.reports[-1]


def test_final_resumed_after_its_last_epoch_still_tests(fake_data_dir):
    cfg = _config(fake_data_dir)
    saved = []
    straight = train_and_test(cfg, on_epoch=lambda m, state: saved.append(state.state_dict()))
    resumed = train_and_test(cfg, checkpoint=saved[-1])
    assert resumed["epoch"] == 2 and resumed["test_acc"] == pytest.approx(straight["test_acc"])


def test_final_train_size_subset_and_its_limit(fake_data_dir):
    metrics = train_and_test(_config(fake_data_dir, max_epochs=1, train_size=100))
    assert metrics["samples_per_s"] > 0 and "test_acc" in metrics
    with pytest.raises(ValueError, match="train_size=5000 exceeds the 600 training images"):
        train_and_test(_config(fake_data_dir, train_size=5000))


def test_final_plan_checks_the_test_files_and_takes_the_cv_winner(small_experiment, fake_data_dir, test_set_reads):
    (small_experiment / "cv_summary.csv").write_text(
        "config_id,cell,n_folds,val_acc_mean,val_acc_std\nt3,bn=pre_act,2,0.80,0.01\nt1,bn=none,2,0.85,0.02\n"
    )
    plan = plan_final(FinalOptions(str(small_experiment), seeds=2))
    assert plan.config_id == "t1" and "stage-2 winner" in plan.chosen_by
    assert plan.seeds == (0, 1) and plan.config["train_size"] is None  # the whole training set
    assert plan.config["lr"] == 0.05
    assert test_set_reads == [str(fake_data_dir)]  # a bad test file fails before any training


def test_final_without_cv_results_asks_for_them_or_a_config_id(small_experiment):
    with pytest.raises(ValueError, match="no stage-2 results.*study cv.*--config-id"):
        plan_final(FinalOptions(str(small_experiment)))
    assert plan_final(FinalOptions(str(small_experiment), config_id="t2", seeds=1)).config["lr"] == 0.02
    with pytest.raises(ValueError, match="no trial 'nope'"):
        plan_final(FinalOptions(str(small_experiment), config_id="nope"))
    with pytest.raises(ValueError, match="--seeds must be .* at least 1, got 0"):
        plan_final(FinalOptions(str(small_experiment), config_id="t2", seeds=0))
