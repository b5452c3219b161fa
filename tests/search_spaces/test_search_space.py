"""Search spaces as data: the shipped spaces, the file format, and clear validation errors."""

from __future__ import annotations

import pytest

from search_spaces import Range, SpaceError, list_spaces, load_space, parse_space
from study.vocabulary.config import TrialConfig

SHIPPED = ("default", "bn_dropout", "blog_ablation", "blog_ablation_post", "placement", "dropout_rate", "full", "variance_shift")


def _error(data: dict) -> str:
    with pytest.raises(SpaceError) as info:
        parse_space(data, name="bad", source="bad.yaml")
    message = str(info.value)
    assert "'bad.yaml'" in message  # every error names the file
    return message


# ---- the shipped spaces


def test_every_shipped_space_is_listed_with_a_one_line_description():
    spaces = list_spaces()
    assert set(SHIPPED) <= set(spaces)
    for name, description in spaces.items():
        assert description and "\n" not in description, name


@pytest.mark.parametrize("name", SHIPPED)
def test_every_cell_of_every_shipped_space_builds_a_trial_config(name):
    space = load_space(name)
    cells = space.named_cells()
    assert len({c.name for c in cells}) == len(cells)  # stable, unique names
    assert [c.index for c in cells] == list(range(len(cells)))
    for cell in cells:
        TrialConfig.from_flat({**space.fixed, **cell.settings, **{k: r.low for k, r in cell.ranges.items()}})
    assert len(space.cells()) == len(cells)


def test_cell_counts_after_normalisation():
    # placement: 3 bn x 4 dropout x 2 order, but order only matters with BN and Dropout2d:
    # 4 (bn none) + 2 x 2 (bn, dropout none/fc) + 2 x 2 x 2 (bn, dropout conv/all, order) = 16.
    assert len(load_space("placement").cells()) == 16
    assert len(load_space("bn_dropout").cells()) == 12
    assert len(load_space("dropout_rate").cells()) == 12
    assert len(load_space("full").cells()) == 96
    # variance_shift: bn none: 1 + 2 kinds x (fc, conv); pre_act: 1 + 2 (fc) + 2 orders x 2 kinds (conv).
    assert len(load_space("variance_shift").cells()) == 12


def test_bn_dropout_space_names_cells_by_their_factors():
    space = load_space("bn_dropout")
    assert space.factors == ("bn", "dropout")
    assert space.cells()[0] == {"bn": "none", "dropout": "none"}
    cell = space.named_cells()[5]
    assert cell.name == "bn=pre_act,dropout=fc"
    assert cell.settings == {"bn": "pre_act", "dropout": "fc"}
    assert set(cell.ranges) == {"lr", "weight_decay"} and cell.ranges["lr"].log


def test_blog_ablation_is_the_posts_eight_experiments():
    space = load_space("blog_ablation")
    cells = space.named_cells()
    assert [c.experiment for c in cells] == list(range(1, 9))
    assert [c.name for c in cells] == [f"exp{i}" for i in range(1, 9)]
    f = {c.experiment: c.factors for c in cells}
    settings = {c.experiment: c.settings for c in cells}
    assert f[1]["model"] == "small" and f[8]["model"] == "large"
    assert all(f[i]["model"] == "medium" for i in range(2, 8))
    # (1)/(2) no regularization: no BN, no Dropout, no augmentation, no LR schedule, no L2.
    for i in (1, 2):
        assert (f[i]["bn"], f[i]["dropout"], f[i]["augment"]) == ("none", "none", False)
        assert settings[i]["schedule"] == "none"
    assert space.fixed["weight_decay"] == 0.0
    assert (f[3]["bn"], f[3]["dropout"], f[3]["augment"]) == ("none", "none", True)  # augmentation only
    assert (f[4]["bn"], f[4]["dropout"], f[4]["augment"]) == ("pre_act", "none", False)  # BN only ...
    assert settings[4]["schedule"] != "none"  # ... with an LR schedule
    assert (f[5]["bn"], f[5]["dropout"]) == ("none", "all")  # Dropout2d in conv blocks + Dropout in the classifier
    assert f[5]["p_conv"] > 0 and f[5]["p_fc"] > 0
    assert (f[6]["bn"], f[6]["dropout"], f[6]["augment"]) == ("pre_act", "all", False)
    assert (f[7]["bn"], f[7]["dropout"], f[7]["augment"]) == ("pre_act", "all", True)
    assert (f[8]["bn"], f[8]["dropout"], f[8]["augment"]) == ("pre_act", "all", True)
    # Every trial carries its experiment's full factor values.
    assert all(set(s) >= {"model", "bn", "dropout", "order", "p_conv", "p_fc", "augment"} for s in settings.values())
    # Tuned mode: the learning rate is tuned in every experiment, with the same range.
    assert all(set(c.ranges) == {"lr"} for c in cells)
    assert "model" in space.scientific  # so `--model` is refused for this space


def test_blog_ablation_post_has_the_same_cells_and_tunes_nothing():
    tuned, post = load_space("blog_ablation"), load_space("blog_ablation_post")
    assert [(c.name, c.experiment, c.settings) for c in tuned.named_cells()] == [
        (c.name, c.experiment, c.settings) for c in post.named_cells()
    ]
    assert all(not c.ranges for c in post.named_cells())
    assert not post.early_stopping and tuned.early_stopping
    assert "lr" in post.fixed


def test_dropout_rate_samples_a_rate_only_where_its_dropout_exists():
    space = load_space("dropout_rate")
    assert set(space.continuous) == {"p_conv", "p_fc"}
    ranges = {c.name: set(c.ranges) for c in space.named_cells()}
    assert ranges["bn=none,dropout=none"] == {"lr"}
    assert ranges["bn=pre_act,dropout=fc"] == {"p_fc", "lr"}
    assert ranges["bn=pre_act,dropout=conv"] == {"p_conv", "lr"}
    assert ranges["bn=post_act,dropout=all"] == {"p_conv", "p_fc", "lr"}
    # The rates vary inside a cell: they are not part of its name.
    assert space.factors == ("bn", "dropout")


def test_to_dict_records_the_space_in_full():
    record = load_space("blog_ablation").to_dict()
    assert record["nuisance"]["lr"] == {"low": 0.005, "high": 0.3, "log": True}
    assert [c["experiment"] for c in record["cells"]] == list(range(1, 9))
    record = load_space("dropout_rate").to_dict()
    assert record["scientific"]["p_fc"]["when"] == {"dropout": ["fc", "all"]}


# ---- loading


def test_user_file_in_yaml_and_toml(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "description: mine\nscientific:\n  bn: [none, pre_act]\nnuisance:\n  lr: {low: 0.01, high: 0.1, log: true}\n"
    )
    (tmp_path / "mine.toml").write_text(
        'description = "mine"\n[scientific]\nbn = ["none", "pre_act"]\n[nuisance.lr]\nlow = 0.01\nhigh = 0.1\nlog = true\n'
    )
    for suffix in ("yaml", "toml"):
        space = load_space(tmp_path / f"mine.{suffix}")
        assert space.name == "mine" and len(space.cells()) == 2
        assert space.nuisance["lr"] == Range(0.01, 0.1, True)


def test_unknown_name_lists_the_shipped_spaces():
    with pytest.raises(SpaceError, match="'nosuch'.*blog_ablation.*default.*study spaces"):
        load_space("nosuch")


def test_missing_file(tmp_path):
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(tmp_path / "gone.yaml")


def test_toml_cells(tmp_path):
    (tmp_path / "two.toml").write_text(
        'description = "two"\n'
        "[[cells]]\nexperiment = 1\nfactors = {bn = \"none\"}\n"
        "[[cells]]\nexperiment = 2\nfactors = {bn = \"pre_act\"}\nfixed = {schedule = \"none\"}\n"
    )
    cells = load_space(tmp_path / "two.toml").named_cells()
    assert [(c.name, c.experiment) for c in cells] == [("exp1", 1), ("exp2", 2)]
    assert cells[1].settings["schedule"] == "none"


# ---- validation errors: file, entry and value


def test_unknown_factor():
    message = _error({"scientific": {"batchnorm": ["none"]}})
    assert "'batchnorm'" in message and "scientific.batchnorm" in message and "known factors" in message


def test_value_outside_the_vocabulary():
    message = _error({"scientific": {"bn": ["none", "after"]}})
    assert "scientific.bn" in message and "'after'" in message and "pre_act" in message


def test_bad_value_in_an_explicit_cell_names_the_cell():
    message = _error({"cells": [{"experiment": 1, "factors": {"dropout": "everywhere"}}]})
    assert "cells[0] (exp1)" in message and "'everywhere'" in message


def test_unknown_factor_in_an_explicit_cell():
    message = _error({"cells": [{"name": "a", "factors": {"size": "small"}}]})
    assert "cells[0] (a).factors.size" in message and "'size'" in message


@pytest.mark.parametrize("low, high", [(0.1, 0.1), (0.3, 0.01)])
def test_empty_or_inverted_range(low, high):
    message = _error({"scientific": {"bn": ["none"]}, "nuisance": {"lr": {"low": low, "high": high}}})
    assert "nuisance.lr" in message and "empty or inverted" in message and repr(low) in message and repr(high) in message


def test_inverted_continuous_rate():
    message = _error({"scientific": {"dropout": ["fc"], "p_fc": {"low": 0.5, "high": 0.2}}})
    assert "scientific.p_fc" in message and "empty or inverted" in message


def test_log_range_needs_a_positive_low():
    assert "low > 0" in _error({"nuisance": {"lr": {"low": 0.0, "high": 0.1, "log": True}}})


def test_condition_on_an_unknown_name():
    message = _error(
        {"scientific": {"dropout": ["fc"], "p_fc": {"low": 0.1, "high": 0.5, "when": {"drop": ["fc"]}}}}
    )
    assert "scientific.p_fc.when" in message and "unknown name 'drop'" in message


def test_condition_on_a_factor_the_space_does_not_declare():
    message = _error({"scientific": {"bn": ["none"]}, "nuisance": {"lr": {"low": 0.01, "high": 0.1, "when": {"dropout": ["fc"]}}}})
    assert "nuisance.lr.when" in message and "'dropout'" in message and "neither compares nor fixes" in message


def test_condition_value_outside_the_vocabulary():
    message = _error({"scientific": {"dropout": ["fc"], "p_fc": {"low": 0.1, "high": 0.5, "when": {"dropout": ["classifier"]}}}})
    assert "'classifier'" in message and "p_fc.when.dropout" in message


def test_condition_limits_a_nuisance_range_to_some_cells():
    space = parse_space(
        {
            "scientific": {"bn": ["none", "pre_act"]},
            "nuisance": {
                "lr": {"low": 0.01, "high": 0.1, "log": True},
                "weight_decay": {"low": 1e-5, "high": 1e-3, "log": True, "when": {"bn": ["pre_act"]}},
            },
        },
        name="cond",
    )
    assert {c.name: set(c.ranges) for c in space.named_cells()} == {
        "bn=none": {"lr"},
        "bn=pre_act": {"lr", "weight_decay"},
    }


def test_a_range_sampled_in_no_cell_is_an_error():
    message = _error({"scientific": {"dropout": ["none", "conv"], "p_fc": {"low": 0.1, "high": 0.5}}})
    assert "scientific.p_fc" in message and "no cell" in message


def test_only_rates_may_be_continuous():
    assert "only p_conv, p_fc" in _error({"scientific": {"bn": {"low": 0, "high": 1}}})


def test_rate_bound_outside_zero_one_fails_when_built():
    message = _error({"scientific": {"dropout": ["fc"], "p_fc": {"low": 0.5, "high": 1.0}}})
    assert "'p_fc'" in message and "[0, 1)" in message


def test_fixed_and_searched_clash():
    assert "both fixed and searched" in _error({"scientific": {"bn": ["none"]}, "fixed": {"bn": "none"}})


# ---- a factorial plus named cells


FACTORIAL_PLUS = {
    "scientific": {"bn": ["none", "pre_act"], "dropout": ["none", "conv"]},
    "cells": [
        {"factors": {"bn": "pre_act", "dropout": "conv", "order": "dropout_first"}},
        {"name": "big", "factors": {"model": "large", "bn": "pre_act", "dropout": "conv"}, "fixed": {"schedule": "none"}},
    ],
    "nuisance": {"lr": {"low": 0.01, "high": 0.1, "log": True}},
    "fixed": {"model": "medium", "p_conv": 0.1},
}


def test_a_factorial_plus_named_cells():
    space = parse_space(FACTORIAL_PLUS, name="plus")
    cells = space.named_cells()
    assert [c.name for c in cells] == [
        "bn=none,dropout=none", "bn=none,dropout=conv", "bn=pre_act,dropout=none", "bn=pre_act,dropout=conv",
        "bn=pre_act,dropout=conv,order=dropout_first", "big",  # unnamed: the factorial's factors and its own
    ]
    assert cells[4].factors["order"] == "dropout_first" and cells[4].factors["model"] == "medium"
    assert cells[5].factors["model"] == "large" and cells[5].settings["schedule"] == "none"
    assert all("lr" in c.ranges for c in cells)
    # The factors that vary over all cells, factorial and added alike; the factorial as written is kept.
    assert space.factors == ("model", "bn", "dropout", "order", "p_conv")  # p_conv: 0 where no Dropout2d
    assert space.to_dict()["factorial"] == {"bn": ["none", "pre_act"], "dropout": ["none", "conv"]}


def test_an_added_cell_equal_to_a_factorial_cell_is_an_error():
    data = {**FACTORIAL_PLUS, "cells": [{"factors": {"bn": "pre_act", "dropout": "conv", "order": "bn_first"}}]}
    message = _error(data)
    assert "'bn=pre_act,dropout=conv'" in message and "same network" in message


def test_a_factorial_factor_cannot_also_be_fixed_but_an_added_cell_may_override_a_fixed_value():
    assert "both fixed and searched" in _error({**FACTORIAL_PLUS, "fixed": {"bn": "none"}})
    assert parse_space(FACTORIAL_PLUS, name="plus").named_cells()[5].factors["model"] == "large"  # fixed: medium


def test_a_cell_must_serve_the_claims_it_names():
    data = {**FACTORIAL_PLUS, "claims": ["bn_before_dropout"],
            "cells": [{"factors": {"bn": "pre_act", "dropout": "conv", "order": "dropout_first"}, "claims": ["bn_before_dropout"]},
                      {"name": "big", "factors": {"model": "large", "bn": "pre_act", "dropout": "conv"}, "claims": ["bn_before_dropout"]}]}
    message = _error(data)
    assert "'big'" in message and "does not use it" in message
    data["cells"][1]["claims"] = ["uout_removes_shift"]
    assert "do not list" in _error(data)
    data["cells"][1]["claims"] = []
    space = parse_space(data, name="plus")
    assert [c.id for c in space.claims] == ["bn_before_dropout"]
    assert space.named_cells()[4].claims == ("bn_before_dropout",)


def test_duplicate_experiment_and_equal_cells():
    assert "experiment 1 is used by another cell" in _error({"cells": [{"experiment": 1}, {"experiment": 1}]})
    message = _error({"cells": [{"name": "a", "factors": {"bn": "none"}}, {"name": "b", "factors": {"bn": "none", "order": "dropout_first"}}]})
    assert "'a' and 'b'" in message and "same network" in message


def test_unknown_top_level_key():
    assert "unknown top-level keys ['nuisanse']" in _error({"nuisanse": {}})


def test_unknown_fixed_key_names_key_and_value():
    message = _error({"scientific": {"bn": ["none"]}, "fixed": {"learning_rate": 0.1}})
    assert "'learning_rate'" in message and "0.1" in message


def test_a_cell_may_fix_only_what_its_retraining_keeps():
    message = _error({"cells": [{"name": "a", "factors": {"bn": "none"}, "fixed": {"batch_size": 64}}]})
    assert "cells[0] (a).fixed.batch_size" in message and "width_multiplier" in message and "top-level" in message
    space = parse_space({"cells": [{"name": "a", "factors": {"bn": "none"}, "fixed": {"width_multiplier": 2.0}}]},
                        name="ok", source="ok.yaml")
    assert TrialConfig.from_flat(space.named_cells()[0].settings).model.width_multiplier == 2.0
