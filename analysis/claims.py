"""The source post's advice, and the variance-shift mechanism, checked against the study: a verdict with
numbers per claim.

Nearly every check is a difference between two groups of cells, oriented so that a
positive difference is what the claim says, with a 95% Satterthwaite interval
(`analysis.stats.linear_contrast`); "variance shift explains the accuracy lost" is
the slope of a line through the configurations (`analysis.mechanism.shift_line`), and
"Dropout only after the last BN layer is free of variance shift" an equivalence
(supported when the interval lies within ±SHIFT_MARGIN). The margin (0.1 percentage point for accuracy
claims) applies the same way in both directions, so a claim and its mirror image
get mirrored verdicts:

- `negligible`: the whole interval lies within ±margin: whatever the sign (and
  even when the interval excludes 0), the difference is smaller than the margin;
- `supported`: otherwise, the interval lies above 0 (for "at least as good":
  above -margin);
- `refuted`: otherwise, the interval lies below 0 (for "at least as good": below
  -margin);
- `inconclusive`: otherwise, or when the study did not vary what the claim needs,
  or when only search trials exist (their scores are selected maxima); the reason
  says which.

Cells are matched on the other factors as in `analysis.effects`. Claims about the
best cell compare the best cell of the claimed group with the best other cell; both
are picked from the same data, so those intervals are optimistic about the winner
and the evidence says so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import mechanism, stats
from analysis.design import Design, cell_table, ordered_values
from analysis.effects import NESTED, contrast, group_weights
from analysis.results import BestCellEvidence, Claim, GroupEvidence, Mechanism
from study.vocabulary.factors import CONV_DROPOUT
from analysis.text import SEARCH_ONLY, is_accuracy
from analysis.ranking import SEARCH, Ranking

SUPPORTED, REFUTED, NEGLIGIBLE, INCONCLUSIVE = "supported", "refuted", "negligible", "inconclusive"
VERDICTS = (SUPPORTED, REFUTED, NEGLIGIBLE, INCONCLUSIVE)
ACC_MARGIN = 0.001  # 0.1 percentage point: the post's own "very minor" improvement
CLAIM_TEXT = {
    "bn_before_dropout": "Put BatchNorm before Dropout: in a conv block with both, BN then Dropout beats Dropout then BN.",
    "dropout_fc_only_with_bn": (
        "When the convolutions have BatchNorm, Dropout only in the classifier is at least as good as "
        "Dropout in the convolutions too."
    ),
    "bn_dropout_improves_loss": "BatchNorm plus Dropout gives a lower validation loss than BatchNorm alone (the post's experiment 6 vs 4).",
    "all_three_generalize_best": (
        "BatchNorm + Dropout + augmentation has the smallest generalization gap (val_loss - train_eval_loss) "
        "of all settings (the post's experiment 7)."
    ),
    "large_model_all_three_best": "The large model with BatchNorm, Dropout and augmentation is the most accurate (the post's experiment 8).",
    # The mechanism (Li et al., CVPR 2019: variance shift), measured on the same replicates.
    "dropout_before_bn_shifts_variance": (
        "Dropout right before a BatchNorm layer causes variance shift: with Dropout2d before BN (dropout_first) the "
        "variance BN learnt in training differs more from the one it meets at inference than with BN first."
    ),
    "variance_shift_explains_loss": (
        "Variance shift explains the accuracy Dropout costs next to BatchNorm: across configurations with both, the "
        "larger the shift, the more accuracy is lost against the same network without Dropout."
    ),
    "dropout_after_last_bn_no_shift": (
        "Dropout only after the last BatchNorm layer (in the classifier) is free of variance shift: its shift is that "
        "of the same network without Dropout."
    ),
    "bn_reestimation_recovers": (
        "Re-estimating BatchNorm's statistics with Dropout off after training recovers accuracy, where Dropout comes "
        "before BN (dropout_first)."
    ),
    "uout_removes_shift": "A variance-stable Dropout (Uout) in place of Bernoulli Dropout, before BN, removes the variance shift: it shifts less.",
    "bn_lowers_wrong_confidence": (
        "BatchNorm lowers the confidence of wrong predictions (the post: \"misclassification confidence will not be "
        "very high\")."
    ),
}
# A difference in var_shift_max this small is no shift: a twentieth of the variance, a fifth of what
# Dropout2d(0.2) before BN gives (1/0.8 = 1.25), and about what the running average's lag behind the
# weights leaves in a network without Dropout (measured on FashionMNIST, quick budget: 1.01).
SHIFT_MARGIN = 0.05
METHOD = "difference of least-squares means of matched cells, " + stats.WELCH_T
LINE_METHOD = "least-squares line through one point per configuration, slope with a t interval (" + mechanism.METHOD + ")"
GAIN_METHOD = "mean over cells of the paired gain (the same network re-estimated minus as trained), " + stats.LS_MEAN
BEST_METHOD = (
    "best cell of the claimed group against the best other cell, " + stats.WELCH_T
    + " (both cells chosen from the same data: optimistic about the winner)"
)


def check_claims(design: Design, ranking: Ranking, mechanism_summary: Mechanism) -> list[Claim]:
    """Every claim's verdict; all `inconclusive` when the ranking comes from the search alone.
    `mechanism_summary` is `analysis.mechanism.summarise_mechanism` of the same design."""
    if ranking.source == SEARCH:
        return [_inconclusive(cid, SEARCH_ONLY) for cid in CLAIM_TEXT]
    return [
        bn_before_dropout(design),
        dropout_fc_only_with_bn(design),
        bn_dropout_improves_loss(design),
        all_three_generalize_best(design),
        large_model_all_three_best(design, ranking),
        dropout_before_bn_shifts_variance(design),
        variance_shift_explains_loss(design, mechanism_summary),
        dropout_after_last_bn_no_shift(design),
        bn_reestimation_recovers(design),
        uout_removes_shift(design),
        bn_lowers_wrong_confidence(design),
    ]


def _bn_cells(design: Design, column: str, cid: str) -> tuple[pd.DataFrame | None, Claim | None]:
    """Cells with BN and at least 2 replicates measuring `column`, or the inconclusive claim saying why not."""
    trials = mechanism.with_gain(design.trials)
    if not mechanism.measured(trials, column):
        return None, _inconclusive(cid, f"the replicates have no {column} (an experiment from before it was measured, or no BN)")
    cells = cell_table(trials, column)  # over the runs that measured it
    return cells[(cells["df"] >= 1) & (cells["bn"] != "none")].reset_index(drop=True), None


def _with_conv_dropout(cells: pd.DataFrame, **where) -> pd.DataFrame:
    """The cells with Dropout2d in the conv blocks, and each factor of `where` at its value where recorded."""
    keep = cells["dropout"].isin(CONV_DROPOUT)
    for factor, value in where.items():
        if factor in cells:
            keep &= cells[factor] == value
    return cells[keep].reset_index(drop=True)


def dropout_before_bn_shifts_variance(design: Design) -> Claim:
    return _shift_claim(design, "dropout_before_bn_shifts_variance", "order",
                        {"dropout_first": ["dropout_first"], "bn_first": ["bn_first"]}, higher_is_better=True,
                        dropout_kind="bernoulli")


def variance_shift_explains_loss(design: Design, mechanism_summary: Mechanism) -> Claim:
    cid = "variance_shift_explains_loss"
    if not mechanism.measured(design.trials, mechanism.SHIFT):
        return _inconclusive(cid, "the replicates have no var_shift_max (an experiment from before it was measured, or no BN)")
    line = mechanism.shift_line(mechanism_summary.cells)
    if line is None:
        return _inconclusive(cid, "fewer than 3 configurations with BN and Dropout have a cell without Dropout to compare with")
    verdict, _ = _verdict(-line.slope, *sorted((-line.ci_low, -line.ci_high)), None, False)
    reason = {
        SUPPORTED: "the slope's 95% interval lies below 0: the larger the shift, the more accuracy is lost",
        REFUTED: "the slope's 95% interval lies above 0: the larger the shift, the less accuracy is lost",
    }.get(verdict, "the slope's 95% interval includes 0" if math.isfinite(line.ci_low) else "too few points for an interval")
    return Claim(cid, CLAIM_TEXT[cid], verdict, line, reason, LINE_METHOD)


def dropout_after_last_bn_no_shift(design: Design) -> Claim:
    cid = "dropout_after_last_bn_no_shift"
    cells, why = _bn_cells(design, mechanism.SHIFT, cid)
    if why:
        return why
    if not {"fc", "none"} <= set(cells["dropout"]):
        return _inconclusive(cid, "no BN cells both with Dropout only in the classifier (fc) and without Dropout")
    claim = _matched(cid, design, cells, "dropout", {"fc": ["fc"], "none": ["none"]}, metric=mechanism.SHIFT,
                     higher_is_better=False, margin=SHIFT_MARGIN)
    return _as_equivalence(claim, SHIFT_MARGIN)


def bn_reestimation_recovers(design: Design) -> Claim:
    cid = "bn_reestimation_recovers"
    cells, why = _bn_cells(design, mechanism.GAIN, cid)
    if why:
        return why
    cells = _with_conv_dropout(cells, order="dropout_first")
    if cells.empty:
        return _inconclusive(cid, "no cell with Dropout2d before BN (dropout_first) has 2 replicates re-estimated")
    w = np.full(len(cells), 1.0 / len(cells))
    iv, p = stats.linear_contrast(w, cells["mean"], cells["se2"], cells["df"])
    after = cell_table(design.trials, mechanism.REESTIMATED).set_index("cell")["mean"]
    before = cell_table(design.trials, "val_acc").set_index("cell")["mean"]
    evidence = GroupEvidence(
        "val_acc", iv.estimate, iv.low, iv.high, p, True, n_cells=len(cells), n_trials=int(cells["n"].sum()),
        margin=ACC_MARGIN, groups={"re-estimated": float(w @ after.loc[cells["cell"]].to_numpy()),
                                   "as trained": float(w @ before.loc[cells["cell"]].to_numpy())},
    )
    verdict, reason = _verdict(iv.estimate, iv.low, iv.high, ACC_MARGIN, False)
    return Claim(cid, CLAIM_TEXT[cid], verdict, evidence, reason, GAIN_METHOD)


def uout_removes_shift(design: Design) -> Claim:
    return _shift_claim(design, "uout_removes_shift", "dropout_kind", {"uout": ["uout"], "bernoulli": ["bernoulli"]},
                        higher_is_better=False, order="dropout_first")


def _shift_claim(design: Design, cid: str, factor: str, groups: dict, *, higher_is_better: bool, **where) -> Claim:
    """The variance shift of two groups of `factor`'s values, over BN cells with Dropout2d and `where`."""
    if factor not in design.cell_factors:
        return _inconclusive(cid, f"{factor} ({' vs '.join(groups)}) did not vary")
    cells, why = _bn_cells(design, mechanism.SHIFT, cid)
    if why:
        return why
    return _matched(cid, design, _with_conv_dropout(cells, **where), factor, groups, metric=mechanism.SHIFT,
                    higher_is_better=higher_is_better, margin=None)


def bn_lowers_wrong_confidence(design: Design) -> Claim:
    cid = "bn_lowers_wrong_confidence"
    if "bn" not in design.cell_factors:
        return _inconclusive(cid, "bn did not vary")
    if not mechanism.measured(design.trials, "conf_wrong"):
        return _inconclusive(cid, "the replicates have no conf_wrong (an experiment from before it was measured)")
    cells = _cells(design, "conf_wrong")
    with_bn = [v for v in ordered_values("bn", cells["bn"]) if v != "none"]
    if not with_bn or not (cells["bn"] == "none").any():
        return _inconclusive(cid, "no cells both with and without BatchNorm (with at least 2 replicates)")
    return _matched(cid, design, cells, "bn", {"bn": with_bn, "none": ["none"]}, metric="conf_wrong",
                    higher_is_better=False, margin=None)


def _as_equivalence(claim: Claim, margin: float) -> Claim:
    """A claim of *no* difference: supported when the interval lies within ±margin, refuted when it lies
    wholly outside it, inconclusive otherwise."""
    e = claim.evidence
    if e is None or not (_finite(e.ci_low) and _finite(e.ci_high)):
        return claim
    if -margin < e.ci_low and e.ci_high < margin:
        verdict, reason = SUPPORTED, f"the 95% interval lies within ±{margin:g}: no shift beyond the margin"
    elif e.ci_low > margin or e.ci_high < -margin:
        verdict, reason = REFUTED, f"the 95% interval lies beyond ±{margin:g}: a shift larger than the margin"
    else:
        verdict, reason = INCONCLUSIVE, f"the 95% interval reaches beyond ±{margin:g}"
    return Claim(claim.id, claim.text, verdict, e, reason, claim.method + f"; equivalence within ±{margin:g}")


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def bn_before_dropout(design: Design) -> Claim:
    cid = "bn_before_dropout"
    if "order" not in design.cell_factors:
        return _inconclusive(cid, "order (bn_first vs dropout_first) did not vary, so the two orders were never compared")
    cells = _cells(design, "score")
    cells = cells[(cells["bn"] != "none") & cells["dropout"].isin(CONV_DROPOUT)].reset_index(drop=True)
    return _matched(cid, design, cells, "order", {"bn_first": ["bn_first"], "dropout_first": ["dropout_first"]},
                    metric=design.metric, higher_is_better=True, margin=ACC_MARGIN)


def dropout_fc_only_with_bn(design: Design) -> Claim:
    cid = "dropout_fc_only_with_bn"
    cells = _cells(design, "score")
    if "dropout" not in cells or "bn" not in cells:
        return _inconclusive(cid, "dropout placement or bn was not recorded per cell")
    cells = cells[cells["bn"] != "none"].reset_index(drop=True)
    present = set(cells["dropout"])
    other = "all" if "all" in present else ("conv" if "conv" in present else None)
    if "fc" not in present or other is None:
        return _inconclusive(
            cid, "no cell with BatchNorm has both Dropout only in the classifier (fc) and Dropout in the convolutions (all or conv)"
        )
    return _matched(cid, design, cells, "dropout", {"fc": ["fc"], other: [other]}, metric=design.metric,
                    higher_is_better=True, margin=ACC_MARGIN, non_inferiority=True)


def bn_dropout_improves_loss(design: Design) -> Claim:
    cid = "bn_dropout_improves_loss"
    if "val_loss" not in design.trials:
        return _inconclusive(cid, "the trials table has no val_loss column")
    cells = _cells(design, "val_loss")
    cells = cells[cells["bn"] != "none"].reset_index(drop=True)
    if not (cells["dropout"] == "none").any() or not (cells["dropout"] != "none").any():
        return _inconclusive(cid, "no cells with BatchNorm both with and without Dropout (with at least 2 scored replicates)")
    with_dropout = [v for v in ("fc", "conv", "all") if v in set(cells["dropout"])]
    return _matched(cid, design, cells, "dropout", {"bn+dropout": with_dropout, "bn only": ["none"]},
                    metric="val_loss", higher_is_better=False, margin=None)


def all_three_generalize_best(design: Design) -> Claim:
    cid = "all_three_generalize_best"
    if "gap" not in design.trials:
        return _inconclusive(
            cid, "the table has no train_eval_loss (the loss on clean training images in eval mode), so the "
            "generalization gap is not measured; a gap against the train-mode loss shrinks with any regulariser"
        )
    if "augment" not in design.trials:
        return _inconclusive(cid, "augmentation was not recorded (no augment column)")
    cells = _cells(design, "gap")
    claimed = _all_three(cells)
    if not claimed.any():
        return _inconclusive(cid, _no_all_three_reason(design.trials))
    return _best_of(cid, cells, claimed, metric="gap", higher_is_better=False)


def large_model_all_three_best(design: Design, ranking: Ranking) -> Claim:
    cid = "large_model_all_three_best"
    table = ranking.table
    if "model" not in table or "augment" not in table:
        return _inconclusive(cid, "model size or augmentation was not recorded")
    cells = table[table["df"] >= 1].rename(columns={"score": "mean"}).reset_index(drop=True)
    claimed = _all_three(cells) & (cells["model"] == "large").to_numpy()
    if not claimed.any():
        if not (design.trials["model"] == "large").any():
            return _inconclusive(cid, "the large model was not run")
        return _inconclusive(cid, _no_all_three_reason(design.trials[design.trials["model"] == "large"]) + " with the large model")
    return _best_of(cid, cells, claimed, metric=ranking.metric, higher_is_better=True)


def _no_all_three_reason(trials: pd.DataFrame) -> str:
    missing = []
    if not (trials["bn"] != "none").any():
        missing.append("BatchNorm")
    if not (trials["dropout"] != "none").any():
        missing.append("Dropout")
    if not trials["augment"].map(lambda v: v is True or v == True).any():  # noqa: E712
        missing.append("augmentation")
    if missing:
        return "no scored run used " + " or ".join(missing)
    return "no cell with at least 2 scored replicates combines BatchNorm, Dropout and augmentation"


def _all_three(cells: pd.DataFrame) -> np.ndarray:
    augment = cells["augment"].map(lambda v: v is True or v == True)  # noqa: E712 - NaN-safe
    return ((cells["bn"] != "none") & (cells["dropout"] != "none") & augment).to_numpy(dtype=bool)


def _cells(design: Design, column: str) -> pd.DataFrame:
    cells = design.cells if column == "score" else cell_table(design.trials, column)
    return cells[cells["df"] >= 1].reset_index(drop=True)


def _matched(cid, design, cells, factor, groups, *, metric, higher_is_better, margin, non_inferiority=False) -> Claim:
    labels = list(groups)
    if cells.empty:
        return _inconclusive(cid, f"no cells to compare for {factor} (with at least 2 scored replicates each)")
    nested = NESTED.get(factor, ())
    keys = tuple(f for f in design.cell_factors if f != factor and f not in nested and f in cells)
    comparison = group_weights(cells, factor, groups, keys)
    if comparison is None:
        return _inconclusive(cid, f"not every group of {factor} ({', '.join(labels)}) has a cell with at least 2 scored replicates")
    iv, p = contrast(cells, comparison, labels[0], labels[1])
    means = {l: float(comparison.weights[l] @ cells["mean"]) for l in labels}
    sign = 1.0 if higher_is_better else -1.0
    evidence = GroupEvidence(
        metric, iv.estimate, iv.low, iv.high, p, comparison.matched,
        n_cells=int(sum((w > 0).sum() for w in comparison.weights.values())),
        n_trials=int(cells.loc[np.any([w > 0 for w in comparison.weights.values()], axis=0), "n"].sum()),
        margin=margin,
        groups={label: means[label] for label in labels[:2]},
    )
    verdict, reason = _verdict(sign * iv.estimate, *sorted((sign * iv.low, sign * iv.high)), margin, non_inferiority)
    if not comparison.matched:
        reason += "; the groups could not be matched on the other factors, so the difference may be confounded"
    return Claim(cid, CLAIM_TEXT[cid], verdict, evidence, reason, METHOD)


def _best_of(cid, cells, claimed, *, metric, higher_is_better) -> Claim:
    if not claimed.any():
        return _inconclusive(cid, "no cell (with at least 2 scored replicates) has the claimed setting")
    if claimed.all():
        return _inconclusive(cid, "every compared cell has the claimed setting; there is nothing to compare it with")
    sign = 1.0 if higher_is_better else -1.0
    order = np.argsort(-sign * cells["mean"].to_numpy())
    best_claimed = next(i for i in order if claimed[i])
    best_other = next(i for i in order if not claimed[i])
    w = np.zeros(len(cells))
    w[best_claimed], w[best_other] = 1.0, -1.0
    iv, p = stats.linear_contrast(w, cells["mean"], cells["se2"], cells["df"])
    evidence = BestCellEvidence(
        metric,
        claimed_cell=str(cells["cell"].iloc[best_claimed]),
        claimed_score=float(cells["mean"].iloc[best_claimed]),
        claimed_rank=int(np.flatnonzero(order == best_claimed)[0]) + 1,
        best_other_cell=str(cells["cell"].iloc[best_other]),
        best_other_score=float(cells["mean"].iloc[best_other]),
        difference=iv.estimate, ci_low=iv.low, ci_high=iv.high, p_value=p,
    )
    lo, hi = sorted((sign * iv.low, sign * iv.high))
    verdict, reason = _verdict(sign * iv.estimate, lo, hi, ACC_MARGIN if is_accuracy(metric) else None, False)
    if verdict == SUPPORTED and evidence.claimed_rank != 1:
        verdict, reason = INCONCLUSIVE, "the claimed cell is not ranked first"
    return Claim(cid, CLAIM_TEXT[cid], verdict, evidence, reason, BEST_METHOD)


def _verdict(estimate, low, high, margin, non_inferiority) -> tuple[str, str]:
    """Verdict from an interval oriented so that positive means the claim holds.

    Mirror-symmetric: negating the interval turns supported into refuted and
    leaves negligible and inconclusive as they are (a non-inferiority claim is
    tested against -margin instead of 0, on both sides).
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE, "too few replicates for an interval"
    # "At least as good" is proved, not set aside, by an interval within the margin.
    if margin is not None and not non_inferiority and -margin < low and high < margin:
        real = "real (the interval excludes 0) but " if low > 0 or high < 0 else ""
        return NEGLIGIBLE, f"the 95% interval lies within ±{_margin_text(margin)}: any difference is {real}smaller than the margin"
    threshold = -margin if non_inferiority else 0.0
    where = f"a loss of {_margin_text(margin)}" if non_inferiority else "0"
    if low > threshold:
        return SUPPORTED, f"the 95% interval lies wholly on the claimed side of {where}"
    if high < threshold:
        return REFUTED, f"the 95% interval lies wholly on the other side of {where}, against the claim"
    return INCONCLUSIVE, f"the 95% interval includes {where}"


def _margin_text(margin: float) -> str:
    """Margins are on accuracy: 0.001 -> '0.1 percentage point'."""
    return f"{100 * margin:g} percentage point"


def _inconclusive(cid: str, reason: str) -> Claim:
    return Claim(cid, CLAIM_TEXT[cid], INCONCLUSIVE, None, reason, "")
