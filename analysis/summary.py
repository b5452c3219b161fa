"""The conclusions as plain sentences, each with its numbers.

Reads the typed `analysis.results.Conclusions` (rebuilt from conclusions.json by
`analysis.results.from_json` when the report is redrawn from that file alone).
"""

from __future__ import annotations

from analysis.rates import NEAR_OPTIMAL
from analysis.reference_run import AGREES, CONTRADICTS, DECIDED_ONLY_HERE, UNDECIDED_HERE
from analysis.results import (BestCellEvidence, Conclusions, GroupEvidence, LineEvidence, RateEntry,
                              ReferenceAgreement, Setting)
from analysis.text import CONFIRM, ci_num, ci_pct, ci_pp, is_accuracy, num, ok, pct, pp, pvalue

METRIC_WORDS = {
    "best_val_acc": "best validation accuracy",
    "val_acc": "final validation accuracy",
    "val_loss": "validation loss",
    "gap": "generalization gap (val_loss - train_eval_loss)",
    "var_shift_max": "variance shift (largest over the BN layers; 1 is none)",
    "acc_gain_bn_reestimated": "validation accuracy gained by re-estimating BN statistics",
    "conf_wrong": "mean confidence of wrong predictions",
    "ece": "expected calibration error",
}
CLAIM_NAMES = {
    "bn_before_dropout": "BatchNorm before Dropout",
    "dropout_fc_only_with_bn": "with BatchNorm, Dropout only in the classifier",
    "bn_dropout_improves_loss": "BatchNorm + Dropout lowers validation loss",
    "all_three_generalize_best": "BN + Dropout + augmentation generalizes best",
    "large_model_all_three_best": "the large model with all three is best",
    "dropout_before_bn_shifts_variance": "Dropout before BN causes variance shift",
    "variance_shift_explains_loss": "variance shift explains the accuracy lost",
    "dropout_after_last_bn_no_shift": "Dropout only after the last BN is free of variance shift",
    "bn_reestimation_recovers": "re-estimating BN statistics recovers the loss",
    "uout_removes_shift": "Uout removes the variance shift",
    "bn_lowers_wrong_confidence": "BatchNorm lowers the confidence of wrong predictions",
}


def metric_words(metric: str) -> str:
    return METRIC_WORDS.get(metric, metric)


def summary_sentences(c: Conclusions) -> list[str]:
    out = []
    out += _stage(c)
    out += _ranking(c)
    out += _interaction(c)
    out += _effects(c)
    out += _resolution(c)
    out += _diverged(c)
    out += _final(c)
    if c.warnings:
        out.append(f"There {'is' if len(c.warnings) == 1 else 'are'} {len(c.warnings)} warning(s) to read before trusting these numbers.")
    return out


def answer_sentences(c: Conclusions) -> list[str]:
    """What the study answers, first: each claim's verdict with its effect, then which drop rates work."""
    return _claims(c) + _rates(c)


def _stage(c: Conclusions) -> list[str]:
    counts = c.search.counts
    if c.source == "search":
        return [
            f"Preliminary: these conclusions come from the search alone ({counts.analysed} full-budget trials of "
            f"{counts.trials}). Each cell is ranked by its best trial, a selected maximum that is biased upwards, "
            f"and nothing is tested; confirm them by retraining each cell's best configuration on replicates "
            f"({CONFIRM})."
        ]
    n = max((e.n for e in c.ranking), default=0)
    unit = c.ranking[0].unit if c.ranking else "replicates"
    return [
        f"These conclusions come from stage 2: each cell's best configuration from the search "
        f"({counts.analysed} full-budget trials of {counts.trials}) retrained on up to {n} {unit} to the full "
        f"budget ({c.counts.analysed} of {c.counts.trials} scored)."
        + _setting(c.setting) + _tuning_luck(c)
    ]


def _tuning_luck(c: Conclusions) -> str:
    """With few search trials per cell, a selected configuration can miss the cell's optimum."""
    cells = len(c.search.best_trials) or 1
    per_cell = c.search.counts.analysed / cells
    if per_cell >= 8:
        return ""
    return (f" The replicates compare the configurations the search selected from about {per_cell:.0f} full-budget "
            "trials per cell: a selected learning rate can miss a cell's optimum, so part of a difference between "
            "cells may be tuning luck rather than placement; more trials per cell (--num-samples) shrink it.")


FASHION_MNIST_TRAIN = 60_000  # FashionMNIST's training images, validation split included


def _setting(setting: Setting) -> str:
    """' Every run trained on 1,500 images for 4 epochs: ...' when the study used a subset."""
    size, epochs = setting.train_size, setting.max_epochs
    if not ok(size) or not ok(epochs):
        return ""
    whole = FASHION_MNIST_TRAIN - int(setting.val_size) if ok(setting.val_size) else None
    if whole is not None and int(size) >= whole:
        return f" Every run trained on all {int(size):,} training images for {int(epochs)} epochs."
    return (f" Every run trained on {int(size):,} images for {int(epochs)} epochs: the conclusions are about networks "
            "trained that briefly, on that little data, and may not hold on the full 54,000 images.")


def _ranking(c: Conclusions) -> list[str]:
    if not c.ranking:
        return []
    best = c.ranking[0]
    if c.source == "search":
        return [
            f"The best cell is {best.cell}: its best trial reached {pct(best.score)} {metric_words(c.metric)} "
            f"(a selected maximum of {best.n} trials; no interval)."
        ]
    s = [
        f"The best cell is {best.cell}, with a mean {metric_words(c.metric)} of {pct(best.score)} "
        f"({ci_pct(best.ci_low, best.ci_high)}, n = {best.n} {best.unit})."
    ]
    top = c.comparisons.best_vs_runner_up
    if top:
        s.append(
            f"It leads the runner-up, {top.runner_up}, by {pp(top.difference)} "
            f"({ci_pp(top.ci_low, top.ci_high)}, Welch t-test {pvalue(top.p_value)}; "
            "both were picked from the same data, so read this as descriptive)."
        )
    omni = c.comparisons.omnibus
    if omni:
        verdict = "The cells differ" if omni.significant else "There is no clear evidence that the cells differ at all"
        s.append(f"{verdict}: the test of equal cell means gives {pvalue(omni.p_value)} across {len(c.ranking)} cells.")
    return s


def _interaction(c: Conclusions) -> list[str]:
    it = c.interaction
    pair = " x ".join(it.factors)
    if it.p_value is None:
        return [f"The {pair} interaction could not be tested: {it.reason or 'not enough data'}."]
    stat = f"F({num(it.df1, 2)}, {num(it.df2, 3)}) = {num(it.statistic, 3)}, {pvalue(it.p_value)}"
    second = it.factors[1]
    if it.significant:
        head = f"The effect of {second} depends on BatchNorm (interaction test {stat})."
    else:
        head = f"There is no significant evidence that the effect of {second} depends on BatchNorm (interaction test {stat})."
    detail = _dropout_effect_by_bn(it.means or {}, c.effects_metric)
    rests = f"It rests on {it.n_cells} cells ({it.n_trials} replicates)."
    return [head + " " + rests] + ([detail] if detail else [])


def _dropout_effect_by_bn(means: dict[str, dict[str, float]], metric: str) -> str:
    """'Against no Dropout, the best placement changes the score by ... with bn=none, ...'."""
    parts = []
    for bn, levels in means.items():
        base = next((v for k, v in levels.items() if k == "none" or k.startswith("none,")), None)
        others = {k: v for k, v in levels.items() if not (k == "none" or k.startswith("none,"))}
        if base is None or not others:
            continue
        level, value = max(others.items(), key=lambda kv: kv[1])
        parts.append(f"with bn={bn}, the best Dropout setting ({level}) scores {_diff(value - base, metric)} against no Dropout")
    if not parts:
        return ""
    return ("Descriptively, from the cell means (the best of several settings, so read the sizes as optimistic): "
            + "; ".join(parts) + ".")


def _diff(x: float, metric: str) -> str:
    return pp(x) if is_accuracy(metric) else num(x)


def _effects(c: Conclusions) -> list[str]:
    out = []
    for factor, values in c.effects.items():
        finite = {k: v for k, v in values.items() if ok(v.score)}
        if len(finite) < 2:
            continue
        ranked = sorted(finite.items(), key=lambda kv: -kv[1].score)
        listing = ", ".join(f"{k} {pct(v.score)}" for k, v in ranked)
        cells = sorted({v.n_cells for v in finite.values()})
        over = f"{cells[0]} cells each" if len(cells) == 1 else f"{cells[0]}-{cells[-1]} cells each"
        if c.source == "search":
            out.append(f"{factor}: {listing} (best search trial per value, over {over}; not tested).")
            continue
        test = c.effect_tests.get(factor)
        if test is None or test.p_value is None:
            tail = "not tested"
        else:
            word = "the values differ" if test.significant else "no significant difference"
            tail = f"{word}, {pvalue(test.p_value)}" + ("" if test.matched else ", unmatched")
        out.append(f"{factor}: {listing} (least-squares means of {metric_words(c.effects_metric)} over {over}; {tail}).")
    return out


def _resolution(c: Conclusions) -> list[str]:
    r = c.resolution
    if r is None or not ok(r.detectable):
        return []
    return [
        f"Resolution: with {r.n} {r.unit} per cell and a typical spread of {pp(r.sd, sign=False)} between "
        f"them, a difference between two cells smaller than about {pp(r.detectable, sign=False)} would usually "
        "go undetected (it is found with 80% power at that size); a result that is not significant does not rule "
        "out a difference, least of all a smaller one."
    ]


def _diverged(c: Conclusions) -> list[str]:
    div = {cell: d for cell, d in c.diverged.items() if d.trials}
    total = sum(d.diverged for d in div.values())
    if not total:
        return []
    worst = sorted(div.items(), key=lambda kv: -kv[1].share)
    listing = ", ".join(f"{cell} {d.diverged}/{d.trials}" for cell, d in worst if d.diverged)[:400]
    bn_text = ""
    if len(c.diverged_by_bn) > 1:
        bn_text = " By BatchNorm setting: " + ", ".join(
            f"bn={bn} {d.diverged}/{d.trials} ({d.diverged / d.trials:.0%})" for bn, d in c.diverged_by_bn.items()) + "."
    return [
        f"{total} search trial(s) diverged (non-finite loss or accuracy near chance): {listing}.{bn_text} "
        "Diverged trials are never scored; a high share says a cell tolerates less of the learning-rate range."
    ]


def _rates(c: Conclusions) -> list[str]:
    out = []
    for rate, per_bn in c.dropout_rate.items():
        parts = [
            f"{e.near_optimal[0]:.2f}–{e.near_optimal[1]:.2f} with bn={bn} (fitted best {e.best:.2f}, "
            f"95% bootstrap CI {e.ci_low:.2f}–{e.ci_high:.2f}, {pct(e.score_at_best)}"
            + (f"; {rate_levels(e)}" if e.levels else "") + ")"
            for bn, e in per_bn.items()
            if ok(e.best)
        ]
        if parts:
            note = " (from the search trials: preliminary)" if any(e.source == "search" for e in per_bn.values()) else ""
            out.append(f"Near-optimal {rate} (within {pp(NEAR_OPTIMAL, sign=False)} of the best fit){note}: "
                       + "; ".join(parts) + ".")
    return out


def rate_levels(e: RateEntry) -> str:
    """A grid's fitted score per rate with its band: '0.15: 90.1% (89.8–90.4%), 0.3: ...'."""
    return ", ".join(f"{r:g}: {pct(y)} ({pct(lo)}–{pct(hi)})" for r, y, lo, hi in e.levels)


def _claims(c: Conclusions) -> list[str]:
    if c.source == "search" and c.claims:
        return [f"The post's claims are not checked on search trials alone; confirm with {CONFIRM}."]
    out = []
    for claim in c.claims:
        name = CLAIM_NAMES.get(claim.id, claim.id)
        effect = f", {claim_effect(claim.evidence)}" if claim.evidence is not None else ""
        why = f" ({claim.reason})" if claim.verdict == "inconclusive" else ""
        out.append(f"Claim \"{name}\": {claim.verdict}{effect}{why}.")
    return out


def claim_effect(ev: BestCellEvidence | GroupEvidence | LineEvidence) -> str:
    """A claim's effect and its simultaneous interval, in a few words."""
    if isinstance(ev, LineEvidence):
        return f"slope {pp(ev.slope)} per unit of shift ({_simultaneous(ci_pp(ev.ci_low, ev.ci_high))})"
    acc = is_accuracy(ev.metric)
    diff = pp(ev.difference) if acc else (f"{ev.difference:+.3g}" if ok(ev.difference) else "n/a")
    interval = ci_pp(ev.ci_low, ev.ci_high) if acc else ci_num(ev.ci_low, ev.ci_high)
    return f"{metric_words(ev.metric)} {diff} ({_simultaneous(interval)})"


def _simultaneous(interval: str) -> str:
    """The claims' intervals hold together over the table (see `analysis.claims`)."""
    return interval.replace("95% CI", "simultaneous 95% CI", 1)


def claim_evidence(ev: BestCellEvidence | GroupEvidence | LineEvidence) -> str:
    if isinstance(ev, LineEvidence):
        return (
            f"slope of the {ev.y} on {metric_words(ev.x)}: {pp(ev.slope)} per unit of shift "
            f"({_simultaneous(ci_pp(ev.ci_low, ev.ci_high))}, {pvalue(ev.p_value)}, R² {num(ev.r_squared, 2)}, {ev.n_points} configurations)"
        )
    acc = is_accuracy(ev.metric)
    val = pct if acc else num
    diff = pp if acc else (lambda x: f"{x:+.3g}" if ok(x) else "n/a")
    interval = _simultaneous(ci_pp(ev.ci_low, ev.ci_high) if acc else ci_num(ev.ci_low, ev.ci_high))
    words = metric_words(ev.metric)
    if isinstance(ev, BestCellEvidence):
        return (
            f"{ev.claimed_cell} has {words} {val(ev.claimed_score)} (rank {ev.claimed_rank}) against "
            f"{val(ev.best_other_score)} for {ev.best_other_cell}, the best other cell, difference "
            f"{diff(ev.difference)} ({interval}, {pvalue(ev.p_value)}; both cells are picked from the same "
            "replicates, so this is optimistic about the winner)"
        )
    (a, score_a), (b, score_b) = ev.groups.items()
    return (
        f"{words} {val(score_a)} for {a} against {val(score_b)} for {b}, difference {diff(ev.difference)} "
        f"({interval}, {pvalue(ev.p_value)}, {ev.n_cells} cells)"
    )


def _final(c: Conclusions) -> list[str]:
    if not c.final:
        return []
    best = c.final[0]
    return [
        f"On the test set, the best configuration ({best.config_id}, {best.cell}) reaches {pct(best.test_acc)} "
        f"({ci_pct(best.ci_low, best.ci_high)}, {best.n_seeds} seeds)."
    ]


def reference_sentences(reference: ReferenceAgreement | None) -> list[str]:
    """How this run's verdicts stand against a reference run's, in one sentence (none without a reference)."""
    if reference is None:
        return []
    parts = [f"the same verdict on {reference.count(AGREES)} of {len(reference.claims)} claims"]
    for kind, words in ((UNDECIDED_HERE, "inconclusive here where that run decided"),
                        (DECIDED_ONLY_HERE, "decided here where that run was inconclusive"),
                        (CONTRADICTS, "opposite decisions")):
        ids = [claim.id for claim in reference.claims if claim.agreement == kind]
        if ids:
            parts.append(f"{words}: {len(ids)} ({', '.join(ids)})")
    return [f"Against {reference.label}: " + "; ".join(parts) + "."]
