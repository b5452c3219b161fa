"""Ranking and factor effects recover planted differences from replicates; the search alone ranks by best trial."""

import pandas as pd
import pytest

from analysis import conclude, make_design, rank_cells, validate_trials
from analysis.effects import factor_effects
from synthetic import as_replicates, cells, make_cv, make_trials


def design_of(df):
    return make_design(validate_trials(df))


def confirmed(df, **kw):
    """Conclusions from `df`'s scores taken as stage-2 seed replicates."""
    return conclude(df, cv=as_replicates(df), importance=False, **kw)


def test_planted_best_cell_is_ranked_first():
    effect = lambda f: 0.01 * (f["bn"] == "pre_act" and f["dropout"] == "fc")  # noqa: E731
    c = confirmed(make_trials(0, n_per_cell=6, effect=effect), n_boot=50)
    best = c["ranking"][0]
    assert c["source"] == "replicates"
    assert best["cell"] == "bn=pre_act,dropout=fc"
    assert (best["bn"], best["dropout"]) == ("pre_act", "fc")
    assert best["ci_low"] < best["score"] < best["ci_high"]
    assert best["n"] == 6 and best["unit"] == "seeds"
    assert c["comparisons"]["best_vs_runner_up"]["ci_low"] > 0
    assert c["comparisons"]["omnibus"]["significant"]


@pytest.mark.parametrize("seed", range(3))
def test_a_few_tenths_of_a_point_is_found_with_enough_trials(seed):
    # 0.3 pp between BN and no BN, trial noise sd 0.3 pp, 40 trials per cell.
    df = make_trials(seed, cell_list=cells(bn=["none", "pre_act"], dropout=["none"]), n_per_cell=40,
                     effect=lambda f: 0.003 * (f["bn"] == "pre_act"), noise=0.003)
    design = design_of(df)
    effect = factor_effects(design)["bn"]
    assert effect.test.p_value < 0.05
    assert effect.values["pre_act"].score - effect.values["none"].score == pytest.approx(0.003, abs=0.0015)
    ranking = rank_cells(design)
    assert ranking.table["bn"].iloc[0] == "pre_act"
    assert ranking.top_two[0].low > 0


def test_effect_of_order_is_matched_on_cells_where_order_exists():
    df = make_trials(0, cell_list=cells(order=["bn_first", "dropout_first"]), n_per_cell=4,
                     effect=lambda f: 0.004 * (f["order"] == "bn_first") * (f["dropout"] in ("conv", "all")) * (f["bn"] != "none")
                     + 0.02 * (f["bn"] == "none"))
    effects = factor_effects(design_of(df))
    order = effects["order"]
    assert order.test.matched
    # Only the 4 BN x {conv, all} cells have both orders; bn=none cells (+2 pp) must not leak in.
    assert order.values["bn_first"].n_cells == 4
    assert order.values["bn_first"].score - order.values["dropout_first"].score == pytest.approx(0.004, abs=0.002)


def test_effects_have_score_and_interval_for_every_value():
    c = confirmed(make_trials(1, n_per_cell=4), n_boot=50)
    assert set(c["effects"]) == {"bn", "dropout"}
    assert set(c["effects"]["dropout"]) == {"none", "fc", "conv", "all"}
    for values in c["effects"].values():
        for entry in values.values():
            assert entry["ci_low"] <= entry["score"] <= entry["ci_high"]


def test_folds_get_the_nadeau_bengio_interval_with_the_designs_own_sizes():
    trials = make_trials(0, n_per_cell=5, effect=lambda f: 0.01 * (f["bn"] == "pre_act" and f["dropout"] == "fc"))
    # In CV the search's winner falls behind bn=post_act,dropout=all.
    cv = make_cv(trials, shift={"bn=pre_act,dropout=fc": -0.02, "bn=post_act,dropout=all": 0.02})
    c = conclude(trials, cv=cv, importance=False, n_boot=50)
    assert c["metric"] == "val_acc" and c["source"] == "replicates"
    assert c["ranking"][0]["cell"] == "bn=post_act,dropout=all"
    assert c["ranking"][0]["unit"] == "folds" and c["ranking"][0]["n"] == 5
    assert c["search"]["best_trials"][0]["cell"] == "bn=pre_act,dropout=fc"
    assert "Nadeau-Bengio" in c["ranking_method"]
    # Training on 1,500 images and validating 12,000 (ratio 8) widens the interval far beyond 1/(k-1).
    wide = conclude(trials, cv=cv.assign(n_train=1500, n_val=12000), importance=False, n_boot=50)
    width = lambda e: e["ci_high"] - e["ci_low"]  # noqa: E731
    assert width(wide["ranking"][0]) > 3 * width(c["ranking"][0])


def test_search_only_ranks_by_the_best_trial_and_tests_nothing():
    df = make_trials(0, n_per_cell=3, effect=lambda f: 0.01 * (f["bn"] == "pre_act"))
    c = conclude(df, importance=False, n_boot=50)
    assert c["source"] == "search" and c["metric"] == "best_val_acc"
    best = df[df["status"] == "completed"].groupby("cell")["best_val_acc"].max()
    assert [e["cell"] for e in c["ranking"]] == list(best.sort_values(ascending=False).index)
    assert all(e["ci_low"] is None and e["unit"] == "best trial" for e in c["ranking"])
    assert c["comparisons"]["omnibus"] is None
    assert all(t["p_value"] is None and not t["significant"] for t in c["effect_tests"].values())
    assert c["interaction"]["p_value"] is None and "search trials only" in c["interaction"]["reason"]
    assert c["summary"][0].startswith("Preliminary")
    # The mean over search trials is reported under its own name, never as the score.
    means = df[df["status"] == "completed"].groupby("cell")["best_val_acc"].mean()
    reported = {cell: e["mean"] for cell, e in c["search"]["mean_over_trials"].items()}
    assert reported == pytest.approx(means.to_dict())


def test_one_cell_with_a_sampled_rate_is_analysed_with_warnings():
    df = make_trials(0, cell_list=cells(bn=["pre_act"], dropout=["fc"]), n_per_cell=12, rate_range={"p_fc": (0.0, 0.7)},
                     effect=lambda f: -0.04 * (f["p_fc"] - 0.35) ** 2)
    c = conclude(df, importance=False, n_boot=100)
    assert len(c["ranking"]) == 1 and c["source"] == "search"
    assert c["factors"] == ["p_fc"]
    assert c["interaction"]["p_value"] is None and c["interaction"]["reason"]
    assert any("Only one cell" in w for w in c["warnings"])
    assert "pre_act" in c["dropout_rate"]["p_fc"]


def test_cells_with_few_trials_and_failures_are_warned_about():
    df = make_trials(0, n_per_cell=(1, 4), pruned=1, errors=1)
    c = confirmed(df, n_boot=50)
    text = " ".join(c["warnings"])
    assert "fewer than 3 scored seeds" in text
    assert "pruned" in text and "failed" in text
    assert "Many search trials failed" in text  # one failed trial per cell of 3 to 6: over 10%


def test_single_trial_cells_are_ranked_without_intervals():
    c = confirmed(make_trials(0, n_per_cell=1), n_boot=20)
    assert len(c["ranking"]) == 12
    assert all(entry["ci_low"] is None for entry in c["ranking"])
    assert c["effects"]["bn"]["none"]["score"] is not None and c["effects"]["bn"]["none"]["ci_low"] is None
    assert c["interaction"]["p_value"] is None
    assert any("single scored replicate" in w for w in c["warnings"])


def test_fold_replicates_widen_the_interaction_test_too():
    """The interaction test takes the Nadeau-Bengio term of folds, like the ranking: with 12,000 images
    validated against 1,500 trained on, the same fold scores are far less conclusive."""
    effect = lambda f: 0.01 * (f["bn"] != "none") * (f["dropout"] == "fc")  # noqa: E731
    trials = make_trials(0, n_per_cell=5, effect=effect, noise=0.002)
    folds = as_replicates(trials).assign(replicate_kind="fold", n_val=375, n_train=1500)  # 5 folds of all images
    narrow = conclude(trials, cv=folds, importance=False, n_boot=20)["interaction"]
    wide = conclude(trials, cv=folds.assign(n_val=12000), importance=False, n_boot=20)["interaction"]
    assert narrow["significant"] and wide["statistic"] < narrow["statistic"] / 4


def test_replicates_of_one_cell_fall_back_to_the_search_with_a_warning():
    trials = make_trials(0, n_per_cell=4)
    cv = as_replicates(trials)
    one_cell = cv[cv["cell"] == cv["cell"].iloc[0]]
    c = conclude(trials, cv=one_cell, importance=False, n_boot=20)
    assert c["source"] == "search"
    assert any("Stage 2 cannot be compared across cells" in w for w in c["warnings"])


def test_a_hand_made_replicates_table_takes_its_factors_from_the_trials():
    trials = make_trials(0, n_per_cell=4, effect=lambda f: 0.01 * (f["bn"] == "pre_act"))
    cv = as_replicates(trials)[["config_id", "replicate", "val_acc"]]
    c = conclude(trials, cv=cv, importance=False, n_boot=20)
    assert c["source"] == "replicates" and len(c["ranking"]) == 12
    assert c["ranking"][0]["bn"] == "pre_act" and not any("missing from the ranking" in w for w in c["warnings"])


def test_stage_two_with_nothing_scored_says_so():
    trials = make_trials(0, n_per_cell=3)
    cv = as_replicates(trials).assign(status="diverged", val_acc=0.1)
    c = conclude(trials, cv=cv, importance=False, n_boot=20)
    assert c["source"] == "search"
    assert any("Stage 2 ran" in w and "none was scored" in w for w in c["warnings"])


def test_a_rate_sampled_inside_cells_is_part_of_the_configuration_even_with_one_full_trial_per_cell():
    # Two trials per cell, one pruned: among full-budget trials the rate looks constant per cell.
    trials = make_trials(0, cell_list=cells(bn=["none", "pre_act"], dropout=["fc"]), n_per_cell=1, pruned=1,
                         rate_range={"p_fc": (0.0, 0.7)})
    cv = as_replicates(pd.concat([trials, make_trials(1, cell_list=cells(bn=["none", "pre_act"], dropout=["fc"]),
                                                      n_per_cell=2, id_prefix="r")]))
    c = conclude(trials, cv=cv, importance=False, n_boot=20)
    assert c["source"] == "replicates" and "p_fc" not in c["factors"]
