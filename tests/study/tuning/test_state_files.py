"""The search's own state files are JSON: a planted pickle runs nothing, a broken file is named before a resume."""

import json
import os
import pickle

import pytest

from study.tuning.cell_scheduler import CellScheduler
from study.tuning.resume_check import check_before_resume
from study.tuning.state_files import RUNGS_FILE, StateFileError, fetch_journals
from study.vocabulary.errors import UserError
from test_cell_search import _run, _searcher


class Planted:
    """A pickle that, unpickled, creates a marker file: code from a data file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path, marker):
    path.write_bytes(pickle.dumps(Planted(marker)))


def test_a_planted_pickle_as_searcher_state_runs_nothing_and_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    state = tmp_path / "searcher-state-2026.json"
    plant(state, marker)
    with pytest.raises(StateFileError, match="searcher state .*searcher-state-2026.json cannot be read"):
        _searcher("bn_dropout", n=1, n_cells=1).restore(str(state))
    with pytest.raises(StateFileError, match="move it away"):
        check_before_resume(tmp_path, tmp_path / "optuna")
    assert not marker.exists()


def test_a_planted_pickle_as_asha_rungs_runs_nothing_and_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    rungs = tmp_path / "optuna" / RUNGS_FILE
    rungs.parent.mkdir()
    plant(rungs, marker)
    scheduler = CellScheduler(max_t=3, grace_period=1, reduction_factor=2, state_file=rungs)
    with pytest.raises(StateFileError, match="ASHA state"):
        scheduler.restore(str(rungs))
    with pytest.raises(StateFileError, match="delete it to resume with empty rungs"):
        check_before_resume(tmp_path, rungs.parent)
    assert not marker.exists()


@pytest.mark.parametrize("content, problem", [
    (b"", "cannot be read"),
    (b'{"format": "cell-scheduler/1", "rungs": [1, 2]}', "does not hold rungs per cell"),
    (b'{"rungs": {}, "stopped": []}', "is not a 'cell-scheduler/1' state file"),
])
def test_a_broken_rungs_file_is_named_with_what_to_do(tmp_path, content, problem):
    (tmp_path / RUNGS_FILE).write_bytes(content)
    with pytest.raises(UserError, match=problem) as raised:
        check_before_resume(tmp_path / "experiment", tmp_path)
    assert str(tmp_path / RUNGS_FILE) in str(raised.value)


def test_state_files_round_trip_as_json(tmp_path):
    searcher = _searcher("bn_dropout", n=2, journal_dir=tmp_path / "optuna", n_cells=2)
    searcher.suggest("t0")
    _run(searcher, "t0", [0.5, 0.6])
    searcher.save(str(tmp_path / "searcher-state-1.json"))
    state = json.loads((tmp_path / "searcher-state-1.json").read_text())
    assert state["format"] == "cell-searcher/1" and state["counts"] and state["journals"]
    scheduler = CellScheduler(max_t=3, grace_period=1, reduction_factor=2, state_file=tmp_path / "optuna" / RUNGS_FILE)
    scheduler.save(str(tmp_path / "optuna" / RUNGS_FILE))
    check_before_resume(tmp_path, tmp_path / "optuna")  # both readable: no error


def test_an_experiment_with_a_pickled_searcher_state_from_an_earlier_version_is_refused_clearly(tmp_path):
    (tmp_path / "searcher-state-2025.pkl").write_bytes(b"old")
    with pytest.raises(StateFileError, match="earlier version .* --name NEW_NAME"):
        check_before_resume(tmp_path, tmp_path / "optuna")


def test_a_searcher_state_with_malformed_fields_is_refused_before_anything_is_rewritten(tmp_path):
    journal = tmp_path / "optuna"
    searcher = _searcher("bn_dropout", n=2, journal_dir=journal, n_cells=2)
    searcher.suggest("t0")
    _run(searcher, "t0", [0.5, 0.6])
    state_file = tmp_path / "searcher-state-1.json"
    searcher.save(str(state_file))
    state = json.loads(state_file.read_text())
    state["counts"] = [1, 2]
    state["journals"] = {name: 7 for name in state["journals"]}
    state_file.write_text(json.dumps(state))
    journals = {p.name: p.read_bytes() for p in journal.iterdir()}
    with pytest.raises(StateFileError, match="has malformed counts, journals"):
        _searcher("bn_dropout", n=2, journal_dir=journal, n_cells=2).restore(str(state_file))
    assert {p.name: p.read_bytes() for p in journal.iterdir()} == journals


def test_a_remote_experiments_journals_and_rungs_travel_with_its_checkpoints(tmp_path):
    """Published beside each searcher checkpoint (the folder Tune syncs), fetched back on a new head node."""
    remote = tmp_path / "bucket" / "experiment"  # what Tune's sync makes of the checkpoint's folder
    head_one, head_two = tmp_path / "head1" / "optuna", tmp_path / "head2" / "optuna"
    searcher = _searcher("bn_dropout", n=2, journal_dir=head_one, n_cells=2, publish_copy=True)
    searcher.suggest("t0")
    _run(searcher, "t0", [0.5, 0.6])
    CellScheduler(max_t=3, grace_period=1, reduction_factor=2).save(str(head_one / RUNGS_FILE))
    searcher.save(str(remote / "searcher-state-1.json"))
    published = {p.name: p.read_bytes() for p in (remote / "optuna").iterdir()}
    assert RUNGS_FILE in published and any(name.endswith(".log") for name in published)

    (head_two / "stale-cell.log").parent.mkdir(parents=True)
    (head_two / "stale-cell.log").write_text("an older experiment of the same name")
    assert fetch_journals(f"file://{remote}", head_two) == len(published)
    assert {p.name: p.read_bytes() for p in head_two.iterdir()} == published
    check_before_resume(f"file://{remote}", head_two)  # a remote experiment's state is read there: no error

    fetch_journals(f"file://{tmp_path}/bucket/new-experiment", head_two)
    assert not list(head_two.iterdir())  # a new experiment starts with no journal


def test_a_local_experiment_publishes_no_copy_and_removes_one_a_remote_run_left(tmp_path):
    """Tune's sync would otherwise copy a snapshot over the live journals in EXPERIMENT/optuna:
    also when the same Tune session resumed the experiment after it was brought back from S3."""
    journals, staging = tmp_path / "experiment" / "optuna", tmp_path / "staging"
    searcher = _searcher("bn_dropout", n=2, journal_dir=tmp_path / "head" / "optuna", n_cells=2, publish_copy=True)
    searcher.suggest("t0")
    searcher.save(str(staging / "searcher-state-1.json"))
    assert (staging / "optuna").is_dir()
    searcher.retarget(journals, publish_copy=False)  # as `study.tuning.run.follow_moves` does for a local plan
    searcher.suggest("t1")
    searcher.save(str(staging / "searcher-state-2.json"))
    assert not (staging / "optuna").exists()
    searcher.save(str(journals.parent / "searcher-state-3.json"))  # beside the journals themselves: kept
    assert any(journals.glob("*.log"))


def test_the_checkpoint_holds_the_rungs_and_a_resume_puts_them_back(tmp_path):
    """Rungs written after the checkpoint (by trials Tune will replay or forget) do not survive the resume."""
    journals = tmp_path / "optuna"
    searcher = _searcher("bn_dropout", n=2, journal_dir=journals, n_cells=2)
    searcher.suggest("t0")
    at_checkpoint = CellScheduler(max_t=3, grace_period=1, reduction_factor=2)
    at_checkpoint.save(str(journals / RUNGS_FILE))
    rungs_then = (journals / RUNGS_FILE).read_text()
    searcher.save(str(tmp_path / "searcher-state-1.json"))
    (journals / RUNGS_FILE).write_text(rungs_then.replace('"stopped": []', '"stopped": ["after-the-checkpoint"]'))

    _searcher("bn_dropout", n=2, journal_dir=journals, n_cells=2).restore(str(tmp_path / "searcher-state-1.json"))
    assert (journals / RUNGS_FILE).read_text() == rungs_then


def test_broken_rungs_inside_a_searcher_state_are_refused_before_anything_is_rewritten(tmp_path):
    journals = tmp_path / "optuna"
    searcher = _searcher("bn_dropout", n=2, journal_dir=journals, n_cells=2)
    searcher.suggest("t0")
    searcher.save(str(tmp_path / "searcher-state-1.json"))
    state = json.loads((tmp_path / "searcher-state-1.json").read_text())
    state["rungs"] = '{"format": "cell-scheduler/1", "rungs": [1]}'
    (tmp_path / "searcher-state-1.json").write_text(json.dumps(state))
    files = {p.name: p.read_bytes() for p in journals.iterdir()}
    with pytest.raises(StateFileError, match="the ASHA rungs in searcher state .* does not hold rungs per cell"):
        check_before_resume(tmp_path, journals)
    assert {p.name: p.read_bytes() for p in journals.iterdir()} == files


def test_a_planted_searcher_state_in_remote_storage_is_refused_before_the_resume(tmp_path):
    marker = tmp_path / "code-ran"
    (tmp_path / "bucket").mkdir()
    plant(tmp_path / "bucket" / "searcher-state-2026.json", marker)
    with pytest.raises(StateFileError, match="searcher-state-2026.json cannot be read"):
        check_before_resume(f"file://{tmp_path}/bucket", tmp_path / "optuna")
    assert not marker.exists()
