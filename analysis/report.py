"""The report: report.md (plots beside it) and a self-contained report.html (plots inline).

The report is a list of blocks (headings, paragraphs, lists, tables, images) built
from the typed conclusions (`analysis.results.Conclusions`) and the plot files;
`to_markdown` and `to_html` render the same blocks, so the two never disagree.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

from analysis.files import write_whole
from analysis.rates import NEAR_OPTIMAL
from analysis.results import Conclusions, RankedCell
from analysis.claims import family_level
from analysis.summary import CLAIM_NAMES, claim_effect, claim_evidence, metric_words, rate_levels, reference_sentences
from analysis.text import ci_pct, num, ok, pct, pp, pvalue


@dataclass(frozen=True)
class Block:
    kind: str  # h1, h2, p, ul, table, img
    content: object
    extra: object = None  # table rows / image caption


def build_report(conclusions: Conclusions, plots: dict, skipped: dict | None = None, source: str = "") -> list[Block]:
    """The report's blocks. `plots` maps plot names to PNG paths; `skipped` says why others are missing."""
    skipped = skipped or {}
    blocks = [Block("h1", "BatchNorm x Dropout study: analysis report"), Block("p", _stage_paragraph(conclusions, source))]
    for title, section in SECTION_BUILDERS:
        blocks.append(Block("h2", title))
        blocks += section(conclusions, plots, skipped)
    return blocks


def _conclusions(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    return [Block("ul", list(c.summary))]


def _claims(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    if not c.claims:
        return [Block("p", "No claim was declared for this study.")]
    rows = [[CLAIM_NAMES.get(claim.id, claim.id), claim.post or claim.text, claim.verdict,
             claim_effect(claim.evidence) if claim.evidence else "", _cells_text(claim.cells), claim.reason]
            for claim in c.claims]
    return [
        Block("table", ["claim", "the advice", "verdict", "effect and interval", "cells it rests on", "why"], rows),
        Block("p", (f"The {len(c.claims)} claims are decided on one study, several on shared cells, so each interval "
                    f"is a simultaneous one (Bonferroni: each at {100 * family_level(len(c.claims)):.2f}%), and the "
                    "chance that any verdict of the table says supported or refuted where there is no effect is at most "
                    "5%. Each claim's full statement and evidence is in conclusions.json.")),
        Block("table", ["claim", "statement", "evidence"],
              [[claim.id, claim.text, claim_evidence(claim.evidence) if claim.evidence else claim.reason] for claim in c.claims]),
        *_against_reference(c),
    ]


def _against_reference(c: Conclusions) -> list[Block]:
    """Each claim's verdict here beside a reference run's: is this run's regime a good guide to that one's?"""
    if c.reference is None:
        return []
    evidence = {claim.id: claim.evidence for claim in c.claims}

    def effect(ev) -> str:
        return claim_effect(ev) if ev else ""

    return [Block("p", reference_sentences(c.reference)[0]),
            Block("table", ["claim", "this run", "its effect", "reference run", "its effect", "agreement"],
                  [[CLAIM_NAMES.get(row.id, row.id), row.verdict, effect(evidence.get(row.id)), row.reference_verdict,
                    effect(row.reference_evidence), row.agreement] for row in c.reference.claims])]


def _cells_text(cells: list[str], shown: int = 4) -> str:
    """A claim's cells, the first few by name (conclusions.json lists them all)."""
    if len(cells) <= shown:
        return ", ".join(cells)
    return f"{len(cells)} cells: " + ", ".join(cells[:shown]) + f" and {len(cells) - shown} more"


def _ranking(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    caption = ("Cells ranked by their best search trial (preliminary: a selected maximum, no intervals)."
               if c.source == "search" else "Cells ranked by their mean over replicates; bars are 95% confidence intervals.")
    return [Block("p", f"Method: {c.ranking_method}."), *_image(plots, skipped, "ranking", caption),
            Block("table", *_ranking_table(c.ranking))]


def _interaction(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    it = c.interaction
    if it.p_value is not None:
        b = [Block("p", (
            f"{' x '.join(it.factors)} interaction: F({num(it.df1, 2)}, {num(it.df2, 3)}) = {num(it.statistic)}, "
            f"{pvalue(it.p_value)} ({'significant' if it.significant else 'not significant'} at 0.05; "
            f"{it.n_cells} cells, {it.n_trials} replicates). Method: {it.method}."
        ))]
    else:
        b = [Block("p", f"Not tested: {it.reason}.")]
    b += _image(plots, skipped, "interaction", "Score against dropout rate (or placement), one line per BatchNorm setting, 95% confidence bands.")
    if "interaction_placement" in plots:
        b += _image(plots, skipped, "interaction_placement", "Score against dropout placement, one line per BatchNorm setting.")
    return b + _image(plots, skipped, "heatmap", "Score of each bn x dropout cell (n = replicates, or trials for a search-only report).")


def _dropout_rate(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    fits = [(rate, bn, e) for rate, per_bn in c.dropout_rate.items() for bn, e in per_bn.items()]
    if not fits:
        return [Block("p", "No drop rate varied in this study (the rates came with the placement), so there is no best rate to estimate.")]
    rows = [
        [rate, bn, f"{num(e.near_optimal[0], 2)}–{num(e.near_optimal[1], 2)}", num(e.best, 3),
         f"{num(e.ci_low, 3)}–{num(e.ci_high, 3)}", pct(e.score_at_best), rate_levels(e), e.n,
         f"{num(e.range[0], 2)}–{num(e.range[1], 2)}", "search (preliminary)" if e.source == "search" else "replicates"]
        for rate, bn, e in fits
    ]
    methods = sorted({e.method for _, _, e in fits})
    header = ["rate", "bn", f"near-optimal (within {100 * NEAR_OPTIMAL:g} pp)", "fitted best", "95% CI of the best",
              "fitted score", "score per rate (95% band)", "rows", "rates tried", "from"]
    return [Block("table", header, rows), Block("p", "Method: " + "; ".join(methods) + ".")]


def _effects(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    search_only = c.source == "search"
    what = ("the best search trial per value (preliminary, not tested)" if search_only
            else "least-squares means of matched cells")
    rows = []
    for factor, values in c.effects.items():
        for label, e in values.items():
            rows.append([factor, label, pct(e.score), ci_pct(e.ci_low, e.ci_high), e.n, e.n_cells])
        test = c.effect_tests.get(factor)
        if not search_only and test is not None:
            rows.append([factor, "test", pvalue(test.p_value), "matched" if test.matched else "unmatched", "", ""])
    unit = "trials" if search_only else "replicates"
    return [
        Block("p", f"Score per value of each factor: {what} ({metric_words(c.effects_metric)})."),
        Block("table", ["factor", "value", "score", "95% CI", unit, "cells"], rows),
        *_image(plots, skipped, "isolation", "Isolation plots of the search: the best trial for each value (nuisance tuned "
                "away), and the mean of its trials (sensitivity to the nuisance range)."),
    ]


def _learning_curves(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    return _image(plots, skipped, "learning_curves", "Each cell's best trial: train and validation loss (the shaded gap is overfitting) and accuracy per epoch.")


def _blog_experiments(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    if "blog_experiments" not in plots and "blog_curves" not in plots:
        return [Block("p", "This study did not run the blog_ablation space (no experiment column).")]
    return [*_image(plots, skipped, "blog_experiments", "The eight experiments of the source post, as rerun by this study."),
            *_image(plots, skipped, "blog_curves", "Accuracy and loss curves of each experiment's best trial, as in the post.")]


def _importance(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    imp = c.importance
    if imp is None:
        return [Block("p", "Not computed: " + skipped.get("importance", "see warnings") + ".")]
    return [
        *_image(plots, skipped, "importance", "How much each parameter separates the top 10% of trials from the rest."),
        Block("table", ["parameter", "kind", "importance"], [[k, imp.kinds.get(k, ""), f"{v:.3f}"] for k, v in imp.values.items()]),
        Block("p", f"Method: {imp.method}."),
    ]


def _final(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    if not c.final:
        return [Block("p", "No final.csv: the winners have not been evaluated on the test set yet.")]
    blocks = [Block("table", ["config", "cell", "seeds", "test accuracy", "95% CI", "with mirror images (mean)"],
                    [[f.config_id, f.cell, f.n_seeds, pct(f.test_acc), ci_pct(f.ci_low, f.ci_high),
                      pct(f.test_acc_flip)] for f in c.final]),
              Block("p", "With mirror images: the same test evaluation, each image scored by the mean of its and its "
                    "mirror image's class probabilities (flip test-time augmentation).")]
    measured = [f for f in c.final if ok(f.test_ece)]
    if measured:
        blocks.append(Block("p", "The same networks' calibration and variance shift, and with their BN statistics "
                            "re-estimated (Dropout off, after training): means over the seeds."))
        blocks.append(Block("table", ["config", "variance shift", "test ECE", "test ECE, BN re-estimated",
                                      "test accuracy, BN re-estimated", "conf. wrong"],
                            [[f.config_id, num(f.var_shift_max), num(f.test_ece), num(f.test_ece_bn_reestimated),
                              pct(f.test_acc_bn_reestimated), num(f.test_conf_wrong)] for f in measured]))
    return blocks


def _optuna_views(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    ranks = sorted({int(name.rsplit("_", 1)[1]) for name in plots if name.startswith("optuna_")})
    if not ranks:
        return [Block("p", f"Not drawn: {skipped.get('optuna_views', 'no search trials to show')}.")]
    best = [e.cell for e in c.search.best_trials]
    blocks = [Block("p", "Each of the best cells' search as Optuna shows it, rebuilt from trials.csv and epochs.csv: "
                    "the validation accuracy per epoch of every trial (ASHA's pruned trials end early), and the "
                    "final score over the tuned nuisance values. To browse a cell's own Optuna study, open its "
                    "journal: `optuna-dashboard 'EXPERIMENT/optuna/CELL.log'` (docs/search-spaces.md).")]
    for rank in ranks:
        cell = best[rank - 1] if rank <= len(best) else f"cell {rank}"
        blocks += _image(plots, skipped, f"optuna_curves_{rank}", f"{cell}: learning curves of its search trials.")
        if f"optuna_nuisance_{rank}" in plots:
            blocks += _image(plots, skipped, f"optuna_nuisance_{rank}", f"{cell}: final score over the nuisance values.")
    return blocks


def _asha_fidelity(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    f = c.asha_fidelity
    if f is None or not f.rungs:
        return [Block("p", f"Not measured: {f.reason if f else 'this analysis predates it'}.")]
    rows = [[r.epoch, f"{num(r.tau, 2)} ({num(r.ci_low, 2)} to {num(r.ci_high, 2)})", r.n_trials, r.n_cells,
             f"{r.best_stopped} of {r.cells_judged}"] for r in f.rungs]
    return [
        Block("p", "ASHA stops a trial at a rung when its score there is below the best 1/reduction-factor of "
              "the scores recorded at that rung; that is only as good as the agreement of early and final scores. "
              "Among the trials that trained the full budget: Kendall's tau between val_acc at each rung and the "
              "final best_val_acc (pairs within cells), and the cells whose eventual best trial would have been "
              "stopped there in hindsight."),
        Block("table", ["rung (epoch)", "Kendall tau (95% CI)", "full-budget trials", "cells",
                        "best trial stopped in hindsight"], rows),
        *_image(plots, skipped, "asha_fidelity", "Kendall tau of early against final scores at each rung, with "
                "its 95% jackknife interval; below 0.5 the first rung's judgement is weak."),
        Block("p", f"Method: {f.method}."),
    ]


def _mechanism(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    m = c.mechanism
    if m is None or not m.cells:
        why = "; ".join(m.skipped) if m else "this analysis predates the measurements"
        return [Block("p", f"Not measured: {why}.")]
    blocks = [Block("p", (
        "Why each placement scores what it scores, measured on the same stage-2 networks. Variance shift: for "
        "each BN layer, how far the variance BN learnt in training is from the variance it meets at inference "
        "(max(running_var / real_var, real_var / running_var), 1 = none; the largest over the layers). Dropout "
        "right before a BN layer makes it about 1/keep-rate. Re-estimating the BN statistics with Dropout off "
        "after training is the fix that needs no retraining; its gain is paired (the same network before and "
        "after). ECE and conf. wrong: calibration of the validation predictions (expected calibration error over "
        "15 bins; mean confidence of the wrong predictions)."
    ))]
    # Two tables of the same cells, so that neither is wider than the page: the shift and the accuracy it
    # costs, then the fix (re-estimation) and calibration.
    blocks.append(Block("table", ["cell", "replicates", "variance shift (95% CI)", "accuracy vs no Dropout (95% CI)",
                                  "cell without Dropout"], [
        [cell.cell, cell.var_shift.n if cell.var_shift else (cell.ece.n if cell.ece else ""),
         _estimate(cell.var_shift, num), _estimate(cell.accuracy_gap, pp), cell.reference_cell or ""]
        for cell in m.cells]))
    blocks.append(Block("table", ["cell", "gain from BN re-estimation (95% CI)", "ECE (95% CI)", "conf. wrong (95% CI)"], [
        [cell.cell, _estimate(cell.reestimation_gain, pp), _estimate(cell.ece, num), _estimate(cell.conf_wrong, num)]
        for cell in m.cells]))
    blocks += _image(plots, skipped, "variance_shift", "Left: each BN cell's variance shift. Right: accuracy lost "
                     "against the cell without Dropout, by variance shift, one point per configuration, with the "
                     "least-squares line and its 95% band (colour: where the Dropout sits; square: Uout).")
    if m.shift_line is not None:
        blocks.append(Block("p", "Line: " + claim_evidence(m.shift_line) + "."))
    if m.calibration_by_bn:
        blocks.append(Block("table", ["bn", "ECE (95% CI)", "conf. wrong (95% CI)", "replicates"], [
            [bn, _estimate(e.get("ece"), num), _estimate(e.get("conf_wrong"), num),
             max((x.n for x in e.values()), default="")] for bn, e in m.calibration_by_bn.items()
        ]))
    if m.skipped:
        blocks.append(Block("ul", [f"Skipped: {s}" for s in m.skipped]))
    return blocks + [Block("p", f"Method: {m.method}.")]


def _estimate(e, fmt) -> str:
    if e is None:
        return ""
    interval = f" ({fmt(e.ci_low)} to {fmt(e.ci_high)})" if ok(e.ci_low) and ok(e.ci_high) else ""
    return f"{fmt(e.mean)}{interval}"


def _replicate_sets(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    """Every replicate set side by side, cell by cell: which one the conclusions come from, and why."""
    if not c.replicate_sets:
        return [Block("p", "No replicate set yet: stage 2 has not run (`study cv EXPERIMENT`).")]
    blocks = [Block("p", f"The conclusions come from the replicate set {c.replicate_set}: {c.replicate_set_reason}. "
                         "`study analyze EXPERIMENT --replicates NAME` draws them from another.")]
    header = ["replicate set", "replicates", "trainings", "scored", "best cell", "compared with the chosen set"]
    rows = [[s.name + (" (chosen)" if s.chosen else ""), s.unit, s.trainings, s.scored, s.best_cell or "",
             s.agreement or ""] for s in c.replicate_sets]
    blocks.append(Block("table", header, rows))
    cells = list(dict.fromkeys(cell for s in c.replicate_sets for cell in s.cells))
    if cells:
        per_cell = [[cell, *(_set_cell(s.cells.get(cell)) for s in c.replicate_sets)] for cell in cells]
        blocks += [Block("p", "Each cell's mean validation accuracy in each set, with its 95% interval and "
                              "the number of scored replicates:"),
                   Block("table", ["cell", *(s.name for s in c.replicate_sets)], per_cell)]
    return blocks


def _set_cell(e) -> str:
    if e is None or e.mean is None:
        return ""
    return f"{pct(e.mean)} ({ci_pct(e.ci_low, e.ci_high)}, n={e.n})"


def _warnings(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    return [Block("ul", list(c.warnings) or ["None."])]


def _methods(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    return [Block("ul", [f"{k}: {v}" for k, v in c.methods.items()])]


def _stage_paragraph(c: Conclusions, source: str) -> str:
    search = c.search.counts
    head = (
        f"Source: {source or 'trials table'}. Search: {search.analysed} of {search.trials} trials trained the "
        f"full {c.counts.max_epochs} epochs, in {len(c.search.best_trials)} cells. "
    )
    if c.source == "search":
        stage = ("Preliminary: no replicates yet, so cells are ranked by their best search trial (a selected "
                 "maximum) and nothing is tested. ")
    else:
        unit = c.ranking[0].unit if c.ranking else "replicates"
        stage = (f"Stage 2: each cell's best configuration retrained on {unit} ({c.counts.analysed} scored "
                 f"of {c.counts.trials}); every conclusion below comes from them. ")
    return (head + stage + f"Score: {metric_words(c.metric)} ({c.metric}). Factors that varied: "
            f"{', '.join(c.factors)}. Accuracies are shown in percent; differences in percentage points (pp).")


def _search(c: Conclusions, plots: dict, skipped: dict) -> list[Block]:
    """Each cell's best search trial (the selected configuration), its nuisance sensitivity and diverged share."""
    means = c.search.mean_over_trials
    rows = []
    for e in c.search.best_trials:
        trial = e.selected_trial
        config = trial.config if trial else {}
        mean, d = means.get(e.cell), c.diverged.get(e.cell)
        rows.append([
            e.cell, trial.trial_id if trial else "", pct(e.score), num(config.get("lr"), 3),
            num(config.get("weight_decay"), 3), pct(mean.mean if mean else None), mean.n if mean else "",
            f"{d.diverged if d else 0}/{d.trials if d else 0}",
        ])
    blocks = [
        Block("p", "What the search selected, cell by cell: the best full-budget trial (its configuration is what "
              "stage 2 retrains), the mean over the cell's full-budget trials (how forgiving the cell is of the "
              "nuisance range and trial order, not its score), and how many of its trials diverged."),
        Block("table", ["cell", "best trial", "its best_val_acc", "lr", "weight_decay", "mean over trials",
                        "full-budget trials", "diverged"], rows),
    ]
    return blocks + _image(plots, skipped, "diverged", "Diverged search trials per cell, and each trial's outcome by learning rate.")


def _ranking_table(entries: list[RankedCell]) -> tuple[list, list]:
    header = ["rank", "cell", "n", "score", "95% CI", "configuration (search trial)"]
    rows = []
    for e in entries:
        trial = e.selected_trial
        lr = f", lr {num(trial.config['lr'], 3)}" if trial and "lr" in trial.config else ""
        config = f"{trial.trial_id}{lr}" if trial else (e.config_id or "")
        n = f"best of {e.n} trials" if e.unit == "best trial" else f"{e.n} {e.unit}".strip()
        rows.append([e.rank, e.cell, n, pct(e.score), ci_pct(e.ci_low, e.ci_high), config])
    return header, rows


def _image(plots: dict, skipped: dict, name: str, caption: str) -> list[Block]:
    if name in plots:
        return [Block("img", Path(plots[name]), caption)]
    reason = skipped.get(name, "not available for this study")
    return [Block("p", f"(Plot '{name}' not drawn: {reason}.)")]


# The report's sections, in order: each title with the function that writes its blocks.
SECTION_BUILDERS = (
    ("Claims: the advice, decided", _claims),
    ("Which drop rates work, with and without BatchNorm", _dropout_rate),
    ("Conclusions", _conclusions),
    ("Ranking of cells", _ranking),
    ("Replicate sets", _replicate_sets),
    ("The search stage", _search),
    ("Interaction: does the effect of Dropout depend on BatchNorm?", _interaction),
    ("Effects of each factor", _effects),
    ("Learning curves", _learning_curves),
    ("The post's eight experiments", _blog_experiments),
    ("Hyperparameter importance", _importance),
    ("Is ASHA's early judgement trustworthy?", _asha_fidelity),
    ("Optuna's views of the best cells", _optuna_views),
    ("Why: variance shift, BN re-estimation and calibration", _mechanism),
    ("Final evaluation on the test set", _final),
    ("Warnings", _warnings),
    ("Methods", _methods),
)
SECTIONS = tuple(title for title, _ in SECTION_BUILDERS)


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        if block.kind == "h1":
            out.append(f"# {_md_text(block.content)}\n")
        elif block.kind == "h2":
            out.append(f"## {_md_text(block.content)}\n")
        elif block.kind == "p":
            out.append(f"{_md_text(block.content)}\n")
        elif block.kind == "ul":
            out.append("\n".join(f"- {_md_text(item)}" for item in block.content) + "\n")
        elif block.kind == "table":
            header, rows = block.content, block.extra
            lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]
            out.append("\n".join(lines) + "\n")
        elif block.kind == "img":
            out.append(f"![{block.extra}]({block.content.name})\n\n*{block.extra}*\n")
    return "\n".join(out)


# Text from the tables (cell names, trial ids, error messages: anything a hand-made trials.csv holds) must read as
# itself, as report.html's escaping makes it there: in Markdown a tag is raw HTML and [x](y) a link.
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def _md_text(value) -> str:
    """Prose: no raw HTML tag and no link can start in it; the report's own code spans (`...`) stay."""
    return _TAG_START.sub("&lt;", str(value)).replace("[", "\\[").replace("]", "\\]")


def _md_cell(value) -> str:
    """A table cell: every character Markdown would read as markup escaped, on one line."""
    return _MD_SPECIAL.sub(r"\\\1", str(value)).replace("\r", " ").replace("\n", " ")


CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; line-height: 1.5; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
.table { overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; } th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; } figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
li { margin: 0.3em 0; }
"""


def to_html(blocks: list[Block]) -> str:
    title = next((b.content for b in blocks if b.kind == "h1"), "Report")
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{CSS}</style></head><body>"]
    for block in blocks:
        if block.kind in ("h1", "h2"):
            parts.append(f"<{block.kind}>{html.escape(str(block.content))}</{block.kind}>")
        elif block.kind == "p":
            parts.append(f"<p>{html.escape(str(block.content))}</p>")
        elif block.kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in block.content) + "</ul>")
        elif block.kind == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in block.content)
            body = "".join("<tr>" + "".join(f"<td>{_table_cell(v)}</td>" for v in row) + "</tr>" for row in block.extra)
            # A table wider than the page scrolls inside it instead of widening the page.
            parts.append(f"<div class=\"table\"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
        elif block.kind == "img":
            data = base64.b64encode(Path(block.content).read_bytes()).decode("ascii")
            caption = html.escape(str(block.extra))
            parts.append(f"<figure><img alt=\"{caption}\" src=\"data:image/png;base64,{data}\"><figcaption>{caption}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _table_cell(value) -> str:
    """A table cell's HTML: a cell name (bn=pre_act,dropout=fc,...) may wrap after each comma."""
    text = html.escape(str(value))
    return text.replace(",", ",<wbr>") if "=" in text else text


def write_report(conclusions: Conclusions, plots: dict, out_dir: Path, skipped: dict | None = None, source: str = "") -> tuple[Path, Path]:
    """Write report.md and report.html into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    blocks = build_report(conclusions, plots, skipped, source)
    md, page = out_dir / "report.md", out_dir / "report.html"
    write_whole(md, to_markdown(blocks))  # whole or not at all: a kill mid-write keeps the previous report
    write_whole(page, to_html(blocks))
    return md, page
