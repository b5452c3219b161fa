"""trials.csv rows: the status of a trial, `diverged` included, and its final-epoch metrics."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from study.vocabulary import factors, tables

from study.runtime import results
from study.vocabulary import storage
from study.vocabulary.factors import DIVERGED_ACCURACY, EPOCH_METRICS, is_diverged

NAN, INF = float("nan"), float("inf")
CONFIG = {"model": "small", "bn": "pre_act", "dropout": "fc", "p_fc": 0.2, "max_epochs": 3, "lr": 0.05}


def _epochs(train_loss: list[float], val_acc: list[float]) -> pd.DataFrame:
    rows = []
    for i, (loss, acc) in enumerate(zip(train_loss, val_acc)):
        row = {name: 0.5 for name in EPOCH_METRICS}
        row.update(epoch=i + 1, train_loss=loss, val_acc=acc, train_eval_loss=0.3 + i, train_eval_acc=0.9)
        rows.append(row)
    return pd.DataFrame(rows, columns=EPOCH_METRICS)


def _row(train_loss, val_acc, errored=False, config=CONFIG):
    return results.trial_row("t1", config, _epochs(train_loss, val_acc), errored, "boom" if errored else "", ["bn"])


@pytest.mark.parametrize(("train_loss", "val_acc", "errored", "status"), [
    ([1.0, 0.8, 0.6], [0.5, 0.6, 0.7], False, "completed"),
    ([1.0, 0.8], [0.5, 0.6], False, "pruned"),
    ([1.0, NAN], [0.5, 0.1], False, "diverged"),  # stopped after a NaN epoch, before its budget
    ([1.0, INF, 0.5], [0.5, 0.6, 0.7], False, "diverged"),  # any non-finite epoch
    ([2.3, 2.3, 2.3], [0.1, 0.1, 0.15], False, "diverged"),  # full budget, still near chance
    ([2.3], [0.1], False, "pruned"),  # near chance when the scheduler stopped it: maybe a slow starter
    ([2.3, 1.0, 0.6], [0.1, 0.5, 0.7], False, "completed"),  # a slow start recovered: only the last counts
    ([1.0, 0.8, 0.6], [0.5, 0.6, DIVERGED_ACCURACY], False, "completed"),  # the threshold itself is not below it
    ([1.0, NAN], [0.5, 0.1], True, "error"),  # raised: error wins
    ([], [], False, "pruned"),  # never reported
])
def test_trial_status(train_loss, val_acc, errored, status):
    assert _row(train_loss, val_acc, errored)["status"] == status


def test_the_last_reported_val_acc_decides_when_the_last_epoch_did_not_validate():
    epochs = _epochs([1.0, 0.9, 0.8], [0.15, NAN, NAN])  # validated after epoch 1 only
    assert results.trial_row("t1", CONFIG, epochs, False, "", ["bn"])["status"] == "diverged"
    epochs = _epochs([1.0, 0.9, 0.8], [NAN, NAN, NAN])  # never validated: no evidence of divergence
    row = results.trial_row("t1", CONFIG, epochs, False, "", ["bn"])
    assert row["status"] == "completed" and math.isnan(row["best_val_acc"]) and row["best_epoch"] == 0


def test_final_metrics_include_the_eval_mode_training_loss():
    row = _row([1.0, 0.8, 0.6], [0.5, 0.6, 0.7])
    assert {"train_eval_loss", "train_eval_acc"} <= set(tables.TRIAL_METRICS)
    assert row["train_eval_loss"] == pytest.approx(2.3) and row["train_eval_acc"] == 0.9  # the last epoch's
    assert row["best_val_acc"] == 0.7 and row["best_epoch"] == 3


def test_epochs_logged_before_train_eval_existed_give_nan():
    epochs = _epochs([1.0, 0.8, 0.6], [0.5, 0.6, 0.7]).drop(columns=["train_eval_loss", "train_eval_acc"])
    row = results.trial_row("t1", CONFIG, epochs, False, "", ["bn"])
    assert row["status"] == "completed" and math.isnan(row["train_eval_loss"])


@pytest.mark.parametrize(("train_loss", "val_acc", "diverged"), [
    (NAN, None, True), (INF, 0.9, True), (-INF, None, True),
    (0.5, None, False), (0.5, NAN, False), (0.5, 0.19, True), (0.5, 0.2, False), (2.3, 0.9, False),
])
def test_is_diverged(train_loss, val_acc, diverged):
    assert is_diverged(train_loss, val_acc) is diverged
    # Stopped early: only a non-finite loss counts.
    assert is_diverged(train_loss, val_acc, full_budget=False) is (not math.isfinite(train_loss))
    assert factors.CHANCE_ACCURACY == 0.1 and DIVERGED_ACCURACY == 0.2


def test_a_table_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    storage.write_text(str(tmp_path), "trials.csv", "a\n1\n")
    assert (tmp_path / "trials.csv").stat().st_mode & 0o044  # readable like any file, not mkstemp's 0600

    def killed_mid_write(src, dst):
        raise OSError("killed")

    monkeypatch.setattr(storage.os, "replace", killed_mid_write)
    with pytest.raises(OSError):
        storage.write_text(str(tmp_path), "trials.csv", "a\n1\n2\n")
    assert (tmp_path / "trials.csv").read_text() == "a\n1\n"  # the old table, intact
    assert [p.name for p in tmp_path.iterdir()] == ["trials.csv"]  # no temporary file left behind


def test_a_cells_own_settings_survive_into_its_retraining():
    """A space may fix label smoothing, random erasing or the width for one cell only; study.json keeps only the
    space-wide values, so stage 2 and the final evaluation read them from the trial's row (the headline space's
    experiment 8 trains at twice the large model's width: without this it would retrain at its own)."""
    from study.retraining.common import training_config

    own = {"label_smoothing": 0.1, "random_erasing": 0.25, "width_multiplier": 2.0}
    row = _row([1.0, 0.8, 0.6], [0.5, 0.6, 0.7], config={**CONFIG, **own, "cell": "exp8"})
    shared = {"model": "small", "max_epochs": 3}  # what study.json holds: none of the cell's own values
    retrained = training_config(row, shared)
    assert {key: retrained[key] for key in own} == own
    assert set(own) <= set(tables.RECORDED_SETTINGS)  # and cv.csv and final.csv show them
