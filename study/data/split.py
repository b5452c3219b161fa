"""Seeded, stratified splits of a label array (pure numpy).

Every function returns sorted int64 index arrays and depends only on the labels
and the seed, so the same seed gives the same split on every machine and in every
Ray worker. "Stratified" means each class gets its share: a class with n_c of the
n images gets within 1 of ``size * n_c / n`` of a part of ``size`` images.
"""

from __future__ import annotations

import numbers

import numpy as np


def _check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a non-empty 1-D integer array, got shape {labels.shape} and dtype {labels.dtype}"
        )
    return labels


def _check_int(name: str, value, low: int, high: int | None = None, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" + (f" and <= {high}" if high is not None else "")
        raise ValueError(f"{name} must be {bounds}{why}, got {value!r}")
    return int(value)


def _quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Split `total` over classes in proportion to `counts`, each within 1 of exact.

    Largest-remainder rounding: floor every share, then give the leftover units to
    the largest fractional parts (ties to the lower class, so it is deterministic).
    """
    exact = counts * (total / counts.sum())
    quotas = np.floor(exact).astype(np.int64)
    leftover = total - int(quotas.sum())
    order = np.argsort(-(exact - quotas), kind="stable")
    quotas[order[:leftover]] += 1
    return quotas


def _stratified_pick(labels: np.ndarray, pool: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A stratified random choice of `size` indices from `pool` (indices into `labels`)."""
    classes, counts = np.unique(labels[pool], return_counts=True)
    quotas = _quotas(counts, size)
    picked = []
    for cls, quota in zip(classes, quotas):
        members = pool[labels[pool] == cls]
        picked.append(rng.permutation(members)[:quota])
    return np.sort(np.concatenate(picked)).astype(np.int64)


def stratified_split(labels, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(len(labels))`` into (train_idx, val_idx) with `val_size` validation indices.

    The parts are disjoint, cover every index, and each class is represented in the
    validation part in proportion to its size (within 1 image).
    """
    labels = _check_labels(labels)
    n = len(labels)
    val_size = _check_int("val_size", val_size, 1, n - 1, f" (there are {n} labels; leave some to train on)")
    seed = _check_int("seed", seed, 0)
    everything = np.arange(n, dtype=np.int64)
    val_idx = _stratified_pick(labels, everything, val_size, np.random.default_rng(seed))
    train_idx = np.setdiff1d(everything, val_idx, assume_unique=True)
    return train_idx, val_idx


def stratified_subset(labels, indices, size: int, seed: int) -> np.ndarray:
    """A stratified random subset of `size` of `indices` (which index into `labels`).

    Used to train on fewer images (``train_size``) with the class balance kept.
    """
    labels = _check_labels(labels)
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1 or len(indices) == 0:
        raise ValueError(f"indices must be a non-empty 1-D array, got shape {indices.shape}")
    if indices.min() < 0 or indices.max() >= len(labels):
        raise ValueError(f"indices must lie in 0..{len(labels) - 1}, got values from {indices.min()} to {indices.max()}")
    size = _check_int("size", size, 1, len(indices), f" (only {len(indices)} indices are available)")
    seed = _check_int("seed", seed, 0)
    return _stratified_pick(labels, indices, size, np.random.default_rng(seed))


def stratified_folds(labels, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`n_folds` (train_idx, val_idx) pairs for cross-validation.

    The validation folds are disjoint and together cover every index; each fold's
    size and each class's count in it are within 1 of an even share.
    """
    labels = _check_labels(labels)
    n = len(labels)
    n_folds = _check_int("n_folds", n_folds, 2, n, f" (there are {n} labels)")
    seed = _check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    # Lay each class's shuffled members end to end and deal positions round-robin:
    # a class occupies consecutive positions, so its members spread over the folds
    # within 1 of evenly, and so do the fold sizes.
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)])
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = np.arange(n) % n_folds
    everything = np.arange(n, dtype=np.int64)
    return [(everything[fold_of != k], everything[fold_of == k]) for k in range(n_folds)]
