"""A study's verdicts against a reference run's (`analysis.reference_run`), on simulated studies of the default
space whose truths are known: a run of the mirrored world contradicts the planted one on the advice and agrees on the
mechanism; the published run is used only for a study of its design trained otherwise; a bad reference stops the
analysis before anything is written."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import pandas as pd
import pytest

from analysis import AnalysisError, analyze, conclude
from analysis import reference_run
from analysis.reference_run import (AGREES, CONTRADICTS, DECIDED_ONLY_HERE, UNDECIDED_HERE, agreement,
                                    compare_claims, load_reference, reference_for)
from analysis.results import Conclusions, Setting, from_json, to_json
from claim_simulator import MECHANISM_KEPT, planted_world, simulate_claim_study

FULL_DATA, QUICK = Setting(train_size=54000, max_epochs=10), Setting(train_size=1500, max_epochs=4)


def test_agreement_of_two_verdicts():
    assert agreement("supported", "supported") == AGREES
    assert agreement("inconclusive", "inconclusive") == AGREES
    assert agreement("inconclusive", "refuted") == UNDECIDED_HERE
    assert agreement("negligible", "inconclusive") == DECIDED_ONLY_HERE
    assert agreement("supported", "refuted") == CONTRADICTS
    assert agreement("negligible", "supported") == CONTRADICTS


def simulated_study(sign: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    trials, cv = simulate_claim_study(planted_world(sign=sign), seed=seed)
    return trials, cv


def concluded(sign: float, seed: int) -> Conclusions:
    trials, cv = simulated_study(sign, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the diverged replicate's missing measures
        return from_json(Conclusions, conclude(trials, cv=cv, n_boot=50, importance=False))


@pytest.fixture(scope="module")
def planted_and_mirrored() -> tuple[Conclusions, Conclusions]:
    return concluded(1.0, seed=3), concluded(-1.0, seed=4)


def test_the_mirrored_world_contradicts_the_advice_and_agrees_on_the_mechanism(planted_and_mirrored):
    planted, mirrored = planted_and_mirrored
    compared = {row.id: row for row in compare_claims(mirrored.claims, planted, "planted").claims}
    assert set(compared) == {claim.id for claim in planted.claims}
    for claim_id, row in compared.items():
        assert row.reference_verdict == next(c.verdict for c in planted.claims if c.id == claim_id)
        if row.verdict in ("supported", "refuted") and row.reference_verdict in ("supported", "refuted"):
            assert row.agreement == (AGREES if row.verdict == row.reference_verdict else CONTRADICTS)
    # Planted advice comes out the other way round; the mechanism does not depend on which way the advice goes.
    assert any(row.agreement == CONTRADICTS for claim_id, row in compared.items() if claim_id not in MECHANISM_KEPT)
    assert all(row.agreement != CONTRADICTS for claim_id, row in compared.items() if claim_id in MECHANISM_KEPT)


def write_study(folder, trials: pd.DataFrame, cv: pd.DataFrame):
    folder.mkdir()
    trials.to_csv(folder / "trials.csv", index=False)
    cv.to_csv(folder / "cv.csv", index=False)
    return folder


def test_the_report_sets_the_verdicts_beside_a_reference_run(tmp_path, planted_and_mirrored):
    planted, _ = planted_and_mirrored
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps(to_json(replace(planted, setting=FULL_DATA))))
    study = write_study(tmp_path / "mirrored", *simulated_study(-1.0, seed=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        written = analyze(study, tmp_path / "out", against=reference, n_boot=50, importance=False)
    typed = from_json(Conclusions, written)
    assert typed.reference is not None and typed.reference.label.endswith("(54,000 training images, 10 epochs)")
    contradicted = [row.id for row in typed.reference.claims if row.agreement == CONTRADICTS]
    assert contradicted and typed.answer[-1].startswith(f"Against {reference}")
    assert f"opposite decisions: {len(contradicted)} ({', '.join(contradicted)})" in typed.answer[-1]
    report = (tmp_path / "out" / "report.md").read_text()
    claims_section = report.split("## Claims: the advice, decided")[1].split("\n## ")[0]
    assert "| claim | this run | its effect | reference run | its effect | agreement |" in claims_section
    assert claims_section.count("| contradicts |") == len(contradicted)


def test_a_bad_reference_stops_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    study = write_study(tmp_path / "study", *simulated_study(1.0, seed=5))
    with pytest.raises(AnalysisError, match="--against .*no conclusions.json there"):
        analyze(study, out, against=tmp_path / "nowhere")
    (tmp_path / "broken.json").write_text('{"claims": "not a list"}')
    with pytest.raises(AnalysisError, match="is not a conclusions.json this tool wrote"):
        analyze(study, out, against=tmp_path / "broken.json")
    assert not out.exists()


def test_the_published_run_is_compared_only_with_its_design_trained_otherwise(tmp_path, monkeypatch, planted_and_mirrored):
    planted, mirrored = planted_and_mirrored
    published = tmp_path / "conclusions.json"
    monkeypatch.setattr(reference_run, "PUBLISHED", published)
    assert load_reference(None) is None  # not published: no comparison

    published.write_text(json.dumps(to_json(replace(planted, setting=FULL_DATA))))
    reference = load_reference(None)
    assert reference is not None and not reference.given
    quick = replace(mirrored, setting=QUICK)
    compared = reference_for(quick, reference)
    assert compared is not None and compared.label.startswith("the published full-data run, docs/findings")
    assert reference_for(replace(mirrored, setting=FULL_DATA), reference) is None  # the same training: itself, or a twin
    assert reference_for(replace(quick, claims=quick.claims[1:]), reference) is None  # another space: other claims
    assert reference_for(replace(quick, ranking=quick.ranking[1:]), reference) is None  # or other cells


def test_the_setting_counts_the_images_of_a_study_on_the_whole_split():
    """train_size is empty for a study on all the training images: the replicates' n_train says how many."""
    trials, cv = simulated_study(1.0, seed=6)
    trials["train_size"] = None
    cv["train_size"] = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        setting = from_json(Conclusions, conclude(trials, cv=cv, n_boot=20, importance=False)).setting
    assert setting.train_size == int(cv["n_train"].iloc[0]) == 54000
