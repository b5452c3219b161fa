"""The bn x dropout interaction test finds planted interactions and handles odd layouts."""

from analysis import interaction_test, make_design, validate_trials
from synthetic import blog_trials, cells, make_trials


def design_of(df):
    return make_design(validate_trials(df))


def test_planted_interaction_is_found():
    # Dropout helps by 1 pp with BatchNorm and not at all without it.
    effect = lambda f: 0.01 * (f["bn"] != "none") * (f["dropout"] != "none")  # noqa: E731
    result = interaction_test(design_of(make_trials(0, n_per_cell=8, effect=effect, noise=0.003)))
    assert result.factors == ["bn", "dropout"]
    assert result.significant and result.p_value < 0.01
    assert result.df1 == 6  # (3 - 1) x (4 - 1)


def test_additive_effects_are_not_an_interaction():
    effect = lambda f: 0.02 * (f["bn"] != "none") + 0.01 * (f["dropout"] == "fc")  # noqa: E731
    result = interaction_test(design_of(make_trials(4, n_per_cell=8, effect=effect, noise=0.003)))
    assert result.p_value > 0.05


def test_strata_of_other_factors_do_not_count_as_interaction():
    # BN helps more on augmented data (bn x augment), but Dropout's effect never depends on BN.
    effect = lambda f: 0.01 * (f["bn"] != "none") * (1 + 2 * f["augment"]) + 0.004 * (f["dropout"] == "all")  # noqa: E731
    df = make_trials(1, cell_list=cells(augment=[False, True]), n_per_cell=6, effect=effect)
    result = interaction_test(design_of(df))
    assert result.df1 == 12 and result.p_value > 0.05


def test_rate_takes_the_place_of_placement_when_only_the_rate_varies():
    # With BN the best p_fc is 0.6, without it 0.2: the effect of the rate depends on BN.
    effect = lambda f: -0.1 * (f["p_fc"] - (0.6 if f["bn"] != "none" else 0.2)) ** 2  # noqa: E731
    df = make_trials(0, cell_list=cells(dropout=["fc"]), n_per_cell=40, rate_range={"p_fc": (0.0, 0.8)}, effect=effect, noise=0.002)
    result = interaction_test(design_of(df))
    assert result.factors == ["bn", "p_fc"]
    assert result.significant


def test_untestable_layouts_say_why():
    no_bn = interaction_test(design_of(make_trials(0, cell_list=cells(bn=["none"]), n_per_cell=3)))
    assert no_bn.p_value is None and "bn did not vary" in no_bn.reason
    diagonal = make_trials(0, cell_list=[c for c in cells(dropout=["none", "fc"]) if (c["bn"] == "none") == (c["dropout"] == "none")], n_per_cell=3)
    # bn=none only with dropout=none, and BN only with fc: no 2 x 2 sub-table.
    result = interaction_test(design_of(diagonal))
    assert result.p_value is None and "2 x 2" in result.reason


def test_blog_ablation_interaction_uses_the_medium_model_cells():
    planted = {4: 0.02, 6: -0.01}  # BN helps by 2 pp without Dropout and hurts by 1 pp with it: an interaction
    scores = {e: 0.90 + planted.get(e, 0.0) for e in range(1, 9)}
    result = interaction_test(design_of(blog_trials(0, n_per_cell=5, scores=scores)))
    # Experiments 2, 4, 5, 6 form the only complete bn x dropout 2 x 2 table: one degree of freedom.
    assert result.df1 == 1
    assert result.p_value < 0.05 and result.significant
    flat = interaction_test(design_of(blog_trials(1, n_per_cell=5, scores={e: 0.90 for e in range(1, 9)})))
    assert flat.df1 == 1 and flat.p_value > 0.05 and not flat.significant
