"""Flat config -> typed config: every bad value names the key and the value."""

from __future__ import annotations

import pytest

from study.vocabulary.config import ConfigError, TrialConfig


def test_round_trip_and_defaults():
    cfg = TrialConfig.from_flat({"bn": "post_act", "dropout": "all", "p_conv": 0.2, "lr": 0.1, "augment": "true"})
    assert cfg.model.bn == "post_act" and cfg.model.p_conv == 0.2 and cfg.optim.lr == 0.1
    assert cfg.data.augment is True
    assert TrialConfig.from_flat(cfg.to_flat()) == cfg


@pytest.mark.parametrize(
    "key, value",
    [
        ("p_fc", 1.5), ("p_conv", -0.1), ("p_conv", 1.0), ("bn", "after"), ("dropout", "everywhere"),
        ("model", "huge"), ("order", "random"), ("lr", 0.0), ("lr", "fast"), ("optimizer", "adam"),
        ("schedule", "step"), ("batch_size", 0), ("max_epochs", 2.5), ("augment", "maybe"), ("momentum", 1.0),
        ("label_smoothing", 1.0), ("random_erasing", 1.5), ("width_multiplier", 0.0), ("width_multiplier", 9.0),
        ("width_multiplier", "wide"),
    ],
)
def test_bad_value_is_a_clear_error_naming_key_and_value(key, value):
    with pytest.raises(ConfigError) as info:
        TrialConfig.from_flat({key: value})
    message = str(info.value)
    assert f"'{key}'" in message
    assert repr(value) in message or repr(float(value)) in message


def test_unknown_key_is_an_error_listing_known_keys():
    with pytest.raises(ConfigError, match="unknown config key 'learning_rate'.*known keys: .*lr"):
        TrialConfig.from_flat({"learning_rate": 0.1})


def test_metadata_keys_are_passed_over():
    assert TrialConfig.from_flat({"cell": "bn=none", "experiment": 3}) == TrialConfig()


def test_normalised_drops_factors_that_cannot_matter():
    cfg = TrialConfig.from_flat({"bn": "none", "dropout": "fc", "order": "dropout_first", "p_conv": 0.3, "p_fc": 0.4})
    norm = cfg.model.normalised()
    assert (norm.order, norm.p_conv, norm.p_fc) == ("bn_first", 0.0, 0.4)
    kept = TrialConfig.from_flat({"bn": "pre_act", "dropout": "conv", "order": "dropout_first", "p_conv": 0.3}).model
    assert kept.normalised() == kept
