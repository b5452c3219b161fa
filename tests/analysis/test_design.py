"""analysis.design: which trials are compared and what varied."""

import pytest

from analysis import AnalysisError, make_design, validate_trials
from synthetic import cells, make_trials


def test_all_trials_pruned_is_a_clear_error():
    df = make_trials(0, n_per_cell=0, pruned=2, errors=1)
    with pytest.raises(AnalysisError) as err:
        make_design(validate_trials(df))
    assert "pruned" in str(err.value) and "full budget" in str(err.value)


def test_nothing_varies_is_an_error():
    df = make_trials(0, cell_list=cells(bn=["pre_act"], dropout=["fc"]), n_per_cell=5)
    with pytest.raises(AnalysisError, match="no scientific factor varied"):
        make_design(validate_trials(df))


def test_a_design_whose_other_cells_never_trained_the_full_budget_is_one_cell():
    # The headline space's two cells, one of them all pruned or diverged: a one-cell design, not an error.
    df = make_trials(0, cell_list=cells(bn=["none", "pre_act"], dropout=["fc"]), n_per_cell=3)
    df.loc[df["bn"] == "none", "status"] = "pruned"
    df.loc[df["bn"] == "none", "epochs"] = 1
    design = make_design(validate_trials(df))
    assert design.factors == ("bn",) and list(design.cells["cell"]) == ["bn=pre_act"]
    assert design.counts.analysed == 3 and design.counts.pruned == 3


def test_only_full_budget_trials_are_compared():
    df = make_trials(0, n_per_cell=3, pruned=2, errors=1)
    df.loc[0, "epochs"] = 5  # completed, but short of the budget
    design = make_design(validate_trials(df))
    assert design.counts.analysed == 12 * 3 - 1
    assert design.counts.pruned == 24 and design.counts.error == 12 and design.counts.short == 1
    assert set(design.trials["status"]) == {"completed"}


def test_fixed_rates_that_come_with_a_placement_do_not_count_as_varying():
    design = make_design(validate_trials(make_trials(0, n_per_cell=2)))
    assert design.factors == ("bn", "dropout")


def test_sampled_rates_vary_inside_cells():
    df = make_trials(0, n_per_cell=4, rate_range={"p_fc": (0.1, 0.6)})
    design = make_design(validate_trials(df))
    assert design.factors == ("bn", "dropout", "p_fc")
    assert design.within_cell == ("p_fc",)
    assert design.cell_factors == ("bn", "dropout")
