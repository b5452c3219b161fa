"""The conclusions as plain sentences, each with its numbers.

Works on the JSON-ready conclusions dict, so a report can be rebuilt from
conclusions.json alone.
"""

from __future__ import annotations

from analysis.text import ci_num, ci_pct, ci_pp, is_accuracy, num, ok, pct, pp, pvalue

METRIC_WORDS = {
    "best_val_acc": "best validation accuracy",
    "val_acc": "final validation accuracy",
    "cv_val_acc": "cross-validated validation accuracy",
    "val_loss": "validation loss",
    "gap": "generalization gap (val_loss - train_loss)",
}
CLAIM_NAMES = {
    "bn_before_dropout": "BatchNorm before Dropout",
    "dropout_fc_only_with_bn": "with BatchNorm, Dropout only in the classifier",
    "bn_dropout_improves_loss": "BatchNorm + Dropout lowers validation loss",
    "all_three_generalize_best": "BN + Dropout + augmentation generalizes best",
    "large_model_all_three_best": "the large model with all three is best",
}


def metric_words(metric: str) -> str:
    return METRIC_WORDS.get(metric, metric)


def summary_sentences(c: dict) -> list[str]:
    out = []
    out += _ranking(c)
    out += _interaction(c)
    out += _effects(c)
    out += _rates(c)
    out += _claims(c)
    out += _final(c)
    if c.get("warnings"):
        out.append(f"There {'is' if len(c['warnings']) == 1 else 'are'} {len(c['warnings'])} warning(s) to read before trusting these numbers.")
    return out


def _ranking(c: dict) -> list[str]:
    ranking = c["ranking"]
    if not ranking:
        return []
    best = ranking[0]
    unit = best.get("unit", "trials")
    s = [
        f"The best cell is {best['cell']}, with a mean {metric_words(c['metric'])} of {pct(best['score'])} "
        f"({ci_pct(best['ci_low'], best['ci_high'])}, n = {best['n']} {unit})."
    ]
    top = c.get("comparisons", {}).get("best_vs_runner_up")
    if top:
        s.append(
            f"It leads the runner-up, {top['runner_up']}, by {pp(top['difference'])} "
            f"({ci_pp(top['ci_low'], top['ci_high'])}, Welch t-test {pvalue(top['p_value'])}; "
            "both were picked from the same data, so read this as descriptive)."
        )
    omni = c.get("comparisons", {}).get("omnibus")
    if omni:
        verdict = "The cells differ" if omni["significant"] else "There is no clear evidence that the cells differ at all"
        s.append(f"{verdict}: the test of equal cell means gives {pvalue(omni['p_value'])} across {len(ranking)} cells.")
    return s


def _interaction(c: dict) -> list[str]:
    it = c["interaction"]
    pair = " x ".join(it["factors"])
    if it.get("p_value") is None:
        return [f"The {pair} interaction could not be tested: {it.get('reason', 'not enough data')}."]
    stat = f"F({num(it['df1'], 2)}, {num(it['df2'], 3)}) = {num(it['statistic'], 3)}, {pvalue(it['p_value'])}"
    second = it["factors"][1]
    if it["significant"]:
        head = f"The effect of {second} depends on BatchNorm (interaction test {stat})."
    else:
        head = f"There is no significant evidence that the effect of {second} depends on BatchNorm (interaction test {stat})."
    detail = _dropout_effect_by_bn(it.get("means") or {}, c["effects_metric"])
    return [head] + ([detail] if detail else [])


def _dropout_effect_by_bn(means: dict, metric: str) -> str:
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
    return "From the cell means: " + "; ".join(parts) + "."


def _diff(x: float, metric: str) -> str:
    return pp(x) if is_accuracy(metric) else num(x)


def _effects(c: dict) -> list[str]:
    out = []
    metric = c["effects_metric"]
    for factor, values in c["effects"].items():
        finite = {k: v for k, v in values.items() if ok(v.get("score"))}
        if len(finite) < 2:
            continue
        ranked = sorted(finite.items(), key=lambda kv: -kv[1]["score"])
        listing = ", ".join(f"{k} {pct(v['score'])}" for k, v in ranked)
        test = c["effect_tests"].get(factor, {})
        if test.get("p_value") is None:
            tail = "not tested"
        else:
            word = "the values differ" if test["significant"] else "no significant difference"
            tail = f"{word}, {pvalue(test['p_value'])}" + ("" if test.get("matched") else ", unmatched")
        out.append(f"{factor}: {listing} (least-squares means of {metric_words(metric)}; {tail}).")
    return out


def _rates(c: dict) -> list[str]:
    out = []
    for rate, per_bn in c["dropout_rate"].items():
        parts = [
            f"{e['best']:.2f} with bn={bn} (95% bootstrap CI {e['ci_low']:.2f}–{e['ci_high']:.2f}, fitted {pct(e['score_at_best'])})"
            for bn, e in per_bn.items()
            if ok(e.get("best"))
        ]
        if parts:
            out.append(f"Best {rate}: " + "; ".join(parts) + ".")
    return out


def _claims(c: dict) -> list[str]:
    out = []
    for claim in c["claims"]:
        name = CLAIM_NAMES.get(claim["id"], claim["id"])
        ev = claim.get("evidence") or {}
        if not ev:
            out.append(f"Claim \"{name}\": inconclusive, {claim['reason']}.")
            continue
        out.append(f"Claim \"{name}\": {claim['verdict']}; {claim_evidence(ev)} ({claim['reason']}).")
    return out


def claim_evidence(ev: dict) -> str:
    metric = ev.get("metric", "")
    acc = is_accuracy(metric)
    val = pct if acc else num
    diff = pp if acc else (lambda x: f"{x:+.3g}" if ok(x) else "n/a")
    interval = ci_pp(ev.get("ci_low"), ev.get("ci_high")) if acc else ci_num(ev.get("ci_low"), ev.get("ci_high"))
    words = metric_words(metric)
    if "claimed_cell" in ev:
        return (
            f"{ev['claimed_cell']} has {words} {val(ev['claimed_score'])} (rank {ev['claimed_rank']}) against "
            f"{val(ev['best_other_score'])} for {ev['best_other_cell']}, difference {diff(ev['difference'])} "
            f"({interval}, {pvalue(ev.get('p_value'))})"
        )
    skip = {"metric", "difference", "ci_low", "ci_high", "p_value", "matched", "n_cells", "n_trials", "margin"}
    groups = [k for k in ev if k not in skip]
    if len(groups) == 2:
        a, b = groups
        return (
            f"{words} {val(ev[a])} for {a} against {val(ev[b])} for {b}, difference {diff(ev['difference'])} "
            f"({interval}, {pvalue(ev.get('p_value'))}, {ev.get('n_cells', '?')} cells)"
        )
    return f"difference {diff(ev.get('difference'))} ({interval})"


def _final(c: dict) -> list[str]:
    final = c.get("final")
    if not final:
        return []
    best = final[0]
    return [
        f"On the test set, the best configuration ({best['config_id']}, {best['cell']}) reaches {pct(best['test_acc'])} "
        f"({ci_pct(best['ci_low'], best['ci_high'])}, {best['n_seeds']} seeds)."
    ]
