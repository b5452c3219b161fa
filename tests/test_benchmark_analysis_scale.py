"""The analysis-scale benchmark builds real-shaped tables and times `study analyze` on them (numbers unchecked)."""

from __future__ import annotations

import pandas as pd

from benchmarks import analysis_scale


def test_the_tables_have_the_shape_study_run_writes(tmp_path):
    folder = analysis_scale.write_study(tmp_path / "s", 1200)
    trials = pd.read_csv(folder / "trials.csv")
    epochs = pd.read_csv(folder / "epochs.csv")
    assert len(trials) == 1200 and trials["cell"].nunique() == 12
    assert set(trials["status"]) >= {"completed", "pruned", "diverged"}
    assert set(trials.loc[trials["status"] == "pruned", "epochs"]) <= {3, 9, 27}  # the full budget's rungs
    assert len(epochs) == trials["epochs"].sum()
    assert (pd.read_csv(folder / "cv.csv").groupby("config_id").size() == 3).all()


def test_it_prints_the_baseline_and_the_analysis_in_one_run(capsys):
    assert analysis_scale.main(["--trials", "600", "--baseline-sizes", "4", "8"]) == 0
    out = capsys.readouterr().out
    assert "definition s" in out and "analyze s" in out and "\n     600 " in out
