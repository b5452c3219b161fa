"""The study's vocabulary: scientific factors, their values, and metric names.

Every other module takes these names from here, so code, columns, plots and docs
use one word for one thing (docs/concepts.md lists them).
"""

from __future__ import annotations

import math
from typing import Any

MODELS = ("small", "medium", "large")
BN_PLACEMENTS = ("none", "pre_act", "post_act")
DROPOUT_PLACEMENTS = ("none", "fc", "conv", "all")
ORDERS = ("bn_first", "dropout_first")
# The Dropout used: inverted Bernoulli, or the variance-stable Uout (x + x*r, r ~ U(-rate, rate)).
DROPOUT_KINDS = ("bernoulli", "uout")

# Scientific factors in the order they appear in tables and cell names.
SCIENTIFIC_FACTORS = ("model", "bn", "dropout", "order", "dropout_kind", "p_conv", "p_fc", "augment")
CATEGORICAL_VALUES = {
    "model": MODELS,
    "bn": BN_PLACEMENTS,
    "dropout": DROPOUT_PLACEMENTS,
    "order": ORDERS,
    "dropout_kind": DROPOUT_KINDS,
    "augment": (False, True),
}

# Which placements put Dropout where: Dropout2d in the conv blocks, Dropout in the classifier.
CONV_DROPOUT = ("conv", "all")
FC_DROPOUT = ("fc", "all")
# Drop rates, and the placements whose layer each belongs to (a rate is 0 elsewhere).
RATE_FACTORS = ("p_conv", "p_fc")
RATE_LAYER = {"p_conv": CONV_DROPOUT, "p_fc": FC_DROPOUT}
# Factors that exist only inside a value of another: a rate or a Dropout kind means nothing without
# Dropout, so comparing Dropout placements must not require cells equal in them.
NESTED_FACTORS = {"dropout": (*RATE_FACTORS, "dropout_kind")}

NUM_CLASSES = 10  # FashionMNIST

# Nuisance hyperparameters: tuned inside a cell, never compared across cells.
NUISANCE = ("lr", "weight_decay", "momentum", "optimizer", "schedule")
# The ones a space may tune over a range, and those read on a log scale where an experiment does not record
# its ranges (study.json does: `space.nuisance`): learning rate and weight decay span decades, momentum not.
RANGED_NUISANCE = ("lr", "weight_decay", "momentum")
LOG_SCALE_NUISANCE = ("lr", "weight_decay")

# Per-epoch metrics reported by every trial.
EPOCH_METRICS = (
    "epoch",
    "train_loss",
    "train_acc",
    "train_eval_loss",
    "train_eval_acc",
    "val_loss",
    "val_acc",
    "gap",
    "ece",
    "conf_wrong",
    "var_shift_max",
    "var_shift_mean",
    "val_acc_bn_reestimated",
    "lr",
    "epoch_s",
    "samples_per_s",
)

# Per BN layer (numbered in the order of the network's modules, from 0), its variance
# shift in epochs.csv: var_shift_bn0, var_shift_bn1, ...
VAR_SHIFT_LAYER_PREFIX = "var_shift_bn"


def var_shift_layer(index: int) -> str:
    """The epochs.csv column of the variance shift of BN layer `index` (0 = the first)."""
    return f"{VAR_SHIFT_LAYER_PREFIX}{index}"


# Statuses of a trial: trained the full budget, stopped by the
# scheduler, diverged (see `is_diverged`), or raised.
STATUSES = ("completed", "pruned", "diverged", "error")

CHANCE_ACCURACY = 1 / NUM_CLASSES  # the classes are balanced
# A model this close to chance learned nothing: twice chance, far below any trained
# network (a linear model reaches ~0.8) and above what a constant or NaN model scores.
DIVERGED_ACCURACY = 0.2


def is_diverged(train_loss: float, val_acc: float | None, full_budget: bool = True) -> bool:
    """The one definition of divergence: a non-finite training loss, or an accuracy near chance.

    The accuracy criterion applies only to a run that trained its full budget: a trial
    the scheduler stopped after an epoch or two may just be a slow starter (Dropout
    slows early epochs), while a run that ends near chance after the whole budget
    learned nothing. `val_acc` None or NaN (not validated) is no evidence either way.
    """
    if not math.isfinite(train_loss):
        return True
    return full_budget and val_acc is not None and math.isfinite(val_acc) and bool(val_acc < DIVERGED_ACCURACY)


def normalise_factors(factors: dict[str, Any]) -> dict[str, Any]:
    """Return a copy where factors that cannot matter take their canonical value.

    Two configurations that build the same network must land in the same cell:
    `order` only matters when a conv block has both BN and Dropout2d, `dropout_kind`
    only where there is Dropout, and a drop rate only where its Dropout layer exists.
    """
    out = dict(factors)
    for factor, value in canonical_values(out.get("bn", "none"), out.get("dropout", "none")).items():
        if factor != "dropout_kind" or factor in out:  # a table without Dropout kinds gains no column
            out[factor] = value
    return out


def canonical_values(bn: str, dropout: str) -> dict[str, Any]:
    """The factors that cannot matter for a network with this BN and Dropout placement, at the value every such
    network is recorded with: the one rule `normalise_factors` (a dict) and the analysis (a table) apply."""
    out: dict[str, Any] = {}
    if bn == "none" or dropout not in CONV_DROPOUT:
        out["order"] = "bn_first"
    if dropout == "none":
        out["dropout_kind"] = "bernoulli"
    for rate, layer in RATE_LAYER.items():
        if dropout not in layer:
            out[rate] = 0.0
    return out


def cell_name(factors: dict[str, Any], names: tuple[str, ...] | list[str]) -> str:
    """A readable, stable key for one combination of scientific values.

    Example: ``cell_name({"bn": "pre_act", "dropout": "fc"}, ["bn", "dropout"])``
    gives ``"bn=pre_act,dropout=fc"``.
    """
    parts = []
    for name in names:
        value = factors[name]
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{name}={value}")
    return ",".join(parts)
