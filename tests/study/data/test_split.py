"""Seeded stratified splits, subsets and folds."""

import numpy as np
import pytest

from study.data.split import stratified_folds, stratified_split, stratified_subset

# Imbalanced classes, so stratification is visible: 1003 labels.
COUNTS = [5, 17, 100, 3, 250, 60, 8, 300, 200, 60]


@pytest.fixture
def labels():
    y = np.repeat(np.arange(10), COUNTS)
    return np.random.default_rng(0).permutation(y)


def _assert_stratified(labels, part, size):
    exact = np.bincount(labels, minlength=10) * size / len(labels)
    got = np.bincount(labels[part], minlength=10)
    assert np.all(np.abs(got - exact) < 1), (got, exact)


def test_split_disjoint_covering_stratified(labels):
    train, val = stratified_split(labels, 100, seed=0)
    assert len(val) == 100 and len(train) == len(labels) - 100
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    assert np.all(np.diff(val) > 0) and np.all(np.diff(train) > 0)  # sorted, unique
    _assert_stratified(labels, val, 100)
    _assert_stratified(labels, train, len(labels) - 100)


def test_split_seeded(labels):
    a = stratified_split(labels, 100, seed=0)
    b = stratified_split(labels, 100, seed=0)
    c = stratified_split(labels, 100, seed=1)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("bad", [0, 1003, 5000, -1, 2.5, True])
def test_split_rejects_bad_val_size(labels, bad):
    with pytest.raises(ValueError, match=f"val_size .*got {bad!r}"):
        stratified_split(labels, bad, seed=0)


def test_split_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        stratified_split(np.zeros((2, 2), int), 1, 0)
    with pytest.raises(ValueError, match="float"):
        stratified_split(np.zeros(4), 1, 0)


def test_subset_is_stratified_subset_of_indices(labels):
    train, _ = stratified_split(labels, 100, seed=0)
    sub = stratified_subset(labels, train, 300, seed=0)
    assert len(sub) == 300 and len(np.unique(sub)) == 300
    assert np.isin(sub, train).all()
    exact = np.bincount(labels[train], minlength=10) * 300 / len(train)
    assert np.all(np.abs(np.bincount(labels[sub], minlength=10) - exact) < 1)
    np.testing.assert_array_equal(sub, stratified_subset(labels, train, 300, seed=0))
    assert not np.array_equal(sub, stratified_subset(labels, train, 300, seed=5))
    np.testing.assert_array_equal(stratified_subset(labels, train, len(train), 0), train)


def test_subset_rejects_bad_size(labels):
    with pytest.raises(ValueError, match=r"size must be >= 1 and <= 10 \(only 10 indices are available\), got 11"):
        stratified_subset(labels, np.arange(10), 11, seed=0)
    with pytest.raises(ValueError, match="size must be >= 1"):
        stratified_subset(labels, np.arange(10), 0, seed=0)
    with pytest.raises(ValueError, match="indices must lie in 0..1002"):
        stratified_subset(labels, np.array([0, 5000]), 1, seed=0)


def test_folds_disjoint_covering_stratified(labels):
    folds = stratified_folds(labels, 5, seed=0)
    assert len(folds) == 5
    vals = [val for _, val in folds]
    np.testing.assert_array_equal(np.sort(np.concatenate(vals)), np.arange(len(labels)))
    sizes = [len(v) for v in vals]
    assert max(sizes) - min(sizes) <= 1
    for train, val in folds:
        assert np.intersect1d(train, val).size == 0
        assert len(train) + len(val) == len(labels)
        _assert_stratified(labels, val, len(val))


def test_folds_seeded(labels):
    a = stratified_folds(labels, 3, seed=0)
    b = stratified_folds(labels, 3, seed=0)
    c = stratified_folds(labels, 3, seed=1)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert not np.array_equal(a[0][1], c[0][1])


@pytest.mark.parametrize("bad", [1, 0, 2000])
def test_folds_reject_bad_n_folds(labels, bad):
    with pytest.raises(ValueError, match=f"n_folds .*got {bad}"):
        stratified_folds(labels, bad, seed=0)


def test_negative_seed_rejected(labels):
    with pytest.raises(ValueError, match="seed must be >= 0, got -3"):
        stratified_split(labels, 10, seed=-3)
