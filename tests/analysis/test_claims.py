"""The source post's five claims and the mechanism's six: verdicts follow the planted truth, or say why not.

Claims are checked on stage-2 replicates (`as_replicates` turns a synthetic trials
table into seed replicates with the same scores); on search trials alone every
claim is inconclusive.
"""

import pytest

from analysis import conclude
from analysis.claims import NEGLIGIBLE, REFUTED, SUPPORTED, _verdict
from synthetic import as_replicates, blog_trials, cells, make_trials

CLAIM_IDS = ["bn_before_dropout", "dropout_fc_only_with_bn", "bn_dropout_improves_loss",
             "all_three_generalize_best", "large_model_all_three_best",
             # the mechanism's (tests/analysis/test_variance_shift_analysis.py)
             "dropout_before_bn_shifts_variance", "variance_shift_explains_loss", "dropout_after_last_bn_no_shift",
             "bn_reestimation_recovers", "uout_removes_shift", "bn_lowers_wrong_confidence"]


def claims_of(df, **kw):
    c = conclude(df, cv=as_replicates(df), importance=False, n_boot=50, **kw)
    return {claim["id"]: claim for claim in c["claims"]}, c


def test_every_claim_is_always_reported_and_says_why_it_cannot_be_checked():
    claims, c = claims_of(make_trials(0, n_per_cell=3))
    assert [claim["id"] for claim in c["claims"]] == CLAIM_IDS
    assert all(claim["text"] for claim in c["claims"])
    # The default cells vary neither order, nor augmentation, nor the model size.
    assert claims["bn_before_dropout"]["verdict"] == "inconclusive" and "order" in claims["bn_before_dropout"]["reason"]
    assert "augment in [True]" in claims["all_three_generalize_best"]["reason"]
    assert "model in ['large']" in claims["large_model_all_three_best"]["reason"]
    assert claims["dropout_fc_only_with_bn"]["evidence"]["n_cells"] == 4  # fc and all, with pre_act and post_act
    # The synthetic table measured no mechanism: every such claim says what it lacks.
    assert "var_shift_max" in claims["dropout_after_last_bn_no_shift"]["reason"]
    assert "conf_wrong" in claims["bn_lowers_wrong_confidence"]["reason"]


@pytest.mark.parametrize("sign, verdict", [(1, "supported"), (-1, "refuted")])
def test_bn_before_dropout_follows_the_planted_order_effect(sign, verdict):
    effect = lambda f: sign * 0.005 * (f["order"] == "bn_first") * (f["bn"] != "none") * (f["dropout"] in ("conv", "all"))  # noqa: E731
    claims, _ = claims_of(make_trials(0, cell_list=cells(order=["bn_first", "dropout_first"]), n_per_cell=8, effect=effect))
    claim = claims["bn_before_dropout"]
    assert claim["verdict"] == verdict
    assert claim["evidence"]["difference"] == pytest.approx(sign * 0.005, abs=0.002)
    assert claim["evidence"]["matched"]


def test_bn_before_dropout_is_inconclusive_when_order_never_varied():
    claims, _ = claims_of(make_trials(0, n_per_cell=3))
    assert claims["bn_before_dropout"]["verdict"] == "inconclusive"
    assert "order" in claims["bn_before_dropout"]["reason"]


def test_no_order_effect_with_many_replicates_is_negligible_not_refuted():
    claims, _ = claims_of(make_trials(0, cell_list=cells(order=["bn_first", "dropout_first"]), n_per_cell=40, noise=0.002))
    assert claims["bn_before_dropout"]["verdict"] == "negligible"
    assert "within ±0.1 percentage point" in claims["bn_before_dropout"]["reason"]


@pytest.mark.parametrize("interval", [(0.0002, 0.0005), (-0.0004, 0.0008), (0.0004, 0.004), (-0.003, 0.002), (0.002, 0.01)])
def test_verdicts_are_mirror_symmetric(interval):
    """The same difference seen from the other side gets the mirrored verdict (margin both ways)."""
    low, high = interval
    mirror = {SUPPORTED: REFUTED, REFUTED: SUPPORTED}
    for margin in (0.001, None):
        ahead, _ = _verdict((low + high) / 2, low, high, margin, False)
        behind, _ = _verdict(-(low + high) / 2, -high, -low, margin, False)
        assert behind == mirror.get(ahead, ahead), (interval, margin, ahead, behind)


def test_a_real_advantage_smaller_than_the_margin_is_negligible_in_both_directions():
    """+0.03 pp with a tight interval: real (excludes 0) but below the 0.1 pp margin, whichever side claims it."""
    verdict, reason = _verdict(0.0003, 0.0002, 0.0004, 0.001, False)
    assert verdict == NEGLIGIBLE and "real" in reason
    assert _verdict(-0.0003, -0.0004, -0.0002, 0.001, False)[0] == NEGLIGIBLE
    # Larger than the margin: supported one way, refuted the other.
    assert _verdict(0.003, 0.002, 0.004, 0.001, False)[0] == SUPPORTED
    assert _verdict(-0.003, -0.004, -0.002, 0.001, False)[0] == REFUTED


def test_non_inferiority_uses_the_margin_on_both_sides():
    assert _verdict(-0.0005, -0.0009, 0.002, 0.001, True)[0] == SUPPORTED  # loses at most 0.09 pp
    assert _verdict(-0.005, -0.007, -0.002, 0.001, True)[0] == REFUTED  # loses at least 0.2 pp
    assert _verdict(-0.001, -0.003, 0.002, 0.001, True)[0] == "inconclusive"
    # Within the margin on both sides: equivalent, which proves "at least as good".
    assert _verdict(0.0001, -0.0005, 0.0007, 0.001, True)[0] == SUPPORTED


def test_search_trials_alone_check_no_claim():
    effect = lambda f: 0.01 * (f["order"] == "bn_first") * (f["bn"] != "none") * (f["dropout"] in ("conv", "all"))  # noqa: E731
    df = make_trials(0, cell_list=cells(order=["bn_first", "dropout_first"]), n_per_cell=8, effect=effect)
    c = conclude(df, importance=False, n_boot=50)
    assert c["source"] == "search"
    assert {claim["verdict"] for claim in c["claims"]} == {"inconclusive"}
    assert all("search trials only" in claim["reason"] for claim in c["claims"])


def test_dropout_fc_only_with_bn_supported_when_fc_is_as_good():
    effect = lambda f: 0.004 * (f["dropout"] == "fc") * (f["bn"] != "none")  # noqa: E731
    claims, _ = claims_of(make_trials(0, n_per_cell=8, effect=effect))
    claim = claims["dropout_fc_only_with_bn"]
    assert claim["verdict"] == "supported"
    assert set(claim["evidence"]) >= {"fc", "all", "difference", "ci_low", "ci_high"}


def test_dropout_fc_only_with_bn_refuted_when_conv_dropout_helps():
    effect = lambda f: 0.006 * (f["dropout"] == "all") * (f["bn"] != "none")  # noqa: E731
    claims, _ = claims_of(make_trials(0, n_per_cell=8, effect=effect))
    assert claims["dropout_fc_only_with_bn"]["verdict"] == "refuted"


def test_bn_dropout_improves_loss_uses_validation_loss():
    # Dropout lowers the final val_loss by 0.15 in every cell.
    claims, _ = claims_of(make_trials(0, n_per_cell=6, gap_effect=lambda f: -0.15 * (f["dropout"] != "none")))
    claim = claims["bn_dropout_improves_loss"]
    assert claim["evidence"]["metric"] == "val_loss"
    assert claim["verdict"] == "supported"


def test_blog_ablation_tests_all_three_and_large_model_claims():
    df = blog_trials(0, n_per_cell=6)
    # Experiment 7 has the smallest gap; experiment 8 is the most accurate (the blog_trials default).
    gaps = {1: 0.3, 2: 0.4, 3: 0.2, 4: 0.35, 5: 0.15, 6: 0.2, 7: 0.0, 8: 0.05}
    df["val_loss"] = df["train_eval_loss"] + df["experiment"].map(gaps) + 0.01 * (df.index % 3)
    claims, c = claims_of(df)
    assert claims["large_model_all_three_best"]["verdict"] == "supported"
    assert claims["large_model_all_three_best"]["evidence"]["claimed_cell"] == "experiment=8"
    assert claims["all_three_generalize_best"]["verdict"] == "supported"
    assert claims["all_three_generalize_best"]["evidence"]["claimed_cell"] == "experiment=7"
    # Experiment 6 (BN + Dropout) has a gap 0.15 below experiment 4 (BN alone), on the same model and data.
    assert claims["bn_dropout_improves_loss"]["verdict"] == "supported"
    assert claims["bn_dropout_improves_loss"]["evidence"]["difference"] == pytest.approx(-0.15, abs=0.02)
    assert claims["dropout_fc_only_with_bn"]["verdict"] == "inconclusive"  # the post never puts Dropout in fc only


def test_large_model_claim_refuted_when_another_cell_is_better():
    scores = {1: 0.89, 2: 0.905, 3: 0.91, 4: 0.915, 5: 0.912, 6: 0.93, 7: 0.925, 8: 0.91}
    claims, _ = claims_of(blog_trials(0, n_per_cell=6, scores=scores))
    assert claims["large_model_all_three_best"]["verdict"] == "refuted"


def test_an_inconclusive_verdict_says_how_much_resolution_it_lacks():
    # An estimate of +0.5 pp with a half-width of 1 pp: deciding it needs a half-width below 0.5 pp, 4x the replicates.
    verdict, reason = _verdict(0.005, -0.005, 0.015, None, False, accuracy=True)
    assert verdict == "inconclusive"
    assert "half-width 1 pp" in reason and "below 0.5 pp" in reason and "about 4 times the replicates" in reason
