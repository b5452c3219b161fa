"""The analysis of every shipped space's design, on planted tables: no space ships untested.

The spaces come from the registry (`study spaces`), so a space added to
search_spaces/ is analysed here without editing this file. Each one is analysed in
the situations a small study runs into (`space_tables.SCENARIOS`): every cell
scored, a cell without replicates and one with a single replicate, only one cell
scored, the search alone. Every run must write a report, and every plot it skips
must say why, in the report too.

Rendering the PNGs is most of an analysis' time (about 9 in 10 parts). Every
scenario builds every plot (its numbers and its drawing calls, where the crashes
were); the figures are rendered to PNG in the harshest one (`sparse`) and stubbed in
the others, which keeps this test near a minute for all the spaces.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from analysis import analyze
from analysis.plots import DRAWING_FAILED
from search_spaces import list_spaces, load_space
from space_tables import SCENARIOS, write_experiment

SPACES = sorted(list_spaces())


def test_the_registry_lists_the_spaces_this_test_covers():
    # A guard against an empty registry (the test below would pass vacuously).
    assert {"default", "blog_ablation", "headline", "full"} <= set(SPACES)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("name", SPACES)
def test_every_space_analyses_to_a_report(name, scenario, tmp_path, monkeypatch):
    if scenario != "sparse":
        monkeypatch.setattr(Figure, "savefig", lambda self, path, **kwargs: Path(path).write_bytes(b"not rendered"))
    space = load_space(name)
    folder = write_experiment(space, tmp_path / "exp", scenario, seed=len(name))
    out = tmp_path / "report"
    conclusions = analyze(folder, out, n_boot=20, importance=False)
    report = (out / "report.md").read_text()
    assert (out / "report.html").is_file() and json.loads((out / "conclusions.json").read_text()) == conclusions
    expected_source = "search" if scenario in ("search_only", "one_cell") else "replicates"
    assert conclusions["source"] == expected_source, conclusions["warnings"]
    assert conclusions["ranking"], "the report ranks at least one cell"
    for plot, reason in conclusions["plots_skipped"].items():
        assert reason.strip(), f"plot {plot!r} skipped without a reason"
        assert DRAWING_FAILED not in reason, f"plot {plot!r}: {reason}"  # a drawing that raised is a bug
        assert reason in report, f"plot {plot!r}: its reason is not in the report"
    for plot, file in conclusions["plots"].items():
        assert (out / file).is_file(), plot
    if scenario == "sparse":
        # The cell with one replicate is ranked, without an interval.
        single = space.named_cells()[-1].name
        entry = next(e for e in conclusions["ranking"] if e["cell"] == single)
        assert entry["n"] == 1 and entry["ci_low"] is None
    assert "Traceback" not in report
