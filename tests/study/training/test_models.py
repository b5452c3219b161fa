"""Tests of study.training.models: shapes, layer order per factor, parameter budgets, modes.

The expected layer orders below are written out by hand from docs/concepts.md,
not derived from the code under test, so a wrong placement fails here.
"""

import itertools

import pytest
import torch
from torch import nn

from study.vocabulary.config import ModelConfig
from study.vocabulary.factors import BN_PLACEMENTS, DROPOUT_PLACEMENTS, MODELS, ORDERS
from study.training.models import (
    LENET5_PARAMS,
    Uout,
    SIZES,
    ConvNet,
    build_model,
    conv_block,
    count_macs,
    count_parameters,
    describe_model,
    layer_types,
    model_summary,
    model_summary_table,
)

P_CONV, P_FC = 0.15, 0.35  # distinct, so a swapped rate is caught

ALL_CASES = list(itertools.product(MODELS, BN_PLACEMENTS, DROPOUT_PLACEMENTS, ORDERS))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Batches here are tiny: extra threads only add contention on a shared 2-core CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(model="small", bn="none", dropout="none", order="bn_first", p_conv=P_CONV, p_fc=P_FC):
    return ModelConfig(model=model, bn=bn, dropout=dropout, order=order, p_conv=p_conv, p_fc=p_fc)


def convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


# Block bodies without the pool; D = Dropout2d, only present for dropout conv/all.
EXPECTED_BLOCK = {
    ("none", "bn_first"): ["Conv2d", "ReLU", "D"],
    ("none", "dropout_first"): ["Conv2d", "ReLU", "D"],  # order cannot matter without BN
    ("pre_act", "bn_first"): ["Conv2d", "BatchNorm2d", "ReLU", "D"],
    ("post_act", "bn_first"): ["Conv2d", "ReLU", "BatchNorm2d", "D"],
    ("pre_act", "dropout_first"): ["Conv2d", "D", "BatchNorm2d", "ReLU"],
    ("post_act", "dropout_first"): ["Conv2d", "ReLU", "D", "BatchNorm2d"],
}


@pytest.mark.parametrize("model,bn,dropout,order", ALL_CASES)
def test_every_combination_builds_and_outputs_logits(model, bn, dropout, order):
    net = build_model(make(model, bn, dropout, order))
    x = torch.randn(3, 1, 28, 28)
    for mode in (True, False):
        net.train(mode)
        out = net(x)
        assert out.shape == (3, 10)
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("bn,dropout,order", list(itertools.product(BN_PLACEMENTS, DROPOUT_PLACEMENTS, ORDERS)))
def test_layer_order_matches_factors(bn, dropout, order):
    # "large" has stages with and without a pool in the same stage: check every block.
    net = build_model(make("large", bn, dropout, order))
    body = EXPECTED_BLOCK[(bn, order)]
    conv_drop = dropout in ("conv", "all")
    expected = [name for name in body if name != "D"] if not conv_drop else ["Dropout2d" if n == "D" else n for n in body]
    pooled = []
    for block in net.features:
        types = layer_types(block)
        pooled.append(types[-1] == "MaxPool2d")
        assert [t for t in types if t != "MaxPool2d"] == expected
        assert types.count("MaxPool2d") <= 1
    # a pool closes the last block of each stage: large = (32, 32), (64, 64), (128,)
    assert pooled == [False, True, False, True, True]

    head = ["Flatten", "Linear", "ReLU"] + (["Dropout"] if dropout in ("fc", "all") else []) + ["Linear"]
    assert layer_types(net.classifier) == head


@pytest.mark.parametrize("model,bn", list(itertools.product(MODELS, BN_PLACEMENTS)))
def test_batchnorm_in_every_conv_block_and_never_in_classifier(model, bn):
    net = build_model(make(model, bn, "all", "dropout_first"))
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    n_conv = len(convs(net))
    assert n_conv == sum(len(s) for s in SIZES[model].stages)
    assert n_bn == (n_conv if bn != "none" else 0)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.classifier.modules())
    # each BN normalises the channels of the conv in its own block; a conv before BN has no bias
    for block in net.features:
        conv = block[0]
        bns = [m for m in block if isinstance(m, nn.BatchNorm2d)]
        if bn == "none":
            assert conv.bias is not None and not bns
        else:
            assert conv.bias is None and [b.num_features for b in bns] == [conv.out_channels]


@pytest.mark.parametrize("model,dropout", list(itertools.product(MODELS, DROPOUT_PLACEMENTS)))
def test_dropout_layers_where_factors_say_with_their_rate(model, dropout):
    net = build_model(make(model, "pre_act", dropout, "bn_first"))
    feat_drop2d = [m for m in net.features.modules() if type(m) is nn.Dropout2d]
    feat_drop = [m for m in net.features.modules() if type(m) is nn.Dropout]
    head_drop = [m for m in net.classifier.modules() if type(m) is nn.Dropout]
    head_drop2d = [m for m in net.classifier.modules() if type(m) is nn.Dropout2d]
    n_conv = len(convs(net))
    assert len(feat_drop2d) == (n_conv if dropout in ("conv", "all") else 0)
    assert all(m.p == P_CONV for m in feat_drop2d)
    assert len(head_drop) == (1 if dropout in ("fc", "all") else 0)
    assert all(m.p == P_FC for m in head_drop)
    assert not feat_drop and not head_drop2d


def test_order_is_irrelevant_without_batchnorm():
    # normalise_factors maps bn=none + dropout_first to bn_first: the networks must be equal
    a = build_model(make("medium", "none", "all", "dropout_first"))
    b = build_model(make("medium", "none", "all", "bn_first"))
    assert [layer_types(blk) for blk in a.features] == [layer_types(blk) for blk in b.features]
    cfg = make("medium", "none", "all", "dropout_first")
    assert cfg.normalised().order == "bn_first"


def test_parameter_budgets():
    plain = {m: count_parameters(build_model(make(m))) for m in MODELS}
    assert plain["small"] < LENET5_PARAMS
    assert 20_000 <= plain["small"] <= 35_000
    assert plain["small"] < plain["medium"] < plain["large"]
    # small by hand: conv 1->8 (72+8), conv 8->16 (1152+16), fc 784->32 (25088+32), fc 32->10 (330)
    assert plain["small"] == 80 + 1168 + 25120 + 330


@pytest.mark.parametrize("model", MODELS)
def test_placement_changes_parameters_only_through_batchnorm(model):
    base = count_parameters(build_model(make(model)))
    widths = [c for stage in SIZES[model].stages for c in stage]
    for dropout, order in itertools.product(DROPOUT_PLACEMENTS, ORDERS):
        assert count_parameters(build_model(make(model, "none", dropout, order))) == base
        # BN adds weight and bias (2C) and removes the conv bias (C): +C per conv
        for bn in ("pre_act", "post_act"):
            assert count_parameters(build_model(make(model, bn, dropout, order))) == base + sum(widths)


@pytest.mark.parametrize("model", MODELS)
def test_width_multiplier_scales_every_conv_layer_and_keeps_the_classifier(model):
    wide = build_model(ModelConfig(model=model, bn="pre_act", dropout="all", p_conv=0.1, p_fc=0.3,
                                   width_multiplier=1.5))
    convs = [m for m in wide.modules() if isinstance(m, nn.Conv2d)]
    widths = [c for stage in SIZES[model].stages for c in stage]
    assert [c.out_channels for c in convs] == [round(1.5 * w) for w in widths]
    assert wide.classifier[1].out_features == SIZES[model].fc_width
    assert wide(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    default = build_model(ModelConfig(model=model, bn="pre_act", dropout="all", p_conv=0.1, p_fc=0.3))
    assert [m.out_channels for m in default.modules() if isinstance(m, nn.Conv2d)] == widths


def test_a_tiny_width_multiplier_keeps_one_channel():
    tiny = build_model(ModelConfig(model="small", width_multiplier=0.01))
    assert [m.out_channels for m in tiny.modules() if isinstance(m, nn.Conv2d)] == [1, 1]


def test_eval_is_deterministic_and_train_dropout_is_random():
    torch.manual_seed(0)
    x = torch.randn(8, 1, 28, 28)
    net = build_model(make("small", "pre_act", "all", "dropout_first", p_conv=0.3, p_fc=0.5))
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
    # without dropout, train mode (BN on batch statistics) is deterministic too
    plain = build_model(make("small", "pre_act", "none")).train()
    assert torch.equal(plain(x), plain(x))


@pytest.mark.parametrize("dropout,where", [("conv", "features"), ("fc", "classifier")])
def test_each_dropout_alone_makes_training_random(dropout, where):
    torch.manual_seed(0)
    x = torch.randn(8, 1, 28, 28)
    net = build_model(make("small", "none", dropout, p_conv=0.5, p_fc=0.5)).train()
    part = getattr(net, where)
    inp = x if where == "features" else net.features(x).detach()
    assert not torch.equal(part(inp), part(inp))


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 28, 28)
    net = build_model(make("large", "post_act", "all")).eval()
    with torch.no_grad():
        ref = net(x)
        net = net.to(memory_format=torch.channels_last)
        out = net(x.contiguous(memory_format=torch.channels_last))
    # (torch.allclose, not torch.testing.assert_close: the latter's first call imports for seconds)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_invalid_arguments_name_the_value():
    with pytest.raises(ValueError, match="'layer'"):
        ConvNet(((8,),), 32, bn="layer")
    with pytest.raises(ValueError, match="'some'"):
        ConvNet(((8,),), 32, dropout="some")
    with pytest.raises(ValueError, match="1.5"):
        ConvNet(((8,),), 32, dropout="fc", p_fc=1.5)
    with pytest.raises(ValueError, match="0"):
        ConvNet(((8, 0),), 32)
    with pytest.raises(ValueError, match="'first'"):
        conv_block(1, 8, bn="pre_act", order="first")
    with pytest.raises(TypeError, match="dict"):
        build_model({"model": "small"})


def test_describe_and_summary_agree_with_the_built_models():
    text = describe_model(make("small", "post_act", "all", "dropout_first"))
    lines = text.splitlines()
    assert "26,722 parameters" in lines[0]
    assert "Conv3x3(1->8, no bias) ReLU Dropout2d(0.15) BatchNorm2d MaxPool2 -> [B, 8, 14, 14]" in lines[1]
    assert lines[-1].strip() == "classifier: Flatten Linear(784->32) ReLU Dropout(0.35) Linear(32->10) -> [B, 10]"

    rows = {r["model"]: r for r in model_summary()}
    assert set(rows) == set(MODELS)
    for name, r in rows.items():
        assert r["params_plain"] == count_parameters(build_model(make(name)))
    # small by hand: 1*8*9*28*28 + 8*16*9*14*14 + 784*32 + 32*10 multiply-adds
    assert rows["small"]["macs"] == count_macs(build_model(make("small"))) == 56448 + 225792 + 25088 + 320
    table = model_summary_table().splitlines()
    assert len(table) == 2 + len(MODELS)
    assert all(line.count("|") == table[0].count("|") for line in table)  # no stray cell separators


@pytest.mark.parametrize("order", ORDERS)
def test_uout_takes_the_places_of_dropout_with_the_rate_as_beta(order):
    cfg = ModelConfig(model="medium", bn="post_act", dropout="all", order=order, dropout_kind="uout",
                      p_conv=P_CONV, p_fc=P_FC)
    uout = build_model(cfg)
    bernoulli = build_model(ModelConfig(**{**vars(cfg), "dropout_kind": "bernoulli"}))
    assert not [m for m in uout.modules() if isinstance(m, (nn.Dropout, nn.Dropout2d))]
    # Layer by layer the same network, with Uout where Dropout2d / Dropout were.
    swap = {"Dropout2d": "Uout", "Dropout": "Uout"}
    for a, b in zip([*uout.features, uout.classifier], [*bernoulli.features, bernoulli.classifier]):
        assert layer_types(a) == [swap.get(name, name) for name in layer_types(b)]
    conv_uout = [m for m in uout.features.modules() if isinstance(m, Uout)]
    [head_uout] = [m for m in uout.classifier.modules() if isinstance(m, Uout)]
    assert all(m.channelwise and m.beta == P_CONV for m in conv_uout) and len(conv_uout) == len(convs(uout))
    assert not head_uout.channelwise and head_uout.beta == P_FC
    assert count_parameters(uout) == count_parameters(bernoulli)


def test_dropout_kind_is_normalised_away_without_dropout():
    from study.vocabulary.factors import normalise_factors
    assert normalise_factors({"bn": "pre_act", "dropout": "none", "dropout_kind": "uout"})["dropout_kind"] == "bernoulli"
    assert normalise_factors({"bn": "pre_act", "dropout": "fc", "dropout_kind": "uout"})["dropout_kind"] == "uout"
    with pytest.raises(ValueError, match="dropout_kind.*'gaussian'"):
        ModelConfig(dropout="fc", dropout_kind="gaussian")
