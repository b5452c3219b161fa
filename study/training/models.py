"""The CNNs of the study: three sizes, with BatchNorm and Dropout placed by arguments.

nn.Modules only (no training, no Ray). `build_model(cfg)` turns a `ModelConfig`
into a network; the placement of BatchNorm and Dropout is a constructor argument of
`ConvNet`, never a flag read inside `forward`, so every variant is a plain static
stack of layers (friendly to `torch.compile` and to `channels_last`).

Layer order, as docs/concepts.md defines it. Every conv layer is one
block; a stage is one or more blocks, and the stage's max-pool closes its last block:

    bn        order           conv block (Dropout2d only when dropout is conv/all)
    none      (either)        conv -> ReLU -> [Dropout2d] -> [MaxPool]
    pre_act   bn_first        conv -> BN -> ReLU -> [Dropout2d] -> [MaxPool]
    post_act  bn_first        conv -> ReLU -> BN -> [Dropout2d] -> [MaxPool]
    pre_act   dropout_first   conv -> [Dropout2d] -> BN -> ReLU -> [MaxPool]
    post_act  dropout_first   conv -> ReLU -> [Dropout2d] -> BN -> [MaxPool]

    classifier: Flatten -> Linear -> ReLU -> [Dropout] (dropout fc/all) -> Linear(10)

`dropout_kind` picks the Dropout layer: `bernoulli` is PyTorch's inverted Dropout2d
(conv blocks) and Dropout (classifier); `uout` puts `Uout` in the same places, with
the rate as its beta. Uout's noise is drawn per sample and channel in the conv blocks,
as Dropout2d's mask is, and per unit in the classifier, so the two kinds differ in the
noise's distribution only, not in its granularity.

BatchNorm sits in the conv blocks only; the classifier never has BN. With
`bn_first` a block's Dropout2d still reaches the *next* block's BN through a conv,
so only Dropout after the last BN (the classifier's) is free of variance shift.

Weights use PyTorch's default initialisation (Kaiming-uniform for Conv2d/Linear,
BN weight 1 and bias 0): the study compares placements, not init schemes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from study.vocabulary.config import ModelConfig
from study.vocabulary.factors import (
    BN_PLACEMENTS,
    CONV_DROPOUT,
    DROPOUT_KINDS,
    DROPOUT_PLACEMENTS,
    FC_DROPOUT,
    MODELS,
    NUM_CLASSES,
    ORDERS,
)

IMAGE_SIZE = 28  # FashionMNIST images are 1 x 28 x 28
IN_CHANNELS = 1
LENET5_PARAMS = 61_706  # classic LeNet-5 (conv 6/16, fc 120/84, 32x32 input); "small" must be smaller


@dataclass(frozen=True)
class SizeSpec:
    """Widths of one network size.

    `stages[i]` lists the output channels of the conv layers of stage i; each stage
    ends with a 2x2 max-pool (ceil mode, so 28 -> 14 -> 7 -> 4 keeps every pixel).
    """

    stages: tuple[tuple[int, ...], ...]
    fc_width: int
    kernel_size: int = 3

    def widened(self, multiplier: float) -> "SizeSpec":
        """This size with every conv layer's channels times `multiplier` (rounded, at least 1); the
        classifier's width stays."""
        if multiplier == 1.0:
            return self
        stages = tuple(tuple(max(1, round(c * multiplier)) for c in stage) for stage in self.stages)
        return SizeSpec(stages, self.fc_width, self.kernel_size)


SIZES: dict[str, SizeSpec] = {
    # Smaller than LeNet-5: ~27k parameters, most in the first Linear (16*7*7 -> 32).
    "small": SizeSpec(stages=((8,), (16,)), fc_width=32),
    # The post's "medium" role: bigger, enough capacity to overfit FashionMNIST fast.
    # Kept to two convs so that many trials train in reasonable time on a CPU.
    "medium": SizeSpec(stages=((16,), (32,)), fc_width=128),
    # More filters and layers: two convs in each of the first two stages, a third stage.
    "large": SizeSpec(stages=((32, 32), (64, 64), (128,)), fc_width=256),
}
assert tuple(SIZES) == MODELS, "every model size in study.vocabulary.factors needs a SizeSpec"


def _check_choice(name: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} has invalid value {value!r}: expected one of {', '.join(allowed)}")


class Uout(nn.Module):
    """Variance-stable Dropout (Li et al., CVPR 2019): ``x + x * r`` with ``r ~ U(-beta, beta)`` in
    training, the identity at inference. Its train/test variance ratio on unit-variance input is
    ``1 + beta**2 / 3``, against ``1 / (1 - p)`` for inverted Dropout(p).

    `channelwise` draws one r per sample and channel of a [B, C, H, W] input (as Dropout2d draws
    its mask); otherwise one per element.
    """

    def __init__(self, beta: float, channelwise: bool = False):
        super().__init__()
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta <= 1.0:
            raise ValueError(f"Uout beta has invalid value {beta!r}: expected a number in [0, 1]")
        self.beta = float(beta)
        self.channelwise = channelwise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.beta == 0.0:
            return x
        shape = (*x.shape[:2], *([1] * (x.ndim - 2))) if self.channelwise else x.shape
        noise = torch.empty(shape, dtype=x.dtype, device=x.device).uniform_(-self.beta, self.beta)
        return x + x * noise

    def extra_repr(self) -> str:
        return f"beta={self.beta}" + (", channelwise" if self.channelwise else "")


def dropout_layer(kind: str, rate: float, conv: bool) -> nn.Module:
    """The Dropout of `kind` at `rate`: for a conv block (per channel) or for the classifier (per unit)."""
    _check_choice("dropout_kind", kind, DROPOUT_KINDS)
    if kind == "uout":
        return Uout(rate, channelwise=conv)
    return nn.Dropout2d(rate) if conv else nn.Dropout(rate)


def _check_rate(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} has invalid value {value!r}: expected a drop probability in [0, 1)")


def conv_block(
    in_channels: int,
    out_channels: int,
    *,
    bn: str = "none",
    conv_dropout: bool = False,
    p_conv: float = 0.0,
    order: str = "bn_first",
    dropout_kind: str = "bernoulli",
    pool: bool = False,
    kernel_size: int = 3,
) -> nn.Sequential:
    """One conv layer with its BN, ReLU, Dropout2d and pool, in the order of the factors.

    Shapes: [B, in_channels, H, W] -> [B, out_channels, H, W], or
    [B, out_channels, ceil(H/2), ceil(W/2)] when `pool` (padding keeps H, W).
    """
    _check_choice("bn", bn, BN_PLACEMENTS)
    _check_choice("order", order, ORDERS)
    _check_rate("p_conv", p_conv)
    # A conv followed by BN needs no bias: BN subtracts the mean and adds its own shift.
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=(bn == "none"))
    layers: list[nn.Module] = [conv]
    drop = [dropout_layer(dropout_kind, p_conv, conv=True)] if conv_dropout else []
    if bn == "none":
        # `order` cannot matter without BN (study.vocabulary.factors normalises it to bn_first).
        layers += [nn.ReLU(inplace=True), *drop]
    elif order == "bn_first":
        # BN (+ activation) first; Dropout2d sees normalised activations.
        if bn == "pre_act":
            layers += [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), *drop]
        else:
            layers += [nn.ReLU(inplace=True), nn.BatchNorm2d(out_channels), *drop]
    else:
        # dropout_first: Dropout2d right before BN, so BN's batch statistics in training
        # include the dropout noise (the variance shift of Li et al., 2019).
        if bn == "pre_act":
            layers += [*drop, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
        else:
            layers += [nn.ReLU(inplace=True), *drop, nn.BatchNorm2d(out_channels)]
    if pool:
        # Last in the block. Dropout2d zeroes whole channels and scales by 1/(1-p) > 0, and
        # Uout scales whole channels by 1 + r > 0: both commute with max-pooling, so
        # dropping before pooling changes nothing.
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


class ConvNet(nn.Module):
    """A plain CNN: `features` (conv blocks) then `classifier` (two Linear layers).

    Input [B, 1, 28, 28] float, output logits [B, 10]. BatchNorm and Dropout are
    placed once, here, from the arguments (see the module docstring for the order).
    Rates of Dropout layers that `dropout` leaves out are ignored.
    """

    def __init__(
        self,
        stages: tuple[tuple[int, ...], ...],
        fc_width: int,
        *,
        bn: str = "none",
        dropout: str = "none",
        order: str = "bn_first",
        dropout_kind: str = "bernoulli",
        p_conv: float = 0.0,
        p_fc: float = 0.0,
        kernel_size: int = 3,
        in_channels: int = IN_CHANNELS,
        image_size: int = IMAGE_SIZE,
        num_classes: int = NUM_CLASSES,
    ):
        super().__init__()
        _check_choice("bn", bn, BN_PLACEMENTS)
        _check_choice("dropout", dropout, DROPOUT_PLACEMENTS)
        _check_choice("order", order, ORDERS)
        _check_choice("dropout_kind", dropout_kind, DROPOUT_KINDS)
        _check_rate("p_conv", p_conv)
        _check_rate("p_fc", p_fc)
        _check_shape(stages, fc_width)
        self.bn, self.dropout, self.order, self.dropout_kind = bn, dropout, order, dropout_kind
        conv_dropout = dropout in CONV_DROPOUT
        fc_dropout = dropout in FC_DROPOUT

        blocks: list[nn.Module] = []
        channels, size = in_channels, image_size
        for stage in stages:
            for i, out_channels in enumerate(stage):
                last = i == len(stage) - 1
                blocks.append(
                    conv_block(
                        channels,
                        out_channels,
                        bn=bn,
                        conv_dropout=conv_dropout,
                        p_conv=p_conv,
                        order=order,
                        dropout_kind=dropout_kind,
                        pool=last,
                        kernel_size=kernel_size,
                    )
                )
                channels = out_channels
            size = -(-size // 2)  # ceil(size / 2): one 2x2 pool (ceil mode) per stage
        self.features = nn.Sequential(*blocks)  # [B, 1, 28, 28] -> [B, C, size, size]
        self.flat_features = channels * size * size

        head: list[nn.Module] = [nn.Flatten(), nn.Linear(self.flat_features, fc_width), nn.ReLU(inplace=True)]
        if fc_dropout:
            head.append(dropout_layer(dropout_kind, p_fc, conv=False))
        head.append(nn.Linear(fc_width, num_classes))
        self.classifier = nn.Sequential(*head)  # [B, C, size, size] -> [B, num_classes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, 1, 28, 28] -> features [B, C, s, s] -> logits [B, 10]
        return self.classifier(self.features(x))


def _check_shape(stages: tuple[tuple[int, ...], ...], fc_width: int) -> None:
    if not stages or any(not stage for stage in stages):
        raise ValueError(f"stages has invalid value {stages!r}: expected one or more non-empty stages")
    if any(not isinstance(c, int) or c < 1 for stage in stages for c in stage):
        raise ValueError(f"stages has invalid value {stages!r}: channel counts must be positive integers")
    if not isinstance(fc_width, int) or fc_width < 1:
        raise ValueError(f"fc_width has invalid value {fc_width!r}: expected a positive integer")


def build_model(cfg: ModelConfig) -> ConvNet:
    """The network a `ModelConfig` describes (its size and BN/Dropout placement)."""
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"build_model expects a ModelConfig, got {type(cfg).__name__}: {cfg!r}")
    spec = SIZES[cfg.model].widened(cfg.width_multiplier)  # ModelConfig already checked both
    return ConvNet(
        spec.stages,
        spec.fc_width,
        bn=cfg.bn,
        dropout=cfg.dropout,
        order=cfg.order,
        dropout_kind=cfg.dropout_kind,
        p_conv=cfg.p_conv,
        p_fc=cfg.p_fc,
        kernel_size=spec.kernel_size,
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_types(module: nn.Module) -> list[str]:
    """Class names of a module's direct children, in order, e.g. of one conv block:
    ``['Conv2d', 'BatchNorm2d', 'ReLU', 'Dropout2d', 'MaxPool2d']``."""
    return [type(m).__name__ for m in module.children()]


def _label(m: nn.Module) -> str:
    """A short human label for one layer."""
    if isinstance(m, nn.Conv2d):
        k = m.kernel_size[0]
        return f"Conv{k}x{k}({m.in_channels}->{m.out_channels}{'' if m.bias is not None else ', no bias'})"
    if isinstance(m, nn.Linear):
        return f"Linear({m.in_features}->{m.out_features})"
    if isinstance(m, (nn.Dropout, nn.Dropout2d)):
        return f"{type(m).__name__}({m.p:g})"
    if isinstance(m, Uout):
        return f"Uout({m.beta:g}{', per channel' if m.channelwise else ''})"
    if isinstance(m, nn.MaxPool2d):
        return f"MaxPool{m.kernel_size}"
    return type(m).__name__


def count_macs(model: ConvNet) -> int:
    """Multiply-accumulates of the Conv2d and Linear layers for one 1x28x28 image."""
    macs = 0

    def hook(m, inputs, output):
        nonlocal macs
        if isinstance(m, nn.Conv2d):
            # every output element needs in_channels * k * k multiply-adds
            k = m.kernel_size[0] * m.kernel_size[1]
            macs += output[0].numel() * m.in_channels // m.groups * k
        else:
            macs += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return macs


def describe_model(cfg: ModelConfig) -> str:
    """The layer sequence of the network `cfg` builds, one conv block per line, with
    the output shape of each block, e.g.::

        small: bn=pre_act dropout=all order=bn_first p_conv=0.1 p_fc=0.5 (26,722 parameters)
          block 1: Conv3x3(1->8, no bias) BatchNorm2d ReLU Dropout2d(0.1) MaxPool2 -> [B, 8, 14, 14]
          ...
          classifier: Flatten Linear(784->32) ReLU Dropout(0.5) Linear(32->10) -> [B, 10]
    """
    model = build_model(cfg).eval()
    lines = [
        f"{cfg.model}" + (f" x{cfg.width_multiplier:g}" if cfg.width_multiplier != 1.0 else "")
        + f": bn={cfg.bn} dropout={cfg.dropout} order={cfg.order} "
        + (f"dropout_kind={cfg.dropout_kind} " if cfg.dropout_kind != "bernoulli" else "")
        + f"p_conv={cfg.p_conv:g} p_fc={cfg.p_fc:g} ({count_parameters(model):,} parameters)"
    ]
    x = torch.zeros(1, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        for i, block in enumerate(model.features, start=1):
            x = block(x)
            layers = " ".join(_label(m) for m in block)
            lines.append(f"  block {i}: {layers} -> [B, {', '.join(map(str, x.shape[1:]))}]")
        x = model.classifier(x)
    layers = " ".join(_label(m) for m in model.classifier)
    lines.append(f"  classifier: {layers} -> [B, {x.shape[1]}]")
    return "\n".join(lines)


def model_summary() -> list[dict]:
    """One row per size: conv widths, classifier width, parameters and MACs per image,
    without BN/Dropout and with BN (pre_act) plus Dropout everywhere."""
    rows = []
    for name, spec in SIZES.items():
        plain = build_model(ModelConfig(model=name))
        full = build_model(ModelConfig(model=name, bn="pre_act", dropout="all", p_conv=0.1, p_fc=0.5))
        rows.append(
            dict(
                model=name,
                conv_layers=sum(len(s) for s in spec.stages),
                widths=" / ".join("-".join(map(str, s)) for s in spec.stages),
                fc_width=spec.fc_width,
                flat_features=plain.flat_features,
                params_plain=count_parameters(plain),
                params_bn_dropout=count_parameters(full),
                macs=count_macs(plain),
            )
        )
    return rows


def model_summary_table() -> str:
    """`model_summary()` as a markdown table, for the README."""
    out = [
        "| model | conv layers | channels per stage (pool after each) | classifier | "
        "params, bn=none dropout=none | params, bn + dropout=all | MACs / image |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in model_summary():
        out.append(
            f"| `{r['model']}` | {r['conv_layers']} | {r['widths']} | "
            f"{r['flat_features']}->{r['fc_width']}->{NUM_CLASSES} | "
            f"{r['params_plain']:,} | {r['params_bn_dropout']:,} | {r['macs'] / 1e6:.2f} M |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    print(model_summary_table())
    print()
    for name in MODELS:
        print(describe_model(ModelConfig(model=name, bn="pre_act", dropout="all", p_conv=0.1, p_fc=0.5)))
