"""Best drop rate per BatchNorm setting, with a bootstrap interval."""

import pytest

from analysis import conclude, fit_dropout_rates, make_design, validate_trials
from synthetic import cells, make_trials


def fits_of(df, n_boot=300):
    return {(f.rate, f.bn): f for f in fit_dropout_rates(make_design(validate_trials(df)), n_boot=n_boot, seed=0)}


def test_planted_best_rate_is_recovered_per_bn():
    best = {"none": 0.2, "pre_act": 0.5, "post_act": 0.5}
    df = make_trials(0, cell_list=cells(dropout=["fc", "all"]), n_per_cell=30, rate_range={"p_fc": (0.0, 0.8)},
                     effect=lambda f: -0.08 * (f["p_fc"] - best[f["bn"]]) ** 2 + 0.005 * (f["dropout"] == "all"), noise=0.002)
    fits = fits_of(df)
    for bn, target in best.items():
        fit = fits[("p_fc", bn)]
        assert fit.method.startswith("quadratic")
        assert fit.best == pytest.approx(target, abs=0.08)
        # A percentile interval of an argmax is approximate; allow a hair of slack.
        assert fit.ci_low - 0.02 <= target <= fit.ci_high + 0.02
        assert fit.ci_high - fit.ci_low < 0.3
        assert fit.n == 60


def test_rate_grid_uses_binned_means():
    df = make_trials(0, cell_list=cells(dropout=["fc"], p_fc=[0.1, 0.3, 0.5]), n_per_cell=10,
                     effect=lambda f: -0.1 * (f["p_fc"] - 0.3) ** 2, noise=0.002)
    fits = fits_of(df)
    for bn in ("none", "pre_act", "post_act"):
        fit = fits[("p_fc", bn)]
        assert fit.method.startswith("binned")
        assert fit.best == 0.3
        assert fit.ci_low <= 0.3 <= fit.ci_high


def test_best_rate_at_the_edge_is_warned_about():
    df = make_trials(0, cell_list=cells(bn=["none", "pre_act"], dropout=["fc"]), n_per_cell=25, rate_range={"p_fc": (0.0, 0.5)},
                     effect=lambda f: 0.02 * f["p_fc"], noise=0.002)
    c = conclude(df, importance=False, n_boot=200)
    assert c["dropout_rate"]["p_fc"]["none"]["at_edge"]
    assert any("edge of the rates tried" in w for w in c["warnings"])


def test_rate_entries_have_the_issue_keys():
    df = make_trials(0, cell_list=cells(dropout=["conv"], bn=["none", "post_act"]), n_per_cell=15, rate_range={"p_conv": (0.0, 0.5)})
    c = conclude(df, importance=False, n_boot=100)
    assert set(c["dropout_rate"]) == {"p_conv"}
    for entry in c["dropout_rate"]["p_conv"].values():
        assert {"best", "ci_low", "ci_high"} <= set(entry)
        assert entry["ci_low"] <= entry["best"] <= entry["ci_high"]
