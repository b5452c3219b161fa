"""The machine's attainable rate, and how much of it a training step uses.

The limit is a large square matrix product in the precision at hand, timed on the
device and threads the benchmark runs with: what this machine can do when nothing
but arithmetic is asked of it. A model's training cost is counted by
`torch.utils.flop_counter` on one forward and backward pass of a real batch, so its
share of the limit is its FLOP rate (training images per second times FLOPs per
image) divided by the limit. The counter counts convolutions and matrix products,
not BN, activations, pooling or the optimizer: the share is of the work a matmul
unit could do, which is what the limit measures.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from study.training.models import build_model
from study.training.numerics import native_bf16
from study.vocabulary.config import ModelConfig

MATMUL_SIZE = 2048
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(precision: str, device: torch.device, size: int = MATMUL_SIZE, seconds: float = 0.5) -> float:
    """GFLOP/s of a `size` x `size` matrix product in `precision` ("fp32" or "bf16") on `device`.

    Repeats the product for about `seconds` after one warm-up product. An emulated
    precision (bf16 on a CPU without bf16 instructions, about 1 GFLOP/s) is timed on a
    512 x 512 product: one of 2048 would take a quarter of a minute.
    """
    if precision == "bf16" and not native_bf16(device):
        size = min(size, 512)
    a = torch.randn(size, size, device=device).to(DTYPES[precision])
    b = torch.randn(size, size, device=device).to(DTYPES[precision])
    a @ b  # warm-up: kernel selection, allocation
    _sync(device)
    count, start = 0, time.perf_counter()
    while count == 0 or time.perf_counter() - start < seconds:
        a @ b
        count += 1
        if count % 8 == 0 or device.type != "cuda":
            _sync(device)
    _sync(device)
    return 2 * size**3 * count / (time.perf_counter() - start) / 1e9


def training_flops_per_image(model_cfg: ModelConfig, batch_size: int = 32) -> float:
    """FLOPs of one training image (forward and backward) of `model_cfg`'s network, on the CPU in fp32."""
    model = build_model(model_cfg)
    x = torch.randn(batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (batch_size,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch_size


def precision_of(numerics_label: str) -> str:
    """'bf16+channels_last' -> 'bf16': the precision whose limit a training's share is of."""
    return numerics_label.partition("+")[0]
