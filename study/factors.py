"""The study's vocabulary: scientific factors, their values, and metric names.

Every other module takes these names from here, so code, columns, plots and docs
use one word for one thing (see DESIGN.md section 2).
"""

from __future__ import annotations

from typing import Any

MODELS = ("small", "medium", "large")
BN_PLACEMENTS = ("none", "pre_act", "post_act")
DROPOUT_PLACEMENTS = ("none", "fc", "conv", "all")
ORDERS = ("bn_first", "dropout_first")

# Scientific factors in the order they appear in tables and cell names.
SCIENTIFIC_FACTORS = ("model", "bn", "dropout", "order", "p_conv", "p_fc", "augment")
CATEGORICAL_VALUES = {
    "model": MODELS,
    "bn": BN_PLACEMENTS,
    "dropout": DROPOUT_PLACEMENTS,
    "order": ORDERS,
    "augment": (False, True),
}

# Nuisance hyperparameters: tuned inside a cell, never compared across cells.
NUISANCE = ("lr", "weight_decay", "momentum", "optimizer", "schedule")

# Per-epoch metrics reported by every trial.
EPOCH_METRICS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "gap",
    "lr",
    "epoch_s",
    "samples_per_s",
)


def normalise_factors(factors: dict[str, Any]) -> dict[str, Any]:
    """Return a copy where factors that cannot matter take their canonical value.

    Two configurations that build the same network must land in the same cell:
    `order` only matters when a conv block has both BN and Dropout2d, and a drop
    rate only matters where its Dropout layer exists.
    """
    out = dict(factors)
    bn = out.get("bn", "none")
    dropout = out.get("dropout", "none")
    if bn == "none" or dropout not in ("conv", "all"):
        out["order"] = "bn_first"
    if dropout not in ("conv", "all"):
        out["p_conv"] = 0.0
    if dropout not in ("fc", "all"):
        out["p_fc"] = 0.0
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
