"""Why a placement works or fails: variance shift, BN re-estimation and calibration.

Variance shift (Li, Chen, Hu & Yang, CVPR 2019). Dropout before a BatchNorm layer
makes the variance BN sees in training differ from the one it sees at inference: for
inverted Dropout with keep rate q on unit-variance input, 1/q in training and 1 at
test. BN's running variance is learnt in training, so at inference it is wrong by
that factor. Per BN layer and channel the shift is ``max(running_var / real_var,
real_var / running_var)``, where ``real_var`` is the variance of the layer's input
with the whole network in eval mode on training images, each with BN's eps added (BN
divides by ``sqrt(var + eps)``, and a dead channel, no variance either way, is then
unshifted rather than 0/0); a layer's shift is the mean over its channels. 1 means no shift.

`reestimate_bn` is the fix that needs no retraining: recompute every BN layer's
running statistics on training images with Dropout off (eval-mode Dropout,
train-mode BN, an exact average instead of a moving one).

`calibration` (and `CalibrationBins`, batch by batch on the device) gives the expected
calibration error (equal-width confidence bins) and the mean confidence of wrong
predictions.

All three read the model without changing its weights, and put every module back
in the mode it was in.
"""

from __future__ import annotations

from contextlib import contextmanager
from copy import deepcopy
from typing import Iterator

import torch
from torch import nn

from study.vocabulary.factors import var_shift_layer

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)
ECE_BINS = 15


def bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers, in the order of `model.modules()` (their position names them)."""
    return [module for module in model.modules() if isinstance(module, BN_TYPES)]


@contextmanager
def _modes(model: nn.Module, bn_training: bool) -> Iterator[None]:
    """Everything in eval mode, BN layers in `bn_training`; each module's mode restored afterwards."""
    before = {module: module.training for module in model.modules()}
    model.eval()
    for layer in bn_layers(model):
        layer.train(bn_training)
    try:
        yield
    finally:
        for module, training in before.items():
            module.train(training)


def _batches(images: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size]


class BNInputMoments:
    """While open (a context manager), every BN layer's input summed per channel over all the batches the
    model sees, on the device: the count, the sum and the sum of squares, with no host read until
    `variance_shift`.

    Positions are summed in float32, per image and channel (contiguous reductions: on CPU several
    times faster than `torch.var_mean` over batch and positions, and no centred copy of the input,
    which costs as much again), images and batches in float64. The variance is then
    ``(sum of squares - sum**2 / n) / (n - 1)``, whose relative error is about 1e-7 x sqrt(positions)
    x (1 + mean**2 / variance): far below the shifts measured for a BN layer's input, whose mean is
    within a few standard deviations of 0 (a bias-free conv's output, or a ReLU's).
    """

    def __init__(self, model: nn.Module):
        self.layers = bn_layers(model)
        self._sums: list[tuple | None] = [None] * len(self.layers)  # (count, sum, sum of squares) per channel
        self._hooks: list = []

    def __enter__(self) -> "BNInputMoments":
        self._hooks = [layer.register_forward_hook(self._recorder(i)) for i, layer in enumerate(self.layers)]
        return self

    def __exit__(self, *exc) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def _recorder(self, index: int):
        def record(_module, inputs, _output):
            x = inputs[0].detach().float()  # [B, C] or [B, C, H, W]
            positions = tuple(range(2, x.ndim))
            if positions:
                first, second = x.sum(positions), torch.linalg.vector_norm(x, dim=positions).square()
            else:
                first, second = x, x.square()
            batch = (x.numel() // x.shape[1], first.double().sum(0), second.double().sum(0))
            previous = self._sums[index]
            self._sums[index] = batch if previous is None else tuple(a + b for a, b in zip(previous, batch))
        return record

    def variance_shift(self) -> list[float]:
        """Each layer's shift, ``mean over channels of max(running_var / real_var, real_var / running_var)``,
        with real_var the unbiased variance of the inputs seen; NaN for a layer that saw none. One host read."""
        shifts = []
        for layer, sums in zip(self.layers, self._sums):
            if sums is None:
                shifts.append(torch.tensor(float("nan"), dtype=torch.float64, device=layer.running_var.device))
                continue
            count, first, second = sums
            real_var = (second - first ** 2 / count) / max(count - 1, 1)  # unbiased, as BN's running_var
            # BN divides by sqrt(var + eps), so eps joins both sides: a dead channel (no variance in
            # training or at inference, e.g. a ReLU that never fires) has ratio 1, not 0/0; elsewhere
            # eps (1e-5) is far below the variances compared.
            ratio = (layer.running_var.double() + layer.eps) / (real_var.clamp(min=0) + layer.eps)
            shifts.append(torch.maximum(ratio, 1 / ratio).mean())
        return torch.stack(shifts).tolist() if shifts else []


def summarise_shift(shifts: list[float]) -> dict[str, float]:
    """var_shift_max, var_shift_mean and var_shift_bn0, var_shift_bn1, ... of a model's per-layer shifts;
    none of them for a model without BN (empty in the tables, not zero)."""
    if not shifts:
        return {}
    return {"var_shift_max": max(shifts), "var_shift_mean": sum(shifts) / len(shifts),
            **{var_shift_layer(i): shift for i, shift in enumerate(shifts)}}


@torch.no_grad()
def variance_shift(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> list[float]:
    """Each BN layer's variance shift on `images` (float, the model's input), in `bn_layers` order.

    One forward pass over `images` in eval mode, with `BNInputMoments` recording each
    BN layer's input; no gradient, no change to the model.
    """
    with _modes(model, bn_training=False), BNInputMoments(model) as moments:
        for batch in _batches(images, batch_size):
            model(batch)
    return moments.variance_shift()


@torch.no_grad()
def reestimate_bn(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> None:
    """Recompute every BN layer's running mean and variance on `images`, with Dropout off.

    Momentum None makes BN keep an exact cumulative average over the batches, not a
    moving one; each layer's momentum is put back afterwards. Weights are untouched.
    """
    layers = bn_layers(model)
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
    try:
        with _modes(model, bn_training=True):
            for batch in _batches(images, batch_size):
                model(batch)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def reestimated_copy(model: nn.Module, images: torch.Tensor, batch_size: int) -> nn.Module:
    """A copy of `model` whose BN statistics `reestimate_bn` recomputed on `images`; `model` is untouched
    (its running statistics are what a checkpoint and every other metric keep)."""
    copy = deepcopy(model)
    reestimate_bn(copy, images, batch_size)
    return copy


class CalibrationBins:
    """A histogram of top-class confidence, accumulated on the device batch by batch (no host read per
    batch): per bin the count, the summed confidence and the number right, and the wrong predictions'
    count and summed confidence. Bins are equal-width over [0, 1], bin i holding (i/bins, (i+1)/bins]."""

    def __init__(self, device: torch.device | str = "cpu", bins: int = ECE_BINS):
        self._inner_edges = torch.linspace(0, 1, bins + 1, device=device)[1:-1]
        self._bins = torch.zeros(3, bins, device=device)  # count, summed confidence, number right
        self._wrong = torch.zeros(2, device=device)  # count, summed confidence

    def add(self, probabilities: torch.Tensor, labels: torch.Tensor) -> None:
        confidence, predicted = probabilities.float().max(dim=1)
        right = (predicted == labels).float()
        which = torch.bucketize(confidence, self._inner_edges)
        self._bins.index_add_(1, which, torch.stack([torch.ones_like(confidence), confidence, right]))
        self._wrong += torch.stack([(1 - right).sum(), ((1 - right) * confidence).sum()])

    def result(self) -> tuple[float, float]:
        """(expected calibration error, mean confidence of the wrong predictions), with one host read.

        ECE is the sample-weighted mean over bins of |accuracy - mean confidence|; the
        second is NaN when no prediction is wrong.
        """
        values = torch.cat([self._bins.flatten(), self._wrong]).tolist()
        bins = len(self._inner_edges) + 1
        counts, confidence, right = values[:bins], values[bins:2 * bins], values[2 * bins:3 * bins]
        n_wrong, wrong_confidence = values[3 * bins:]
        total = sum(counts)
        ece = sum(abs(r - c) for r, c in zip(right, confidence)) / total if total else float("nan")
        return ece, (wrong_confidence / n_wrong if n_wrong else float("nan"))


def calibration(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> tuple[float, float]:
    """(expected calibration error, mean confidence of the wrong predictions) of class probabilities."""
    histogram = CalibrationBins(probabilities.device, bins)
    histogram.add(probabilities, labels)
    return histogram.result()
