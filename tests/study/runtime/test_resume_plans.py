"""A resume compares what a study is, never where its files lie, and names what differs."""

from study.runtime.resume import comparable, differences

RECORDED = {"budget": {"max_epochs": 3, "seed": 0}, "param_space": {"data_dir": "/old/data", "model": "small"},
            "searcher": {"journal_dir": "/old/exp/optuna", "sampler": "qmc"}, "space": {"source": "spaces/a.yaml"}}


def test_places_do_not_count():
    moved = {"budget": {"max_epochs": 3, "seed": 0}, "param_space": {"data_dir": "/new/data", "model": "small"},
             "searcher": {"journal_dir": "/elsewhere/optuna", "sampler": "qmc"}, "space": {"source": "/abs/a.yaml"}}
    assert differences(comparable(RECORDED), comparable(moved)) == []


def test_each_real_difference_is_named_with_both_values():
    changed = {"budget": {"max_epochs": 5, "seed": 0}, "param_space": {"data_dir": "/new", "model": "large"},
               "searcher": {"sampler": "tpe"}, "space": {}, "dataset": {"images": 54000}}
    assert differences(comparable(RECORDED), comparable(changed)) == [
        "budget.max_epochs: 3 when started, 5 now",
        'param_space.model: "small" when started, "large" now',
        'searcher.sampler: "qmc" when started, "tpe" now',
        'dataset: absent when started, {"images": 54000} now',
    ]
