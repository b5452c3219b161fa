"""Claims as data: the shipped declarations, a user's new claim, and clear errors before anything runs."""

from __future__ import annotations

import pytest

from search_spaces import load_space, parse_space
from search_spaces.claims import ClaimError, cells_used, contrast_gap, parse_claim, shipped_claims
from study.vocabulary.errors import UserError

SPACE = {
    "scientific": {"bn": ["none", "pre_act"], "dropout": ["none", "fc", "all"]},
    "nuisance": {"lr": {"low": 0.01, "high": 0.1, "log": True}},
    "fixed": {"model": "medium"},
}
USER_CLAIM = {
    "id": "half_fc_dropout_best_with_bn", "text": "With BN, Dropout in the classifier beats Dropout everywhere.",
    "kind": "difference", "factor": "dropout", "claimed": ["fc"], "against": ["all"], "where": {"bn": ["pre_act"]},
}


def _claim_error(spec) -> str:
    with pytest.raises(ClaimError) as info:
        parse_claim(spec, "claims.yaml: claims[0]")
    return str(info.value)


def test_the_shipped_claims_are_declared_as_data():
    ids = [c.id for c in shipped_claims()]
    assert len(ids) == 11 and len(set(ids)) == 11
    assert {c.kind for c in shipped_claims()} == {"difference", "best", "shift_slope", "reestimation_gain"}


def test_every_shipped_claim_is_decided_by_the_default_space():
    """No claim of the default space can be inconclusive for lack of a factor: each has its cells."""
    space = load_space("default")
    cells = [c.factors for c in space.named_cells()]
    assert [c.id for c in space.claims] == [c.id for c in shipped_claims()]
    for claim in space.claims:
        assert contrast_gap(claim, cells) is None, claim.id
        assert cells_used(claim, cells), claim.id


def test_a_users_claim_in_a_space_file_is_validated_and_recorded():
    space = parse_space({**SPACE, "claims": ["dropout_fc_only_with_bn", USER_CLAIM]}, name="mine")
    assert [c.id for c in space.claims] == ["dropout_fc_only_with_bn", "half_fc_dropout_best_with_bn"]
    recorded = space.to_dict()["claims"][1]
    assert recorded["factor"] == "dropout" and recorded["claimed"] == ["fc"] and recorded["where"] == {"bn": ["pre_act"]}


def test_a_claim_whose_cells_the_space_lacks_is_an_error_before_anything_runs():
    with pytest.raises(UserError) as info:
        parse_space({**SPACE, "claims": ["bn_before_dropout"]}, name="mine", source="mine.yaml")
    assert "'bn_before_dropout'" in str(info.value) and "cannot be decided" in str(info.value)
    lacking = {**USER_CLAIM, "where": {"bn": ["post_act"]}}
    with pytest.raises(UserError) as info:
        parse_space({**SPACE, "claims": [lacking]}, name="mine", source="mine.yaml")
    assert "half_fc_dropout_best_with_bn" in str(info.value)


@pytest.mark.parametrize("change, expected", [
    ({"factor": "dropuot"}, "unknown factor 'dropuot'"),
    ({"claimed": ["classifier"]}, "'classifier' is not a value of 'dropout'"),
    ({"where": {"bn": ["before"]}}, "'before' is not a value of 'bn'"),
    ({"metric": "val_accuracy"}, "'metric' is 'val_accuracy'"),
    ({"kind": "bigger"}, "'kind' is 'bigger'"),
    ({"test": "non_inferiority"}, "needs a 'margin'"),
    ({"against": ["fc"]}, "both claimed and against"),
    ({"colour": "red"}, "unknown keys ['colour']"),
    ({"margin": -1}, "'margin' must be a positive number"),
])
def test_a_bad_declaration_names_the_claim_and_the_value(change, expected):
    message = _claim_error({**USER_CLAIM, **change})
    assert expected in message and "half_fc_dropout_best_with_bn" in message


def test_an_unknown_claim_id_or_a_clash_with_a_shipped_id():
    with pytest.raises(UserError) as info:
        parse_space({**SPACE, "claims": ["no_such_claim"]}, name="mine")
    assert "unknown claim 'no_such_claim'" in str(info.value)
    with pytest.raises(UserError) as info:
        parse_space({**SPACE, "claims": [{**USER_CLAIM, "id": "bn_before_dropout"}]}, name="mine")
    assert "shipped claim" in str(info.value)

