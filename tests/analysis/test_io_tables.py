"""analysis.io: input contract, clear errors, cleaning."""

import pandas as pd
import pytest

from analysis import AnalysisError, load_experiment, validate_trials
from synthetic import make_trials, write_experiment


def small():
    return make_trials(0, n_per_cell=2)


def test_missing_columns_are_named():
    df = small().drop(columns=["best_val_acc", "dropout"])
    with pytest.raises(AnalysisError) as err:
        validate_trials(df)
    message = str(err.value)
    assert "best_val_acc" in message and "dropout" in message and "missing" in message


def test_empty_table_is_an_error():
    with pytest.raises(AnalysisError, match="empty"):
        validate_trials(small().iloc[:0])


def test_value_outside_vocabulary_is_quoted():
    df = small()
    df.loc[0, "bn"] = "layer_norm"
    with pytest.raises(AnalysisError, match="layer_norm"):
        validate_trials(df)


def test_unknown_status_is_an_error():
    df = small()
    df.loc[0, "status"] = "running"
    with pytest.raises(AnalysisError, match="running"):
        validate_trials(df)


def test_percentages_are_rejected_with_a_hint():
    df = small()
    df["best_val_acc"] = df["best_val_acc"] * 100
    with pytest.raises(AnalysisError, match="percentages"):
        validate_trials(df)


@pytest.mark.parametrize("true, false", [("true", "false"), ("True", "False"), (True, False)])
def test_augment_parsed_from_text(true, false):
    df = small()
    df["augment"] = [true if i % 2 else false for i in range(len(df))]
    out = validate_trials(df)
    assert out["augment"].dtype == bool
    assert out["augment"].sum() == len(df) // 2


def test_budget_defaults_to_the_longest_trial_and_cell_is_built():
    df = make_trials(0, n_per_cell=2, pruned=1).drop(columns=["max_epochs", "cell"])
    out = validate_trials(df)
    assert (out["max_epochs"] == df["epochs"].max()).all()
    assert set(out["cell"]) == {f"bn={b},dropout={d}" for b in ("none", "pre_act", "post_act") for d in ("none", "fc", "conv", "all")}


def test_factors_that_cannot_matter_are_normalised():
    df = small()
    df["order"] = "dropout_first"  # only meaningful with BN and Dropout2d
    df["dropout_kind"] = "uout"  # only meaningful with Dropout
    out = validate_trials(df)
    relevant = (out["bn"] != "none") & out["dropout"].isin(["conv", "all"])
    assert (out.loc[~relevant, "order"] == "bn_first").all()
    assert (out.loc[relevant, "order"] == "dropout_first").all()
    assert (out.loc[out["dropout"] == "none", "p_fc"] == 0).all()
    assert (out.loc[out["dropout"] == "none", "dropout_kind"] == "bernoulli").all()
    assert (out.loc[out["dropout"] != "none", "dropout_kind"] == "uout").all()


def test_load_experiment_errors(tmp_path):
    with pytest.raises(AnalysisError, match="does not exist"):
        load_experiment(tmp_path / "nowhere")
    with pytest.raises(AnalysisError, match="trials.csv"):
        load_experiment(tmp_path)


def test_load_experiment_reads_directory_and_bare_csv(tmp_path):
    trials = small()
    folder = write_experiment(tmp_path / "exp", trials, cv=pd.DataFrame({"config_id": ["a"], "fold": [0], "val_acc": [0.9]}))
    tables = load_experiment(folder)
    assert len(tables.trials) == len(trials) and tables.cv is not None and tables.epochs is None
    bare = tmp_path / "mine.csv"
    trials.to_csv(bare, index=False)
    assert load_experiment(bare).cv is None


def test_a_hand_made_table_with_only_the_required_columns_analyses():
    from analysis import REQUIRED_TRIAL_COLUMNS, conclude

    df = make_trials(0, n_per_cell=3)[list(REQUIRED_TRIAL_COLUMNS)]
    c = conclude(df, importance=False, n_boot=20)
    assert c["factors"] == ["bn", "dropout"] and len(c["ranking"]) == 12
    assert c["source"] == "search"  # no replicates: preliminary, nothing tested
    claims = {claim["id"]: claim for claim in c["claims"]}
    assert "search trials only" in claims["bn_dropout_improves_loss"]["reason"]


def test_diverged_is_one_status_however_the_table_says_it():
    """A NaN loss that errored, a low accuracy that 'completed', a status written as diverged: all diverged."""
    from analysis import validate_trials

    df = make_trials(0, n_per_cell=3).head(7).copy()
    df["error"] = ""
    df.loc[0, ["status", "error"]] = ["error", "DivergedError: training loss became nan in epoch 2"]
    df.loc[1, ["status", "best_val_acc", "val_acc"]] = ["completed", 0.12, 0.11]  # at chance
    df.loc[2, ["status", "train_loss"]] = ["pruned", float("inf")]
    df.loc[3, "status"] = "diverged"
    df.loc[4, ["status", "error"]] = ["error", "CUDA out of memory"]
    df.loc[5, ["status", "epochs", "val_acc"]] = ["pruned", 2, 0.15]  # near chance when stopped: a slow starter
    df.loc[6, ["status", "train_loss", "val_acc"]] = ["completed", float("nan"), float("nan")]  # blanks: no evidence
    status = validate_trials(df)["status"].tolist()
    assert status == ["diverged", "diverged", "diverged", "diverged", "error", "pruned", "completed"]


def test_a_gap_against_the_train_mode_loss_is_not_used():
    from analysis import validate_trials

    df = make_trials(0, n_per_cell=3)
    with_eval = validate_trials(df)
    assert with_eval["gap"].tolist() == pytest.approx((df["val_loss"] - df["train_eval_loss"]).tolist())
    assert "gap" not in validate_trials(df.drop(columns="train_eval_loss"))


def test_empty_factor_values_are_an_error():
    df = small()
    df["bn"] = df["bn"].astype(object)
    df.loc[3, "bn"] = None
    with pytest.raises(AnalysisError, match="'bn' is empty"):
        validate_trials(df)


def test_an_experiment_in_remote_storage_loads_as_the_same_tables(tmp_path):
    trials = small()
    folder = write_experiment(tmp_path / "bucket" / "exp", trials,
                              cv=pd.DataFrame({"config_id": ["a"], "fold": [0], "val_acc": [0.9]}))
    local, remote = load_experiment(folder), load_experiment(f"file://{folder}")  # file:// as s3:// would be
    assert remote.source == f"file://{folder}" and remote.epochs is None
    pd.testing.assert_frame_equal(remote.trials, local.trials)
    pd.testing.assert_frame_equal(remote.cv, local.cv)
    with pytest.raises(AnalysisError, match="has no trials.csv"):
        load_experiment(f"file://{tmp_path}/bucket")
