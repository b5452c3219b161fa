"""A resume compares what a study is, never where its files lie, and names what differs."""

import pytest

from study.runtime.resume import comparable, differences, without_added_settings

RECORDED = {"budget": {"max_epochs": 3, "seed": 0}, "param_space": {"data_dir": "/old/data", "model": "small"},
            "searcher": {"journal_dir": "/old/exp/optuna", "sampler": "qmc"}, "space": {"source": "spaces/a.yaml"}}


def test_places_do_not_count():
    moved = {"budget": {"max_epochs": 3, "seed": 0}, "param_space": {"data_dir": "/new/data", "model": "small"},
             "searcher": {"journal_dir": "/elsewhere/optuna", "sampler": "qmc"}, "space": {"source": "/abs/a.yaml"}}
    assert differences(comparable(RECORDED), comparable(moved)) == []


def test_a_plan_recorded_before_precision_existed_still_matches_but_a_changed_precision_does_not():
    old = {"budget": {"max_epochs": 4}, "param_space": {"lr": 0.1}}
    now = {"budget": {"max_epochs": 4, "precision": "auto"}, "param_space": {"lr": 0.1, "precision": "auto"}}
    assert differences(old, without_added_settings(now, old)) == []
    recorded = {"budget": {"max_epochs": 4, "precision": "fp32"}, "param_space": {"lr": 0.1, "precision": "fp32"}}
    assert len(differences(recorded, without_added_settings(now, recorded))) == 2


def test_each_real_difference_is_named_with_both_values():
    changed = {"budget": {"max_epochs": 5, "seed": 0}, "param_space": {"data_dir": "/new", "model": "large"},
               "searcher": {"sampler": "tpe"}, "space": {}, "dataset": {"images": 54000}}
    assert differences(comparable(RECORDED), comparable(changed)) == [
        "budget.max_epochs: 3 when started, 5 now",
        'param_space.model: "small" when started, "large" now',
        'searcher.sampler: "qmc" when started, "tpe" now',
        'dataset: absent when started, {"images": 54000} now',
    ]


def _resume(experiment):
    from study.runtime.resume import restore_or_build
    from study.vocabulary.errors import UserError

    def not_built():
        raise AssertionError("a new Tuner was built over an existing run")

    return restore_or_build(str(experiment), str(experiment), "study.json", {"budget": {}}, trainable=None,
                            build_tuner=not_built, first_record=dict, start_over="start a new study with --name NEW",
                            error=UserError)


@pytest.mark.parametrize("broken, content, named", [
    ("study.json", b"{not json", "study.json, the settings this run was started with, cannot be read (JSONDecodeError"),
    ("study.json", b"", "study.json, the settings this run was started with, cannot be read (JSONDecodeError"),
    ("study.json", b"[]", "(ValueError: it holds a JSON list, not an object)"),
    ("study.json", b"\xff\xfe", "cannot be read (UnicodeDecodeError"),
    ("experiment_state-2026-12-01_10-00-00.json", b'{"trial_data": [["{\\"tri', "newest snapshot of this run, cannot"),
    ("experiment_state-2026-12-01_10-00-00.json", b'{"runner_data": {}}', "(ValueError: it has no list of trials)"),
    ("tuner.pkl", b"", "tuner.pkl, Ray Tune's record of this run, cannot be read (EOFError"),
])
def test_a_state_file_a_resume_cannot_read_is_named_and_nothing_changes(tmp_path, broken, content, named):
    from study.vocabulary.errors import UserError

    (tmp_path / "tuner.pkl").write_bytes(b"a pickle of Tune's")
    (tmp_path / "study.json").write_text('{"plan": {"budget": {}}}')
    (tmp_path / broken).write_bytes(content)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(UserError) as raised:
        _resume(tmp_path)
    message = str(raised.value)
    assert named in message and message.endswith("or start a new study with --name NEW")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files


def test_a_broken_snapshot_with_an_older_one_says_that_moving_it_away_resumes_from_that(tmp_path):
    from study.vocabulary.errors import UserError

    (tmp_path / "tuner.pkl").write_bytes(b"")
    (tmp_path / "experiment_state-2026-12-01_09-00-00.json").write_text('{"trial_data": []}')
    (tmp_path / "experiment_state-2026-12-01_10-00-00.json").write_text("")
    with pytest.raises(UserError, match="10-00-00.json, Ray Tune's newest snapshot of this run .moving it away "
                                        "resumes from experiment_state-2026-12-01_09-00-00.json"):
        _resume(tmp_path)


def test_a_tuner_state_cut_short_by_a_kill_is_put_back_from_its_whole_copy(tmp_path, capsys):
    import pickle

    from study.runtime.resume import TUNER_STATE, TUNER_STATE_COPY, keep_tuner_state_whole

    state = pickle.dumps({"param_space": {"lr": 0.1}, "trainable": "train_trial"})
    (tmp_path / TUNER_STATE).write_bytes(state)
    keep_tuner_state_whole(str(tmp_path))  # a resume: the whole file is copied beside it
    assert (tmp_path / TUNER_STATE_COPY).read_bytes() == state
    (tmp_path / TUNER_STATE).write_bytes(state[: len(state) // 2])  # killed mid-copy
    keep_tuner_state_whole(str(tmp_path))
    assert (tmp_path / TUNER_STATE).read_bytes() == state and "cut short" in capsys.readouterr().out
    (tmp_path / TUNER_STATE).write_bytes(b"")
    (tmp_path / TUNER_STATE_COPY).write_bytes(b"")
    keep_tuner_state_whole(str(tmp_path))  # nothing whole to put back: left for the resume's own error
    assert (tmp_path / TUNER_STATE).read_bytes() == b""
