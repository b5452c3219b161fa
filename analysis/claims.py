"""Claims (advice from the source post, and the variance-shift mechanism) checked against the study:
a verdict with numbers per claim.

Each claim is declared as data (`search_spaces.claims`: the shipped ones in
``search_spaces/claims.yaml``, a user's in their space file) and decided here by its kind:

- ``difference``: a difference between two groups of matched cells, oriented so that a
  positive difference is what the claim says (`analysis.stats.linear_contrast`);
- ``best``: the best cell of the claimed group against the best other cell; both are
  picked from the same data, so those intervals are optimistic about the winner and the
  evidence says so;
- ``shift_slope``: the slope of a line through the configurations
  (`analysis.mechanism.shift_line`);
- ``reestimation_gain``: the mean paired gain of re-estimating BN statistics.

Verdicts, with the claim's margin (in the metric's units) applied the same way in both
directions, so a claim and its mirror image get mirrored verdicts:

- `negligible`: the whole interval lies within ±margin: whatever the sign (and even
  when the interval excludes 0), the difference is smaller than the margin;
- `supported`: otherwise, the interval lies above 0 (for non-inferiority: above
  -margin; for equivalence: within ±margin);
- `refuted`: otherwise, the interval lies below 0 (for non-inferiority: below
  -margin; for equivalence: wholly beyond ±margin);
- `inconclusive`: otherwise (the reason gives the interval's half-width and the one a
  verdict needs), or when the study did not vary what the claim needs, or when only
  search trials exist (their scores are selected maxima).

Many claims are decided on one study, several on shared cells, so the claim table
controls its familywise error: every claim's interval is a simultaneous one, at level
1 - 0.05/m for m claims (Bonferroni), and the chance that any verdict of the table is
supported or refuted under no effect at all is at most 5%.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from analysis import mechanism, stats
from analysis.design import Design, cell_table
from analysis.effects import NESTED, group_weights
from analysis.results import BestCellEvidence, Claim, GroupEvidence, Mechanism
from analysis.text import SEARCH_ONLY, is_accuracy
from analysis.ranking import SEARCH, Ranking, rank_cells
from search_spaces.claims import ACCURACY, ClaimSpec, shipped_claims
from study.vocabulary.config import TrialConfig

FACTOR_DEFAULTS = TrialConfig().to_flat()  # what a trial that does not set a factor trains with

SUPPORTED, REFUTED, NEGLIGIBLE, INCONCLUSIVE = "supported", "refuted", "negligible", "inconclusive"
VERDICTS = (SUPPORTED, REFUTED, NEGLIGIBLE, INCONCLUSIVE)
FAMILY_ALPHA = 0.05  # the claim table's familywise error rate
METHOD = "difference of least-squares means of matched cells, " + stats.WELCH_T
LINE_METHOD = "least-squares line through one point per configuration, slope with a t interval (" + mechanism.METHOD + ")"
GAIN_METHOD = "mean over cells of the paired gain (the same network re-estimated minus as trained), " + stats.LS_MEAN
BEST_METHOD = (
    "best cell of the claimed group against the best other cell, " + stats.WELCH_T
    + " (both cells chosen from the same data: optimistic about the winner)"
)


def family_level(n_claims: int) -> float:
    """The level of each claim's interval so that the whole table errs with probability at most 5%."""
    return 1.0 - FAMILY_ALPHA / max(n_claims, 1)


def check_claims(design: Design, ranking: Ranking, mechanism_summary: Mechanism,
                 claims: Sequence[ClaimSpec] | None = None) -> list[Claim]:
    """Every claim's verdict (the shipped claims when `claims` is None); all `inconclusive` when the
    ranking comes from the search alone. `mechanism_summary` is `analysis.mechanism.summarise_mechanism`
    of the same design."""
    claims = tuple(claims) if claims else shipped_claims()
    if ranking.source == SEARCH:
        return [_inconclusive(spec, SEARCH_ONLY) for spec in claims]
    level = family_level(len(claims))
    return [decide_claim(spec, design, ranking, mechanism_summary, level) for spec in claims]


def decide_claim(spec: ClaimSpec | str, design: Design, ranking: Ranking | None = None,
                 mechanism_summary: Mechanism | None = None, level: float = stats.LEVEL) -> Claim:
    """One claim's verdict (a shipped claim may be named by its id) with its interval at `level`; the
    ranking and the mechanism are computed from `design` where not given."""
    if isinstance(spec, str):
        spec = next(c for c in shipped_claims() if c.id == spec)
    if spec.kind == "best" and ranking is None:
        ranking = rank_cells(design, "replicates")
    if spec.kind == "shift_slope" and mechanism_summary is None:
        mechanism_summary = mechanism.summarise_mechanism(design, "replicates")
    decide = {"difference": _difference, "best": _best, "shift_slope": _shift_slope, "reestimation_gain": _reestimation_gain}
    return decide[spec.kind](spec, design, ranking, mechanism_summary, level)


def _metric_column(spec: ClaimSpec) -> str:
    return "score" if spec.metric == ACCURACY else spec.metric


def _metric_name(spec: ClaimSpec, design: Design) -> str:
    return design.metric if spec.metric == ACCURACY else spec.metric


def _claim_cells(spec: ClaimSpec, design: Design) -> tuple[pd.DataFrame | None, str | None]:
    """The cells (at least 2 replicates measuring the claim's metric) where the claim applies, or why none."""
    column = _metric_column(spec)
    if column != "score" and not mechanism.measured(design.trials, column):
        return None, f"the replicates have no {column} (an experiment from before it was measured, or no cell measures it)"
    # A non-finite measure (a diverged network's) counts as not measured.
    cells = design.cells if column == "score" else cell_table(mechanism.with_gain(design.trials), column)
    return _where(spec, cells[cells["df"] >= 1]).reset_index(drop=True), None


def _in_where(spec: ClaimSpec, cells: pd.DataFrame) -> np.ndarray:
    """Which cells the claim's `where` holds for; a factor the table lacks takes its default value
    (a table without `augment` trained without augmentation)."""
    keep = np.ones(len(cells), dtype=bool)
    for factor, values in spec.where.items():
        if factor in cells:
            keep &= cells[factor].isin(values).to_numpy(dtype=bool)
        elif FACTOR_DEFAULTS.get(factor) not in values:
            keep[:] = False
    return keep


def _where(spec: ClaimSpec, cells: pd.DataFrame) -> pd.DataFrame:
    return cells[_in_where(spec, cells)]


def _absent(spec: ClaimSpec, trials: pd.DataFrame) -> str:
    """Which of the claimed group's values no scored run has (why a `best` claim has no claimed cell)."""
    missing = [f"{f} in {list(v)}" for f, v in spec.where.items()
               if not (trials[f].isin(v).any() if f in trials else FACTOR_DEFAULTS.get(f) in v)]
    return "no scored run has " + " or ".join(missing) if missing else "no cell with at least 2 scored replicates is in the claimed group"


def _difference(spec: ClaimSpec, design: Design, ranking, mechanism_summary, level: float) -> Claim:
    if spec.factor not in design.cell_factors:
        return _inconclusive(spec, f"{spec.factor} ({' vs '.join(spec.groups())}) did not vary")
    cells, why = _claim_cells(spec, design)
    if why:
        return _inconclusive(spec, why)
    claim = _matched(spec, design, cells, level)
    return _as_equivalence(claim, spec.margin) if spec.test == "equivalence" else claim


def _best(spec: ClaimSpec, design: Design, ranking: Ranking, mechanism_summary, level: float) -> Claim:
    if spec.metric == ACCURACY:
        cells = ranking.table[ranking.table["df"] >= 1].rename(columns={"score": "mean"}).reset_index(drop=True)
        metric = ranking.metric
    else:
        if spec.metric not in design.trials:
            return _inconclusive(spec, f"the table has no {spec.metric} column")
        cells = cell_table(design.trials, spec.metric)
        cells = cells[cells["df"] >= 1].reset_index(drop=True)
        metric = spec.metric
    claimed = _in_where(spec, cells)
    if not claimed.any():
        return _inconclusive(spec, _absent(spec, design.trials))
    return _best_of(spec, cells, claimed, metric=metric, higher_is_better=spec.better == "higher", level=level)


def _shift_slope(spec: ClaimSpec, design: Design, ranking, mechanism_summary: Mechanism, level: float) -> Claim:
    if not mechanism.measured(design.trials, mechanism.SHIFT):
        return _inconclusive(spec, "the replicates have no var_shift_max (an experiment from before it was measured, or no BN)")
    points = [c for c in mechanism_summary.cells
              if all(c.factors.get(f, FACTOR_DEFAULTS.get(f)) in v for f, v in spec.where.items())]
    line = mechanism.shift_line(points, level)
    if line is None:
        return _inconclusive(spec, "fewer than 3 configurations with BN and Dropout have a cell without Dropout to compare with")
    verdict, _ = _verdict(-line.slope, *sorted((-line.ci_low, -line.ci_high)), None, False)
    reason = {
        SUPPORTED: "the slope's interval lies below 0: the larger the shift, the more accuracy is lost",
        REFUTED: "the slope's interval lies above 0: the larger the shift, the less accuracy is lost",
    }.get(verdict, "the slope's interval includes 0" + _resolution((line.ci_high - line.ci_low) / 2, abs(line.slope), True)
          if math.isfinite(line.ci_low) else "too few points for an interval")
    return _claim(spec, verdict, line, reason, LINE_METHOD, [c.cell for c in points])


def _reestimation_gain(spec: ClaimSpec, design: Design, ranking, mechanism_summary, level: float) -> Claim:
    trials = mechanism.with_gain(design.trials)
    if not mechanism.measured(trials, mechanism.GAIN):
        return _inconclusive(spec, f"the replicates have no {mechanism.REESTIMATED} (an experiment from before it was measured, or no BN)")
    cells = cell_table(trials, mechanism.GAIN)
    cells = _where(spec, cells[cells["df"] >= 1]).reset_index(drop=True)
    if cells.empty:
        return _inconclusive(spec, "no cell of the claim has 2 replicates re-estimated")
    w = np.full(len(cells), 1.0 / len(cells))
    iv, p = stats.linear_contrast(w, cells["mean"], cells["se2"], cells["df"], level=level)
    after = cell_table(design.trials, mechanism.REESTIMATED).set_index("cell")["mean"]
    before = cell_table(design.trials, "val_acc").set_index("cell")["mean"]
    evidence = GroupEvidence(
        "val_acc", iv.estimate, iv.low, iv.high, p, True, n_cells=len(cells), n_trials=int(cells["n"].sum()),
        margin=spec.margin, groups={"re-estimated": float(w @ after.loc[cells["cell"]].to_numpy()),
                                    "as trained": float(w @ before.loc[cells["cell"]].to_numpy())},
    )
    verdict, reason = _verdict(iv.estimate, iv.low, iv.high, spec.margin, False, True)
    return _claim(spec, verdict, evidence, reason, GAIN_METHOD, list(cells["cell"]))


def _as_equivalence(claim: Claim, margin: float) -> Claim:
    """A claim of *no* difference: supported when the interval lies within ±margin, refuted when it lies
    wholly outside it, inconclusive otherwise."""
    e = claim.evidence
    if e is None or not (_finite(e.ci_low) and _finite(e.ci_high)):
        return claim
    if -margin < e.ci_low and e.ci_high < margin:
        verdict, reason = SUPPORTED, f"the interval lies within ±{margin:g}: no difference beyond the margin"
    elif e.ci_low > margin or e.ci_high < -margin:
        verdict, reason = REFUTED, f"the interval lies beyond ±{margin:g}: a difference larger than the margin"
    else:
        half = (e.ci_high - e.ci_low) / 2
        need = max(margin - abs(e.difference), abs(e.difference) - margin)
        verdict, reason = INCONCLUSIVE, f"the interval reaches beyond ±{margin:g}" + _resolution(half, need, is_accuracy(e.metric))
    return Claim(claim.id, claim.text, verdict, e, reason, claim.method + f"; equivalence within ±{margin:g}",
                 claim.post, claim.cells)


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _matched(spec: ClaimSpec, design: Design, cells: pd.DataFrame, level: float) -> Claim:
    factor, groups = spec.factor, spec.groups()
    labels = list(groups)
    if cells.empty:
        return _inconclusive(spec, f"no cells to compare for {factor} (with at least 2 scored replicates each)")
    nested = NESTED.get(factor, ())
    keys = tuple(f for f in design.cell_factors if f != factor and f not in nested and f in cells)
    comparison = group_weights(cells, factor, groups, keys)
    if comparison is None:
        return _inconclusive(spec, f"not every group of {factor} ({', '.join(labels)}) has a cell with at least 2 scored replicates")
    w = comparison.weights[labels[0]] - comparison.weights[labels[1]]
    iv, p = stats.linear_contrast(w, cells["mean"], cells["se2"], cells["df"], level=level)
    means = {label: float(comparison.weights[label] @ cells["mean"]) for label in labels}
    used = np.any([wl > 0 for wl in comparison.weights.values()], axis=0)
    sign = 1.0 if spec.better == "higher" else -1.0
    margin = None if spec.test == "equivalence" else spec.margin
    evidence = GroupEvidence(
        _metric_name(spec, design), iv.estimate, iv.low, iv.high, p, comparison.matched,
        n_cells=int(used.sum()), n_trials=int(cells.loc[used, "n"].sum()), margin=spec.margin, groups=means,
    )
    verdict, reason = _verdict(sign * iv.estimate, *sorted((sign * iv.low, sign * iv.high)), margin,
                               spec.test == "non_inferiority", is_accuracy(evidence.metric))
    if not comparison.matched:
        reason += "; the groups could not be matched on the other factors, so the difference may be confounded"
    return _claim(spec, verdict, evidence, reason, METHOD, list(cells.loc[used, "cell"]))


def _best_of(spec: ClaimSpec, cells, claimed, *, metric, higher_is_better, level) -> Claim:
    if not claimed.any():
        return _inconclusive(spec, "no cell (with at least 2 scored replicates) has the claimed setting")
    if claimed.all():
        return _inconclusive(spec, "every compared cell has the claimed setting; there is nothing to compare it with")
    sign = 1.0 if higher_is_better else -1.0
    order = np.argsort(-sign * cells["mean"].to_numpy())
    best_claimed = next(i for i in order if claimed[i])
    best_other = next(i for i in order if not claimed[i])
    w = np.zeros(len(cells))
    w[best_claimed], w[best_other] = 1.0, -1.0
    iv, p = stats.linear_contrast(w, cells["mean"], cells["se2"], cells["df"], level=level)
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
    margin = spec.margin if spec.margin is not None else (0.001 if is_accuracy(metric) else None)
    verdict, reason = _verdict(sign * iv.estimate, lo, hi, margin, False, is_accuracy(metric))
    if verdict == SUPPORTED and evidence.claimed_rank != 1:
        verdict, reason = INCONCLUSIVE, "the claimed cell is not ranked first"
    return _claim(spec, verdict, evidence, reason, BEST_METHOD,
                  [evidence.claimed_cell, evidence.best_other_cell])


def _verdict(estimate, low, high, margin, non_inferiority, accuracy: bool = False) -> tuple[str, str]:
    """Verdict from an interval oriented so that positive means the claim holds.

    Mirror-symmetric: negating the interval turns supported into refuted and
    leaves negligible and inconclusive as they are (a non-inferiority claim is
    tested against -margin instead of 0, on both sides). An inconclusive reason
    gives the interval's half-width and the half-width a verdict would need.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE, "too few replicates for an interval"
    # "At least as good" is proved, not set aside, by an interval within the margin.
    if margin is not None and not non_inferiority and -margin < low and high < margin:
        real = "real (the interval excludes 0) but " if low > 0 or high < 0 else ""
        return NEGLIGIBLE, f"the interval lies within ±{_margin_text(margin, accuracy)}: any difference is {real}smaller than the margin"
    threshold = -margin if non_inferiority else 0.0
    where = f"a loss of {_margin_text(margin, accuracy)}" if non_inferiority else "0"
    if low > threshold:
        return SUPPORTED, f"the interval lies wholly on the claimed side of {where}"
    if high < threshold:
        return REFUTED, f"the interval lies wholly on the other side of {where}, against the claim"
    # The nearest verdict: a side of the threshold, or (with a margin) lying within ±margin.
    need = abs(estimate - threshold)
    if margin is not None and not non_inferiority:
        need = max(need, margin - abs(estimate))
    return INCONCLUSIVE, f"the interval includes {where}" + _resolution((high - low) / 2, need, accuracy)


def _resolution(half_width: float, needed: float, accuracy: bool = False) -> str:
    """What an inconclusive interval lacks: its half-width against the one that would decide it (accuracy in pp)."""
    show = (lambda x: f"{100 * x:.2g} pp") if accuracy else (lambda x: f"{x:.3g}")
    if not needed > 0:
        return f" (half-width {show(half_width)}; the estimate sits on the threshold, so no resolution decides it)"
    more = (half_width / needed) ** 2
    replicates = (f"about {more:.2g} times the replicates per cell at this spread" if more < 100
                  else "far more replicates than a study affords: the estimate lies near the threshold")
    return f" (half-width {show(half_width)}; a verdict needs it below {show(needed)}, {replicates})"


def _margin_text(margin: float, accuracy: bool = True) -> str:
    """A margin in its metric's units: on accuracy 0.001 -> '0.1 percentage point'."""
    return f"{100 * margin:g} percentage point" if accuracy else f"{margin:g}"


def _claim(spec: ClaimSpec, verdict, evidence, reason, method, cells) -> Claim:
    return Claim(spec.id, spec.text, verdict, evidence, reason, method, spec.post, [str(c) for c in cells])


def _inconclusive(spec: ClaimSpec, reason: str) -> Claim:
    return Claim(spec.id, spec.text, INCONCLUSIVE, None, reason, "", spec.post)
