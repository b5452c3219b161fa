"""One training step in each precision and layout, and compiled: what `--precision auto` chooses from.

For each model size, with and without BN, a training step of synthetic images is
timed (`study.training.numerics.step_seconds`, the mean over steps on a machine the
benchmark has to itself; `auto`'s own probe interleaves its candidates) as fp32 and
bf16 autocast, each in the contiguous and the channels_last layout, and once more as
`auto`'s choice through `torch.compile`. Each rate is also given as a share of the matmul rate of its precision, measured in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmarks.limits import matmul_gflops, precision_of, training_flops_per_image
from study.training.numerics import Numerics, candidates, step_seconds
from study.vocabulary.config import DataConfig, ModelConfig, TrialConfig

LAYOUTS = ("fp32", "fp32+channels_last", "bf16", "bf16+channels_last")


@dataclass(frozen=True)
class PrecisionRow:
    model: str
    bn: str
    threads: int
    batch_size: int
    rates: dict  # numerics label -> training images per second
    limits: dict  # precision -> the matmul rate in GFLOP/s, with the same threads
    auto: str  # the label `--precision auto` picks here: the fastest of its candidates
    compiled: float | None  # images/s of `auto` through torch.compile; None when not measured
    flops_per_image: float

    def share(self, label: str) -> float:
        """`label`'s FLOP rate as a share of the matmul rate of its precision."""
        return self.rates[label] * self.flops_per_image / 1e9 / self.limits[precision_of(label)]


def step_config(model: str, bn: str, batch_size: int) -> TrialConfig:
    """The step the throughput tables train: Dropout everywhere, SGD."""
    return TrialConfig(model=ModelConfig(model=model, bn=bn, dropout="all", p_conv=0.1, p_fc=0.3),
                       data=DataConfig(batch_size=batch_size), precision="auto")


def run(device: str, models: list[str], sizes: list[tuple[int, int]], steps: int, compiled_models: tuple = (),
        ) -> list[PrecisionRow]:
    """A row per (threads, batch size) of `sizes`, model and BN or not, on `device` (threads: CPU only); the
    models in `compiled_models` are also timed through torch.compile."""
    torch_device = torch.device(device)
    rows = []
    for threads, batch_size in sizes:
        if torch_device.type == "cpu":
            torch.set_num_threads(threads)
        limits = {precision: matmul_gflops(precision, torch_device) for precision in ("fp32", "bf16")}
        for model in models:
            for bn in ("none", "pre_act"):
                cfg = step_config(model, bn, batch_size)
                rates = {label: batch_size / step_seconds(cfg, Numerics.from_label(label, torch_device), steps=steps)
                         for label in LAYOUTS}
                auto = max((c.label for c in candidates("auto", torch_device)), key=rates.__getitem__)
                compiled = None
                if model in compiled_models:
                    seconds = step_seconds(cfg, Numerics.from_label(auto, torch_device), steps=steps, compile=True)
                    compiled = batch_size / seconds
                rows.append(PrecisionRow(model, bn, threads, batch_size, rates, limits, auto, compiled,
                                         training_flops_per_image(cfg.model)))
                print(f"  {model:6s} bn={bn:7s} {threads} threads, batch {batch_size}: "
                      + ", ".join(f"{label} {rate:,.0f}" for label, rate in rates.items())
                      + (f", {auto} compiled {compiled:,.0f}" if compiled else "") + " img/s", flush=True)
    return rows
