"""Why a placement works or fails: variance shift, BN re-estimation and calibration.

Variance shift (Li, Chen, Hu & Yang, CVPR 2019). Dropout before a BatchNorm layer
makes the variance BN sees in training differ from the one it sees at inference: for
inverted Dropout with keep rate q on unit-variance input, 1/q in training and 1 at
test. BN's running variance is learnt in training, so at inference it is wrong by
that factor. Per BN layer and channel the shift is ``max(running_var / real_var,
real_var / running_var)``, where ``real_var`` is the variance of the layer's input
with the whole network in eval mode on training images; a layer's shift is the mean
over its channels. 1 means no shift.

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
from typing import Iterator

import torch
from torch import nn

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


@torch.no_grad()
def variance_shift(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> list[float]:
    """Each BN layer's variance shift on `images` (float, the model's input), in `bn_layers` order.

    One forward pass over `images` in eval mode, with a hook on every BN layer that
    sums its input per channel; no gradient, no change to the model.
    """
    layers = bn_layers(model)
    sums = [None] * len(layers)  # per layer: (count, sum, sum of squares) per channel

    def recorder(index: int):
        def record(_module, inputs, _output):
            x = inputs[0].detach().double()
            per_channel = x.transpose(0, 1).reshape(x.shape[1], -1)  # channels x (batch and positions)
            total = (per_channel.shape[1], per_channel.sum(1), (per_channel ** 2).sum(1))
            sums[index] = total if sums[index] is None else tuple(a + b for a, b in zip(sums[index], total))
        return record

    hooks = [layer.register_forward_hook(recorder(i)) for i, layer in enumerate(layers)]
    try:
        with _modes(model, bn_training=False):
            for batch in _batches(images, batch_size):
                model(batch)
    finally:
        for hook in hooks:
            hook.remove()
    shifts = []
    for layer, (count, total, squares) in zip(layers, sums):
        mean = total / count
        real_var = (squares / count - mean ** 2) * count / max(count - 1, 1)  # unbiased, as BN's running_var
        running_var = layer.running_var.double()
        ratio = running_var / real_var
        shifts.append(float(torch.maximum(ratio, 1 / ratio).mean()))
    return shifts


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
