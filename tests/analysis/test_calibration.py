"""With no real difference, the tests are significant at about their nominal 5% rate.

The null tables are unbalanced (3 to 10 trials per cell) and heteroscedastic (cells
without BatchNorm are four times noisier), as real studies are; 200 seeds.
"""

import numpy as np
import pytest
from scipy import stats

from analysis import interaction_test, make_design, rank_cells
from analysis.effects import factor_effects
from analysis.interaction import additivity_test
from synthetic import make_trials

SEEDS = 200
MAX_RATE = 0.08
# Monte Carlo p-values (1 + #{T* >= T}) / (B + 1) are valid tests for any B; fewer
# resamples than the default keep this module fast.
N_BOOT = 500


def noise(cell):
    return 0.002 if cell["bn"] != "none" else 0.008


@pytest.fixture(scope="module")
def null_results():
    """p-values of the interaction, omnibus and bn-effect tests on tables with no effect at all."""
    out = {"interaction": [], "omnibus": [], "bn": [], "dropout": []}
    for seed in range(SEEDS):
        # The generator writes clean, validated-format tables (validation is tested in
        # test_io_tables); skipping it here keeps 200 seeds fast.
        design = make_design(make_trials(10_000 + seed, n_per_cell=(3, 10), noise=noise))
        out["interaction"].append(interaction_test(design, n_boot=N_BOOT).p_value)
        out["omnibus"].append(rank_cells(design, n_boot=N_BOOT).omnibus.p_value)
        effects = factor_effects(design, n_boot=N_BOOT)
        out["bn"].append(effects["bn"].test.p_value)
        out["dropout"].append(effects["dropout"].test.p_value)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("test", ["interaction", "omnibus", "bn", "dropout"])
def test_false_positive_rate_is_nominal(null_results, test):
    rate = float(np.mean(null_results[test] < 0.05))
    assert rate <= MAX_RATE, f"{test}: {rate:.3f} of {SEEDS} null tables significant"
    # A test that never rejects would be broken (it would have no power either).
    assert rate > 0


def test_p_values_are_roughly_uniform_under_the_null(null_results):
    # Kolmogorov-Smirnov against U(0, 1): a p-value piled near 0 or near 1 (a test too liberal or too
    # conservative everywhere, not only at 0.05) fails, where a mean near 0.5 need not.
    for test in ("interaction", "omnibus"):
        p = null_results[test]
        assert stats.kstest(p, "uniform").pvalue > 0.01, test


def test_main_effects_do_not_leak_into_the_interaction():
    """The contrasts annihilate additive effects exactly: adding them changes nothing."""
    import pandas as pd

    rng = np.random.default_rng(0)
    groups = pd.DataFrame(
        [(b, d) for b in ("none", "pre_act", "post_act") for d in ("none", "fc", "conv", "all")], columns=["bn", "level"]
    ).assign(stratum="all", se2=rng.uniform(1e-6, 4e-6, 12), df=rng.integers(2, 9, 12), mean=rng.normal(0.9, 0.002, 12))
    base, _ = additivity_test(groups)
    shifted = groups.assign(mean=groups["mean"] + 0.05 * (groups["bn"] != "none") + 0.02 * (groups["level"] == "fc"))
    moved, _ = additivity_test(shifted)
    assert moved.statistic == pytest.approx(base.statistic)
    assert moved.p_value == pytest.approx(base.p_value)
