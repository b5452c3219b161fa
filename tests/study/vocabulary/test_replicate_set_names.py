"""study.vocabulary.replicate_sets: a set's name says what it is, the same options give the same name."""

import pytest

from study.vocabulary.replicate_sets import check_set_name, name_from_record, name_from_table, set_name


def test_names_say_kind_count_selection_and_overrides():
    assert set_name("seed", 5) == "seeds-5"
    assert set_name("fold", 3) == "folds-3"
    assert set_name("seed", 2, top_k=2) == "top2-seeds-2"
    assert set_name("fold", 5, overall=4, train_size=1500, max_epochs=10) == "overall4-folds-5-train1500-epochs10"
    with pytest.raises(ValueError, match="'trial'"):
        set_name("trial", 3)


def test_a_record_from_before_sets_had_names_gets_the_name_its_plan_implies():
    old = {"plan": {"selection": "the 2 best completed trials of every cell, by best_val_acc",
                    "replicates": {"kind": "fold", "n": 3}}}
    assert name_from_record(old) == "top2-folds-3"
    assert name_from_record({"plan": {"selection": "the best completed trial of every cell, by best_val_acc",
                                      "replicates": {"kind": "seed", "n": 5}}}) == "seeds-5"
    assert name_from_record({"replicate_set": "folds-3-epochs2", "plan": old["plan"]}) == "folds-3-epochs2"
    assert name_from_record({"plan": {}}) is None


def test_a_hand_made_table_is_named_by_its_kind_and_count():
    assert name_from_table(["fold"] * 6, [0, 1, 2] * 2) == "folds-3"
    assert name_from_table(["seed", "fold"], [0, 1]) == "cv"


@pytest.mark.parametrize("bad", ["", "Seeds-5", "../x", "a b"])
def test_a_bad_set_name_is_refused_with_the_name(bad):
    with pytest.raises(ValueError, match="not a set name"):
        check_set_name(bad)
