"""analyze(): directory or bare trials.csv in, conclusions.json, plots and report out."""

import json

import pandas as pd
import pytest

from analysis import SECTIONS, AnalysisError, analyze, load_experiment
from synthetic import cells, cv_summary_from, make_cv, make_epochs, make_final, make_trials, write_experiment

REQUIRED_KEYS = {"metric", "factors", "ranking", "effects", "interaction", "dropout_rate", "claims", "warnings"}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    df = make_trials(0, cell_list=cells(bn=["none", "pre_act"], dropout=["none", "fc"]), n_per_cell=6, pruned=1,
                     rate_range={"p_fc": (0.1, 0.6)}, effect=lambda f: 0.005 * (f["bn"] != "none") * (f["dropout"] == "fc"))
    cv = make_cv(df)
    folder = tmp_path_factory.mktemp("exp")
    return write_experiment(folder, df, make_epochs(df), cv, cv_summary_from(cv), make_final(cv))


@pytest.fixture(scope="module")
def analysed(experiment, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return analyze(experiment, out, n_boot=100, importance=False), out


def test_conclusions_json_has_the_issue_keys(analysed):
    conclusions, out = analysed
    on_disk = json.loads((out / "conclusions.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert REQUIRED_KEYS <= set(on_disk)
    assert on_disk["metric"] == "val_acc" and on_disk["source"] == "replicates"
    assert on_disk["interaction"]["factors"] == ["bn", "dropout"]
    assert {"p_value", "significant", "method"} <= set(on_disk["interaction"])
    for entry in on_disk["ranking"]:
        assert {"n", "score", "ci_low", "ci_high", "bn", "dropout"} <= set(entry)
    assert on_disk["final"] and on_disk["final"][0]["n_seeds"] == 3
    assert conclusions["ranking"] == on_disk["ranking"]


def test_plots_and_report_are_written(analysed):
    conclusions, out = analysed
    from test_plots import assert_png

    for name in conclusions["plots"].values():
        assert_png(out / name)
    assert {"interaction", "interaction_placement", "heatmap", "isolation", "learning_curves", "ranking"} <= set(conclusions["plots"])
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for section in SECTIONS:
        assert f"## {section}" in md
        assert section.replace("'", "&#x27;") in page
    # Self-contained: every image is inline.
    assert page.count("data:image/png;base64,") == md.count("![")
    assert 'src="http' not in page and ".png\"" not in page
    # The report leads with the answer: the claim table, then which drop rates work, then the conclusions.
    sections = md.split("## ")[1:4]
    assert sections[0].startswith("Claims: the advice, decided") and "| verdict |" in sections[0]
    assert sections[1].startswith("Which drop rates work")
    assert sections[2].startswith("Conclusions") and "%" in sections[2]


def test_bare_trials_csv_works(tmp_path):
    df = make_trials(3, n_per_cell=4)
    path = tmp_path / "my_trials.csv"
    df.to_csv(path, index=False)
    conclusions = analyze(path, tmp_path / "out", n_boot=20, importance=False)
    assert conclusions["metric"] == "best_val_acc"
    assert "learning_curves" in conclusions["plots_skipped"]
    assert (tmp_path / "out" / "report.html").is_file()


def test_trials_csv_path_picks_up_its_siblings(experiment):
    tables = load_experiment(experiment / "trials.csv")
    written = {name: pd.read_csv(experiment / f"{name}.csv") for name in ("epochs", "cv", "final")}
    for name, frame in (("epochs", tables.epochs), ("cv", tables.cv), ("final", tables.final)):
        assert len(frame) == len(written[name]) > 0, name  # the siblings themselves, every row read
    assert sorted(tables.epochs["trial_id"].unique()) == sorted(written["epochs"]["trial_id"].astype(str).unique())
    assert list(tables.cv["config_id"]) == list(written["cv"]["config_id"])
    assert tables.final["test_acc"].tolist() == pytest.approx(written["final"]["test_acc"].tolist())


def test_analyze_errors_are_clear(tmp_path):
    df = make_trials(0, n_per_cell=0, pruned=2)
    write_experiment(tmp_path / "pruned", df)
    with pytest.raises(AnalysisError, match="none of the"):
        analyze(tmp_path / "pruned", tmp_path / "out")
    write_experiment(tmp_path / "nocol", make_trials(0, n_per_cell=2).drop(columns=["status"]))
    with pytest.raises(AnalysisError, match="status"):
        analyze(tmp_path / "nocol", tmp_path / "out")
