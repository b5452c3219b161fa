"""Typed configuration of one training run, and its conversion from a flat dict.

Ray Tune and Optuna hand trials a flat ``{name: value}`` dict; everything inside
the project works on these frozen dataclasses instead. `TrialConfig.from_flat` is
the one place that checks a flat dict, so a bad value fails once, early, with the
key and the value in the message.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from study.vocabulary.errors import UserError
from study.vocabulary.factors import (
    BN_PLACEMENTS,
    DROPOUT_KINDS,
    DROPOUT_PLACEMENTS,
    MODELS,
    ORDERS,
    normalise_factors,
)

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("none", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")  # study.training.numerics
MAX_EPOCHS = 10_000  # the most epochs a training may plan
MAX_WIDTH_MULTIPLIER = 8.0  # the large model at 8x has 256-512-1024 channels: beyond it a typo is likelier than a plan


class ConfigError(UserError):
    """A configuration value is invalid; the message names the key and the value."""


def _bad(key: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"config key '{key}' has invalid value {value!r}: {why}")


def _choice(key: str, value: Any, allowed: tuple) -> Any:
    if value not in allowed:
        raise _bad(key, value, f"expected one of {', '.join(map(str, allowed))}")
    return value


def _number(key: str, value: Any, low: float, high: float, *, low_open=False, high_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(key, value, "expected a number")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if math.isnan(value) or too_low or too_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise _bad(key, value, f"expected a value in {lo}{low:g}, {high:g}{hi}")
    return value


def _integer(key: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise _bad(key, value, "expected an integer")
    value = int(value)
    if value < low or (high is not None and value > high):
        raise _bad(key, value, f"expected an integer >= {low}" + (f" and <= {high}" if high else ""))
    return value


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _bad(key, value, "expected true or false")


@dataclass(frozen=True)
class ModelConfig:
    """Network size and the placement of BatchNorm and Dropout (the scientific factors)."""

    model: str = "medium"
    bn: str = "none"
    dropout: str = "none"
    order: str = "bn_first"
    dropout_kind: str = "bernoulli"  # with "uout", p_conv and p_fc are Uout's beta
    p_conv: float = 0.0
    p_fc: float = 0.0
    # Every conv layer's channels times this (the size's own widths at 1): a recipe setting, like the budget's
    # epochs, not a factor; the headline recipe trains a wider large model with it (docs/headline.md).
    width_multiplier: float = 1.0

    def __post_init__(self):
        _choice("model", self.model, MODELS)
        _choice("bn", self.bn, BN_PLACEMENTS)
        _choice("dropout", self.dropout, DROPOUT_PLACEMENTS)
        _choice("order", self.order, ORDERS)
        _choice("dropout_kind", self.dropout_kind, DROPOUT_KINDS)
        _number("p_conv", self.p_conv, 0.0, 1.0, high_open=True)
        _number("p_fc", self.p_fc, 0.0, 1.0, high_open=True)
        _number("width_multiplier", self.width_multiplier, 0.0, MAX_WIDTH_MULTIPLIER, low_open=True)

    def normalised(self) -> "ModelConfig":
        """The same network with factors that cannot matter set to their canonical value."""
        return ModelConfig(**normalise_factors(asdict(self)))


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule (nuisance hyperparameters)."""

    optimizer: str = "sgd"
    lr: float = 0.05
    weight_decay: float = 5e-4
    momentum: float = 0.9
    schedule: str = "cosine"
    # The training loss's label smoothing (0: plain cross-entropy); validation and test losses never smooth.
    label_smoothing: float = 0.0

    def __post_init__(self):
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _number("lr", self.lr, 0.0, 10.0, low_open=True)
        _number("weight_decay", self.weight_decay, 0.0, 1.0)
        _number("momentum", self.momentum, 0.0, 1.0, high_open=True)
        _choice("schedule", self.schedule, SCHEDULES)
        _number("label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)


@dataclass(frozen=True)
class DataConfig:
    """Which images a run trains and validates on, and how they are fed."""

    data_dir: str | None = None
    val_size: int = 6000
    train_size: int | None = None  # stratified subset of the training split; None = all
    split_seed: int = 0
    batch_size: int = 128
    augment: bool = False  # random crop and horizontal flip
    random_erasing: float = 0.0  # the probability that a training image gets a random rectangle erased
    # Cross-validation: validate on fold `fold` of `n_folds` stratified folds of the
    # 60k training images instead of the fixed `val_size` split.
    fold: int | None = None
    n_folds: int = 5

    def __post_init__(self):
        _integer("val_size", self.val_size, 10, 30000)
        _integer("n_folds", self.n_folds, 2, 100)
        if self.fold is not None:
            _integer("fold", self.fold, 0, self.n_folds - 1)
        if self.train_size is not None:
            _integer("train_size", self.train_size, 10)
        _integer("split_seed", self.split_seed, 0)
        _integer("batch_size", self.batch_size, 2, 65536)
        _number("random_erasing", self.random_erasing, 0.0, 1.0)


@dataclass(frozen=True)
class TrialConfig:
    """Everything one training run needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    max_epochs: int = 10
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    # auto | fp32 | bf16 (study.training.numerics). fp32 is how configs without the key ran; the quick and
    # full budgets ask for auto.
    precision: str = "fp32"

    def __post_init__(self):
        _integer("max_epochs", self.max_epochs, 1, MAX_EPOCHS)
        _integer("seed", self.seed, 0)
        _choice("device", self.device, DEVICES)
        _choice("precision", self.precision, PRECISIONS)

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> "TrialConfig":
        """Build from a flat dict such as a Ray Tune config.

        Unknown keys are an error (a typo would otherwise be silently ignored);
        keys in `METADATA_KEYS` describe the trial and are passed over.
        """
        groups = {"model": ModelConfig, "optim": OptimConfig, "data": DataConfig}
        owner = {f.name: g for g, c in groups.items() for f in fields(c)}
        top = {f.name for f in fields(cls)} - set(groups)
        parts: dict[str, dict] = {g: {} for g in groups}
        kwargs: dict[str, Any] = {}
        for key, value in flat.items():
            if key in METADATA_KEYS:
                continue
            if key in owner:
                parts[owner[key]][key] = value
            elif key in top:
                kwargs[key] = value
            else:
                known = sorted(set(owner) | top | set(METADATA_KEYS))
                raise ConfigError(f"unknown config key '{key}' (value {value!r}); known keys: {', '.join(known)}")
        if "augment" in parts["data"]:
            parts["data"]["augment"] = _boolean("augment", parts["data"]["augment"])
        if "compile" in kwargs:
            kwargs["compile"] = _boolean("compile", kwargs["compile"])
        if parts["data"].get("train_size") is not None:
            parts["data"]["train_size"] = _integer("train_size", parts["data"]["train_size"], 10)
        return cls(**{g: groups[g](**parts[g]) for g in groups}, **kwargs)

    def to_flat(self) -> dict[str, Any]:
        """The inverse of `from_flat`."""
        flat = {}
        for group in ("model", "optim", "data"):
            flat.update(asdict(getattr(self, group)))
        flat.update(max_epochs=self.max_epochs, seed=self.seed, device=self.device, compile=self.compile,
                    precision=self.precision)
        return flat

    def to_row(self) -> dict[str, Any]:
        """The flat values as the tables record them: the scientific factors normalised (the network it builds)."""
        return {**self.to_flat(), **vars(self.model.normalised())}


# Keys a trial's config may carry that describe it rather than configure training.
METADATA_KEYS = ("cell", "experiment")
