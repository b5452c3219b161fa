"""Replicate sets side by side: the conclusions come from one, named with the reason, the others beside it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis import AnalysisError, analyze, load_experiment
from search_spaces import load_space
from space_tables import write_experiment


def _as_folds(cv: pd.DataFrame, folds: int, shift: float, seed: int) -> pd.DataFrame:
    """The same configurations on `folds` folds, each cell's scores moved by `shift` (planted)."""
    rng = np.random.default_rng(seed)
    one = cv.drop_duplicates("config_id")
    rows = []
    for r in range(folds):
        rows.append(one.assign(replicate=r, fold=r, replicate_kind="fold", n_train=300, n_val=100,
                               val_acc=one["val_acc"] + shift + rng.normal(0, 0.003, len(one))))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """The default space's planted study: its own stage 2 (seeds-2, in cv.csv) and a 3-fold set beside it."""
    folder = write_experiment(load_space("default"), tmp_path_factory.mktemp("sets") / "exp", "scored", seed=3)
    cv = pd.read_csv(folder / "cv.csv", dtype={"config_id": str, "trial_id": str})
    (folder / "cv.json").write_text(json.dumps({"replicate_set": "seeds-2", "plan": {"replicates": {"kind": "seed", "n": 2}}}))
    folds = folder / "replicates" / "folds-3"
    folds.mkdir(parents=True)
    _as_folds(cv, 3, -0.01, 0).to_csv(folds / "cv.csv", index=False)
    return folder


def test_every_set_is_loaded_by_its_name(experiment):
    tables = load_experiment(experiment)
    assert set(tables.replicate_sets) == {"seeds-2", "folds-3"} and tables.own_set == "seeds-2"
    assert set(tables.replicate_sets["folds-3"]["replicate_kind"]) == {"fold"}


def test_an_experiment_in_remote_storage_brings_its_sets_too(experiment):
    remote = load_experiment(f"file://{experiment}")  # file:// as s3:// would be
    assert set(remote.replicate_sets) == {"seeds-2", "folds-3"} and remote.own_set == "seeds-2"


def test_the_conclusions_come_from_one_set_named_with_its_reason_and_the_others_are_beside_it(experiment, tmp_path):
    c = analyze(experiment, tmp_path, n_boot=20, importance=False)
    n_cells = len(load_space("default").named_cells())
    # Both sets score every cell; the folds set has more scored replicates (3 per cell against 2).
    assert c["replicate_set"] == "folds-3" and f"most scored replicates ({3 * n_cells})" in c["replicate_set_reason"]
    assert [s["name"] for s in c["replicate_sets"]] == ["folds-3", "seeds-2"]
    chosen, other = c["replicate_sets"]
    assert chosen["chosen"] and chosen["unit"] == "folds" and not other["chosen"] and other["unit"] == "seeds"
    assert len(chosen["cells"]) == len(other["cells"]) == n_cells
    # The planted shift moves every cell alike: the ranking agrees, the folds' means sit 1 pp lower.
    assert "rank correlation of the cell means" in other["agreement"]
    for cell, e in chosen["cells"].items():
        assert e["mean"] == pytest.approx(other["cells"][cell]["mean"] - 0.01, abs=0.01)
    assert any("replicate set folds-3" in s and "seeds-2" in s for s in c["summary"])
    report = (tmp_path / "report.md").read_text()
    assert "## Replicate sets" in report and "folds-3 (chosen)" in report and "| seeds-2 |" in report


def test_replicates_name_chooses_another_set(experiment, tmp_path):
    c = analyze(experiment, tmp_path, n_boot=20, importance=False, replicates="seeds-2")
    assert c["replicate_set"] == "seeds-2" and c["replicate_set_reason"] == "chosen with --replicates"
    assert c["ranking"][0]["unit"] == "seeds"


def test_an_unknown_set_is_an_error_naming_it_and_the_sets_there_are(experiment, tmp_path):
    with pytest.raises(AnalysisError, match=r"'folds-5'.*folds-3, seeds-2"):
        analyze(experiment, tmp_path, replicates="folds-5")


def test_an_experiment_with_one_cv_from_before_sets_had_names_still_analyses(experiment, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    for name in ("trials.csv", "epochs.csv", "cv.csv", "study.json"):
        (old / name).write_bytes((experiment / name).read_bytes())
    # cv.json as it was written before sets had names: the plan only.
    (old / "cv.json").write_text(json.dumps({"plan": {"selection": "the best completed trial of every cell, by best_val_acc",
                                                      "replicates": {"kind": "seed", "n": 2}}}))
    c = analyze(old, tmp_path / "out", n_boot=20, importance=False)
    assert c["source"] == "replicates" and c["replicate_set"] == "seeds-2"
    assert c["replicate_set_reason"] == "the experiment's only replicate set"
