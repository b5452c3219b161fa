"""Variance shift, BN re-estimation and calibration, against what theory says they must be (no dataset)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from study.training.mechanism import BNInputMoments, bn_layers, calibration, reestimate_bn, summarise_shift, variance_shift
from study.training.models import Uout

CHANNELS, BATCH, BATCHES, EVAL = 64, 1000, 20, 20000
N_TRAIN = BATCH * BATCHES


def trained(net: nn.Sequential, seed: int = 0) -> nn.Sequential:
    """BN's running statistics learnt in train mode on unit-variance Gaussian batches (an exact average)."""
    torch.manual_seed(seed)
    for layer in bn_layers(net):
        layer.momentum = None
    net.train()
    with torch.no_grad():
        for _ in range(BATCHES):
            net(torch.randn(BATCH, CHANNELS))
    return net


def tolerance(train_var: float, train_fourth: float) -> float:
    """Four standard errors of a layer's shift (a mean over CHANNELS channels), plus the upward bias of
    max(r, 1/r) near 1: the relative errors of the running variance (from the training batches) and of
    the real one (eval-mode input, unit Gaussian: fourth moment 3)."""
    relative = math.sqrt((train_fourth - train_var**2) / N_TRAIN / train_var**2 + 2 / EVAL)
    return 4 * relative / math.sqrt(CHANNELS) + relative


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_dropout_before_bn_shifts_the_variance_by_one_over_the_keep_rate(p):
    q = 1 - p
    net = trained(nn.Sequential(nn.Dropout(p), nn.BatchNorm1d(CHANNELS)))
    [shift] = variance_shift(net, torch.randn(EVAL, CHANNELS))
    # Inverted dropout y = x m / q: E[y^2] = 1/q, E[y^4] = 3/q^3.
    assert shift == pytest.approx(1 / q, abs=tolerance(1 / q, 3 / q**3))


@pytest.mark.parametrize("beta", [0.3, 0.6, 1.0])
def test_uout_before_bn_shifts_it_by_one_plus_beta_squared_over_three(beta):
    net = trained(nn.Sequential(Uout(beta), nn.BatchNorm1d(CHANNELS)))
    [shift] = variance_shift(net, torch.randn(EVAL, CHANNELS))
    # y = x (1 + r), r ~ U(-beta, beta): E[y^2] = 1 + beta^2/3, E[y^4] = 3 (1 + 2 beta^2 + beta^4/5).
    second, fourth = 1 + beta**2 / 3, 3 * (1 + 2 * beta**2 + beta**4 / 5)
    assert shift == pytest.approx(second, abs=tolerance(second, fourth))
    assert shift < 1 / (1 - 0.5)  # far below Dropout(0.5)'s 2


@pytest.mark.parametrize("net", [
    nn.Sequential(nn.BatchNorm1d(CHANNELS)),  # no Dropout
    nn.Sequential(nn.BatchNorm1d(CHANNELS), nn.Dropout(0.5)),  # Dropout after the BN
], ids=["no dropout", "dropout after bn"])
def test_no_dropout_before_bn_means_no_shift(net):
    [shift] = variance_shift(trained(net), torch.randn(EVAL, CHANNELS))
    assert shift == pytest.approx(1.0, abs=tolerance(1.0, 3.0))


def test_reestimation_removes_the_shift_and_changes_no_weight_or_mode():
    net = trained(nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(CHANNELS)))
    bn = bn_layers(net)[0]
    bn.momentum = 0.1
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    weights = {name: value.clone() for name, value in net.named_parameters()}
    net.train()
    images = torch.randn(EVAL, CHANNELS)
    [before] = variance_shift(net, images)
    reestimate_bn(net, images)
    [after] = variance_shift(net, images)
    assert before == pytest.approx(2.0, abs=tolerance(2.0, 24.0))
    # Back to no shift: BN averaged the variances of Dropout-free batches of these images.
    assert after == pytest.approx(1.0, abs=tolerance(1.0, 3.0))
    assert all(torch.equal(value, weights[name]) for name, value in net.named_parameters())
    assert all(module.training for module in net.modules()) and bn.momentum == 0.1


def test_variance_shift_reads_every_bn_layer_of_a_conv_net_in_order():
    from study.training.models import conv_block

    torch.manual_seed(0)
    net = nn.Sequential(conv_block(1, 8, bn="pre_act", conv_dropout=True, p_conv=0.5, order="dropout_first"),
                        conv_block(8, 8, bn="pre_act", conv_dropout=True, p_conv=0.5, order="bn_first"))
    net.train()
    with torch.no_grad():
        for _ in range(20):
            net(torch.randn(64, 1, 12, 12))
    shifts = variance_shift(net, torch.randn(256, 1, 12, 12))
    assert len(shifts) == 2 and all(shift >= 1 for shift in shifts)
    assert shifts[0] > 1.5  # Dropout2d(0.5) right before the first BN


def test_a_calibrated_predictor_has_no_calibration_error_and_an_overconfident_one_its_gap():
    generator = torch.Generator().manual_seed(0)
    n = 200_000
    confidence = 0.5 + 0.5 * torch.rand(n, generator=generator)
    probabilities = torch.stack([confidence, 1 - confidence], dim=1)
    right = torch.rand(n, generator=generator) < confidence  # right as often as it says
    labels = torch.where(right, 0, 1)
    ece, conf_wrong = calibration(probabilities, labels)
    assert ece == pytest.approx(0.0, abs=0.01)
    # The wrong ones: confidence density proportional to (1 - c) on (0.5, 1), mean 2/3.
    assert conf_wrong == pytest.approx(2 / 3, abs=0.005)
    overconfident = torch.rand(n, generator=generator) < confidence - 0.1  # right 10 points less often
    ece, _ = calibration(probabilities, torch.where(overconfident, 0, 1))
    assert ece == pytest.approx(0.1, abs=0.01)


def test_no_wrong_prediction_has_no_confidence_of_wrong_ones():
    ece, conf_wrong = calibration(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 1]))
    assert math.isnan(conf_wrong) and ece == pytest.approx(0.15)


def test_the_histogram_batch_by_batch_gives_what_one_call_gives():
    from study.training.mechanism import CalibrationBins

    generator = torch.Generator().manual_seed(1)
    probabilities = torch.softmax(3 * torch.randn(5000, 10, generator=generator), dim=1)
    labels = torch.randint(0, 10, (5000,), generator=generator)
    histogram = CalibrationBins()
    for start in range(0, 5000, 512):
        histogram.add(probabilities[start:start + 512], labels[start:start + 512])
    assert histogram.result() == pytest.approx(calibration(probabilities, labels), abs=1e-6)
    ece, conf_wrong = histogram.result()
    assert 0 < ece < 1 and 0 < conf_wrong < 1  # random labels: confident and mostly wrong


def test_moments_summed_over_batches_equal_one_pass_and_survive_a_mean_of_several_sds():
    # Per-channel means of 3 to 300 standard deviations (a BN layer's input has a mean within a few).
    torch.manual_seed(3)
    scale = torch.tensor([0.01, 1.0, 5.0])
    x = 3.0 + scale * torch.randn(30000, 3)
    net = nn.Sequential(nn.BatchNorm1d(3)).eval()
    net[0].running_var.copy_(2 * scale ** 2)  # a known shift of 2 in every channel
    with BNInputMoments(net) as moments:
        for batch in x.split(700):  # unequal last batch
            net(batch)
    [shift] = moments.variance_shift()
    assert shift == pytest.approx(2.0, rel=0.03)  # the sample variance of 30,000 draws is within 1.6%
    assert variance_shift(net, x, batch_size=30000) == pytest.approx([shift], rel=1e-4)  # float32 sums


def test_moments_of_conv_inputs_equal_the_variance_over_batch_and_positions():
    torch.manual_seed(4)
    x = 3.0 + 2.0 * torch.randn(64, 5, 7, 7)
    net = nn.Sequential(nn.BatchNorm2d(5)).eval()
    with BNInputMoments(net) as moments:
        for batch in x.split(10):
            net(batch)
    real_var = x.transpose(0, 1).reshape(5, -1).double().var(dim=1)  # unbiased, per channel
    expected = torch.maximum(1 / real_var, real_var).mean()  # running_var is 1 (a fresh layer)
    assert moments.variance_shift() == pytest.approx([float(expected)], rel=1e-5)


def test_shift_summary_is_empty_without_bn_and_names_each_layer():
    assert summarise_shift([]) == {}
    assert summarise_shift([1.5, 1.1]) == {"var_shift_max": 1.5, "var_shift_mean": pytest.approx(1.3),
                                           "var_shift_bn0": 1.5, "var_shift_bn1": 1.1}


def test_channelwise_uout_scales_whole_channels():
    torch.manual_seed(0)
    layer = Uout(0.5, channelwise=True).train()
    x = torch.ones(64, 8, 5, 5)
    y = layer(x)
    factors = y[:, :, :1, :1]
    assert torch.equal(y, factors.expand_as(y))  # one factor per sample and channel
    assert 0.5 <= float(factors.min()) and float(factors.max()) <= 1.5 and float(factors.std()) > 0.2
    assert torch.equal(layer.eval()(x), x)


def test_a_dead_channel_has_no_shift_rather_than_none_at_all():
    # A ReLU that never fires feeds BN zeros in training and at inference: 0/0 without BN's eps.
    net = nn.Sequential(nn.BatchNorm2d(2)).eval()
    net[0].running_var.copy_(torch.tensor([2.0, 0.0]))
    x = torch.randn(100, 2, 5, 5)
    x[:, 1] = 0.0
    [shift] = variance_shift(net, x)
    real = float(x[:, 0].var())
    assert math.isfinite(shift)
    assert shift == pytest.approx((max(2 / real, real / 2) + 1) / 2, rel=1e-3)  # channel 1 counts as unshifted
