"""Typed conclusions: serialised once, read back field for field, and a report rebuilt from the file alone."""

import json
import math

import pytest

from analysis import analyze, load_conclusions, run_analysis
from analysis.conclusions import make_tables
from analysis.report import build_report, to_markdown
from analysis.results import (
    BestCellEvidence,
    Claim,
    Conclusions,
    GroupEvidence,
    RankedCell,
    SelectedTrial,
    from_json,
    to_json,
)
from synthetic import as_replicates, blog_trials, cells, make_cv, make_epochs, make_trials, write_experiment


@pytest.fixture(scope="module", params=["replicates", "search"])
def analysed(request, tmp_path_factory):
    """An analysed experiment with stage 2 (every section filled) and one of the search alone."""
    df = make_trials(1, cell_list=cells(bn=["none", "pre_act"], dropout=["none", "fc", "all"]), n_per_cell=5, pruned=1,
                     rate_range={"p_fc": (0.1, 0.6)})
    cv = make_cv(df) if request.param == "replicates" else None
    folder = write_experiment(tmp_path_factory.mktemp("exp"), df, make_epochs(df), cv)
    out = tmp_path_factory.mktemp("out")
    return analyze(folder, out, n_boot=50, importance=False), out, folder


def test_the_file_reads_back_into_the_same_conclusions(analysed):
    written, out, _ = analysed
    loaded = load_conclusions(out)
    assert isinstance(loaded, Conclusions)
    assert to_json(loaded) == written == json.loads((out / "conclusions.json").read_text())
    # Typed all the way down: entries are dataclasses, read by attribute.
    best = loaded.ranking[0]
    assert isinstance(best, RankedCell) and best.factors["bn"] == written["ranking"][0]["bn"]
    assert best.cell == written["ranking"][0]["cell"] and best.score == written["ranking"][0]["score"]
    searched = loaded.search.best_trials[0]
    assert isinstance(searched.selected_trial, SelectedTrial) and "lr" in searched.selected_trial.config
    assert all(isinstance(claim, Claim) for claim in loaded.claims)


def test_a_report_rebuilt_from_the_file_alone_is_the_report_written(analysed):
    _, out, folder = analysed
    loaded = load_conclusions(out / "conclusions.json")
    plots = {name: out / file for name, file in loaded.plots.items()}
    rebuilt = to_markdown(build_report(loaded, plots, loaded.plots_skipped, source=str(folder)))
    assert rebuilt == (out / "report.md").read_text()


def test_both_kinds_of_claim_evidence_survive_the_file():
    df = blog_trials(0, n_per_cell=6)
    df["val_loss"] = df["train_eval_loss"] + 0.1 * (df["experiment"] != 7) + 0.01 * (df.index % 3)
    tables = make_tables(df, cv=as_replicates(df))
    conclusions = run_analysis(tables, n_boot=50, importance=False).conclusions
    kinds = {claim.id: type(claim.evidence) for claim in conclusions.claims}
    assert kinds["large_model_all_three_best"] is BestCellEvidence
    assert kinds["bn_dropout_improves_loss"] is GroupEvidence
    loaded = from_json(Conclusions, json.loads(json.dumps(to_json(conclusions))))
    assert {claim.id: type(claim.evidence) for claim in loaded.claims} == kinds
    groups = next(c.evidence.groups for c in loaded.claims if c.id == "bn_dropout_improves_loss")
    assert set(groups) == {"fc+conv+all", "none"}  # the claimed dropout values, then those against
    # A group's score sits beside the other fields in the file, as it always has.
    entry = next(c for c in to_json(conclusions)["claims"] if c["id"] == "bn_dropout_improves_loss")
    assert entry["evidence"]["none"] == groups["none"]


def test_missing_numbers_are_null_in_the_file_and_nan_or_none_in_memory():
    evidence = GroupEvidence("val_acc", math.nan, -0.01, math.inf, None, True, 4, 20, groups={"a": 0.9, "b": math.nan})
    written = to_json(evidence)
    assert written["difference"] is None and written["ci_high"] is None and written["b"] is None
    assert json.dumps(written, allow_nan=False)
    back = from_json(GroupEvidence, written)
    assert back.difference is None and back.ci_low == -0.01 and back.groups == {"a": 0.9, "b": None}
