"""`study cv --folds`, then `study final`, after `study run`, on tiny synthetic IDX files with the embedded Ray.

The search and the cross-validation read a data directory whose test files are
garbage: had anything in them (driver or Ray worker) read the test set, its trials
would have failed. `study final` on that directory fails because it does read the
test set; on the real test files it trains and tests every seed.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.io import load_experiment
from study.cli import main
from study.retraining.cv_stats import FOLD_TEST
from study.vocabulary.factors import NUISANCE, SCIENTIFIC_FACTORS

CV_METRICS = ("train_loss", "train_acc", "train_eval_loss", "val_loss", "val_acc", "gap", "epochs")


@pytest.fixture(scope="module")
def experiment(cv_final_experiment):
    """conftest's `smoke_study` (8 trials, 2 cells) without its stage 2, then `study cv --folds 2
    --overall 2` and `study final` on it."""
    return cv_final_experiment


def test_search_and_cv_ran_without_ever_reading_the_test_set(experiment):
    trials = pd.read_csv(experiment / "trials.csv")
    cv = pd.read_csv(experiment / "cv.csv")
    assert (trials["status"] != "error").all(), trials["error"].dropna().tolist()
    assert (cv["status"] == "completed").all(), cv["error"].dropna().tolist()


def test_cv_csv_has_one_row_per_configuration_and_fold(experiment):
    trials = pd.read_csv(experiment / "trials.csv", dtype={"trial_id": str})
    cv = pd.read_csv(experiment / "cv.csv", dtype={"config_id": str, "trial_id": str})
    best_two = trials[trials.status == "completed"].sort_values("best_val_acc", ascending=False).head(2)
    assert set(cv["config_id"]) == set(best_two["trial_id"])
    assert sorted(zip(cv["config_id"], cv["fold"])) == sorted((c, f) for c in best_two["trial_id"] for f in (0, 1))
    assert (cv["replicate"] == cv["fold"]).all() and (cv["replicate_kind"] == "fold").all()
    # The fold's real sizes, for the Nadeau-Bengio correction: 1,000 images in 2 folds, 400 trained on.
    assert (cv["n_val"] == 500).all() and (cv["n_train"] == 400).all()
    expected = {"config_id", "cell", "trial_id", "fold", *SCIENTIFIC_FACTORS, *NUISANCE, *CV_METRICS}
    assert expected <= set(cv.columns), expected - set(cv.columns)
    assert (cv["epochs"] == 3).all()  # the smoke budget, no early stopping
    source = trials.set_index("trial_id").loc[cv["trial_id"]]
    assert list(source["lr"].round(12)) == list(cv["lr"].round(12))  # each configuration's own tuned values


def test_cv_summary_and_paired_tests(experiment):
    cv = pd.read_csv(experiment / "cv.csv", dtype={"config_id": str})
    summary = pd.read_csv(experiment / "cv_summary.csv", dtype={"config_id": str})
    expected = {"config_id", "cell", "n_replicates", "gap_mean", "gap_std", *SCIENTIFIC_FACTORS, *NUISANCE} | {
        f"{m}_{s}" for m in ("val_acc", "val_loss") for s in ("mean", "std", "ci_low", "ci_high")}
    assert expected <= set(summary.columns), expected - set(summary.columns)
    assert len(summary) == 2 and (summary["n_replicates"] == 2).all()
    means = cv.groupby("config_id")["val_acc"].mean()
    assert summary.set_index("config_id")["val_acc_mean"].round(9).to_dict() == means.round(9).to_dict()
    assert summary["val_acc_mean"].is_monotonic_decreasing
    tests = pd.read_csv(experiment / "cv_tests.csv", dtype={"config_id": str, "best_config_id": str})
    assert len(tests) == 1 and tests["best_config_id"].iloc[0] == summary["config_id"].iloc[0]
    assert json.loads((experiment / "cv.json").read_text())["methods"]["test"] == FOLD_TEST


def test_final_csv_tests_the_cv_winner_once_per_seed(experiment):
    summary = pd.read_csv(experiment / "cv_summary.csv", dtype={"config_id": str})
    final = pd.read_csv(experiment / "final.csv", dtype={"config_id": str})
    expected = {"config_id", "cell", "seed", "test_acc", "test_loss", *SCIENTIFIC_FACTORS, *NUISANCE}
    assert expected <= set(final.columns), expected - set(final.columns)
    assert list(final["seed"]) == [0, 1]
    assert set(final["config_id"]) == {summary["config_id"].iloc[0]}
    assert final["test_acc"].between(0, 1).all() and (final["test_loss"] > 0).all()
    assert final["train_size"].isna().all()  # the whole training set
    # Calibration of the test predictions; with BN, the shift and the same networks re-estimated.
    assert final["test_ece"].between(0, 1).all()
    mechanism = ["var_shift_max", "test_acc_bn_reestimated", "test_ece_bn_reestimated"]
    with_bn = final["bn"] != "none"
    assert final.loc[with_bn, mechanism].notna().all().all() and final.loc[~with_bn, mechanism].isna().all().all()
    assert (final.loc[with_bn, "var_shift_max"] >= 1).all()
    # Every seed also tested with each image averaged with its mirror image, from the same evaluation.
    assert final["test_acc_flip"].between(0, 1).all() and (final["test_loss_flip"] > 0).all()


def test_final_reads_the_test_set(experiment, smoke_data_dirs, capsys):
    _, train_only = smoke_data_dirs
    assert main(["final", str(experiment), "--seeds", "2", "--data-dir", str(train_only)]) == 2
    assert "t10k-images-idx3-ubyte" in "".join(capsys.readouterr().err.split())  # the message is wrapped


def test_the_analysis_reads_all_three_files(experiment):
    tables = load_experiment(experiment)
    assert len(tables.cv) == 4 and len(tables.cv_summary) == 2 and len(tables.final) == 2


def test_cv_again_resumes_the_same_replicate_set(experiment, capsys):
    before = pd.read_csv(experiment / "cv.csv")
    assert main(["cv", str(experiment), "--overall", "2", "--folds", "2", "--no-analyze"]) == 0
    assert "Resuming" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(experiment / "cv.csv"), before)
    # The first set made in the experiment is its own (cv.csv), known by the name its options give.
    assert json.loads((experiment / "cv.json").read_text())["replicate_set"] == "overall2-folds-2"
    assert not (experiment / "replicates").exists()


def test_final_dry_run_estimates_from_the_rate_and_trains_nothing(experiment, smoke_data_dirs, capsys, monkeypatch):
    from study.training import rate_probe
    from study.training.loop import TRAIN_EVAL_SIZE
    from study.tuning.cost import OVERHEAD_PER_TRIAL_S

    probed = []

    def known_rates(cfgs, threads, copies, seconds=1.0):
        probed.append((cfgs[0], threads, copies))
        return [rate_probe.Rates(train=1000.0, evaluate=4000.0, device="cpu")]

    monkeypatch.setattr(rate_probe, "measure_rates_at_once", known_rates)
    before = {p.name: p.stat().st_mtime_ns for p in experiment.iterdir()}
    full, _ = smoke_data_dirs
    assert main(["final", str(experiment), "--seeds", "3", "--max-epochs", "4", "--max-concurrent", "1",
                 "--data-dir", str(full), "--dry-run"]) == 0
    out = capsys.readouterr().out
    [(cfg, threads, copies)] = probed
    assert cfg.max_epochs == 4 and copies == 1  # the final's own configuration, as many at once as it will run
    n_train = 1000  # the synthetic training split, all of it
    # The test images plain and both flip views, the train-eval images, and both again with BN re-estimated.
    evaluated = 2 * 10_000 + (10_000 + TRAIN_EVAL_SIZE) * (2 if cfg.model.bn != "none" else 1)
    seed_s = 4 * n_train / 1000.0 + evaluated / 4000.0 + OVERHEAD_PER_TRIAL_S
    assert "3 seeds (0, 1, 2), 4 epochs on 1,000 training images each" in out
    assert f"{seed_s / 60:.1f} min in all" in out and "Estimated wall time" in out
    assert {p.name: p.stat().st_mtime_ns for p in experiment.iterdir()} == before  # nothing written
