"""Planning stage 2: the picked configurations, their folds or seeds, and bad options."""

from __future__ import annotations

import numpy as np
import pytest

from study.runtime import trainable
from study.vocabulary.config import TrialConfig
from study.retraining.cross_validation import CVOptions, plan_cv
from study.data.datasets import load_arrays
from study.data.device_data import split_indices
from study.retraining.common import RetrainError


def _splits(plan, fold: int, labels) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, val_idx) of every configuration on `fold`, as its trainings will load them."""
    return [split_indices(labels, TrialConfig.from_flat(plan.trial_config(cid, fold)).data) for cid in plan.configs]


def test_every_configuration_gets_the_same_stratified_disjoint_covering_folds(small_experiment, fake_data_dir):
    plan = plan_cv(CVOptions(str(small_experiment), top_k=2, folds=3))
    assert list(plan.configs) == ["t3", "t1", "t2"]  # completed only (t4 was pruned), best first
    _, labels = load_arrays(fake_data_dir, "train")
    val_parts = []
    for fold in range(3):
        splits = _splits(plan, fold, labels)
        train, val = splits[0]
        for other_train, other_val in splits[1:]:  # the same images for every configuration
            np.testing.assert_array_equal(other_train, train)
            np.testing.assert_array_equal(other_val, val)
        assert np.intersect1d(train, val).size == 0
        assert len(train) == 200  # the study's train_size, drawn from the fold's training part
        counts = np.bincount(labels[val], minlength=10)
        assert counts.max() - counts.min() <= 1  # stratified (the fake labels are balanced)
        val_parts.append(val)
    np.testing.assert_array_equal(np.sort(np.concatenate(val_parts)), np.arange(len(labels)))


def test_configs_keep_each_trials_own_values_and_the_shared_ones(small_experiment, fake_data_dir):
    plan = plan_cv(CVOptions(str(small_experiment), overall=2, folds=2, max_epochs=1))
    t1 = plan.configs["t1"]
    assert (t1["lr"], t1["weight_decay"], t1["bn"], t1["cell"]) == (0.05, 0.0005, "none", "bn=none")
    assert (t1["model"], t1["device"], t1["max_epochs"], t1["n_folds"]) == ("small", "cpu", 1, 2)
    assert {cfg["split_seed"] for cfg in plan.configs.values()} == {3}  # the study's seed, for every config
    space = plan.param_space()
    assert space["config_id"] == {"grid_search": ["t3", "t1"]}
    assert space["replicate"] == {"grid_search": [0, 1]}
    assert plan.resources.cpus_per_trial == 1 and plan.resources.gpus_per_trial == 0


def test_train_size_override_and_its_limit(small_experiment):
    plan = plan_cv(CVOptions(str(small_experiment), folds=2, train_size=300))
    assert {cfg["train_size"] for cfg in plan.configs.values()} == {300}
    with pytest.raises(RetrainError, match="train_size=450 exceeds the 300 images a fold leaves.*--train-size 300"):
        plan_cv(CVOptions(str(small_experiment), folds=2, train_size=450))


@pytest.mark.parametrize("folds", [1, 0])
def test_fewer_than_two_folds_is_refused(small_experiment, folds):
    with pytest.raises(RetrainError, match=f"--folds must be .* at least 2, got {folds}"):
        plan_cv(CVOptions(str(small_experiment), folds=folds))


def test_seed_replicates_train_on_the_studys_split_with_new_seeds(small_experiment, fake_data_dir):
    plan = plan_cv(CVOptions(str(small_experiment), seeds=3))
    assert plan.kind == "seed" and plan.n_replicates == 3
    _, labels = load_arrays(fake_data_dir, "train")
    search = TrialConfig.from_flat({**plan.configs["t1"]})
    seeds = []
    for r in range(3):
        cfg = TrialConfig.from_flat(plan.trial_config("t1", r))
        assert cfg.data == search.data  # the study's own split and training subset
        assert cfg.data.fold is None
        seeds.append(cfg.seed)
    assert len(set(seeds)) == 3 and search.seed not in seeds
    assert plan.sizes["t1"] == (search.data.train_size, search.data.val_size)


def test_the_default_replicates_are_the_studys_confirm_seeds(small_experiment):
    plan = plan_cv(CVOptions(str(small_experiment)))
    assert plan.kind == "seed" and plan.n_replicates >= 2
    with pytest.raises(RetrainError, match="two kinds of replicate"):
        plan_cv(CVOptions(str(small_experiment), seeds=3, folds=2))
    with pytest.raises(RetrainError, match="--seeds must be .* at least 2"):
        plan_cv(CVOptions(str(small_experiment), seeds=1))


def test_a_cv_training_validates_on_its_fold_after_the_last_epoch_only(small_experiment, fake_tune):
    plan = plan_cv(CVOptions(str(small_experiment), folds=2))
    trainable.train_cv_trial({"config_id": "t1", "replicate": 0}, configs=plan.trial_configs())
    assert [r["epoch"] for r in fake_tune.reports] == [1, 2]
    assert "val_acc" not in fake_tune.reports[0]
    last = fake_tune.reports[-1]
    assert 0 <= last["val_acc"] <= 1 and last["gap"] == pytest.approx(last["val_loss"] - last["train_eval_loss"])


def test_the_first_replicate_set_is_the_experiments_own_and_others_go_to_replicates(small_experiment):
    import json

    from study.retraining.cross_validation import locate_set

    first = locate_set(CVOptions(experiment=str(small_experiment), folds=3))
    assert (first.name, first.own, first.folder) == ("folds-3", True, "cv")
    assert first.uri == str(small_experiment.resolve())
    # Once the experiment holds a set, its cv.json names it: the same options find it, others go beside it.
    (small_experiment / "cv.json").write_text(json.dumps({"replicate_set": "folds-3", "plan": {}}))
    assert locate_set(CVOptions(experiment=str(small_experiment), folds=3)).own
    other = locate_set(CVOptions(experiment=str(small_experiment), seeds=2, top_k=2, max_epochs=1))
    assert other.name == "top2-seeds-2-epochs1" and not other.own and other.folder == "tune"
    assert other.uri == f"{small_experiment.resolve()}/replicates/top2-seeds-2-epochs1"
    # A cv.json from before sets had names: the set its plan implies.
    (small_experiment / "cv.json").write_text(json.dumps({"plan": {"selection": "the best completed trial of every cell",
                                                                   "replicates": {"kind": "seed", "n": 2}}}))
    assert locate_set(CVOptions(experiment=str(small_experiment), seeds=2)).own
    assert not locate_set(CVOptions(experiment=str(small_experiment), folds=3)).own
