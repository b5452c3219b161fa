"""How a trial computes: the precision (fp32, or bf16 autocast) and the memory layout (channels_last or not).

`precision` is a study's fixed setting (`TrialConfig.precision`):

- ``fp32``: float32, the contiguous layout on the CPU (channels_last on CUDA);
- ``bf16``: bf16 autocast for convolutions and matrix products, channels_last;
- ``auto``: on CUDA, bf16 with channels_last where the GPU supports bf16. On the CPU,
  chosen by measurement: a short probe at the worker's first training of a model
  times a few training steps of each candidate (fp32 contiguous, fp32 channels_last,
  and where the processor has native bf16 instructions, bf16 both ways) and keeps the
  fastest; the choice is cached per worker process for that model, BN or not and
  batch size. Without native bf16 (AVX2-only processors, say) autocast emulates it
  and was 5-10x slower here, so it is never a candidate there.

The numbers a trial reports do not depend on the layout; bf16 changes them within
its precision (the accuracy benchmark compares the two).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from study.data.device_data import normalize
from study.training.models import build_model
from study.vocabulary.config import TrialConfig

PROBE_STEPS = 4  # timed training steps per candidate, after 2 warm-up steps
_CHOSEN: dict[tuple, "Numerics"] = {}  # per worker process: (device, model, bn, batch, threads) -> choice


@dataclass(frozen=True)
class Numerics:
    device: torch.device
    precision: str  # "fp32" or "bf16"
    channels_last: bool

    @property
    def label(self) -> str:
        """What trials.csv and checkpoints record: 'fp32', 'fp32+channels_last', 'bf16+channels_last', ..."""
        return self.precision + ("+channels_last" if self.channels_last else "")

    @classmethod
    def from_label(cls, label: str, device: torch.device) -> "Numerics":
        precision, _, layout = label.partition("+")
        return cls(device, precision, layout == "channels_last")

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 images [B,1,28,28] -> the float32 input the model takes, in its layout."""
        x = normalize(x_uint8)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 in hardware (a CPU's avx512_bf16 or amx_bf16 instructions)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no way to tell, so no bf16 on the CPU
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def candidates(precision: str, device: torch.device) -> list[Numerics]:
    if precision == "fp32":
        return [Numerics(device, "fp32", device.type == "cuda")]
    if precision == "bf16":
        return [Numerics(device, "bf16", True)]
    if device.type == "cuda":
        return [Numerics(device, "bf16" if native_bf16(device) else "fp32", True)]
    found = [Numerics(device, "fp32", False), Numerics(device, "fp32", True)]
    if native_bf16(device):
        found += [Numerics(device, "bf16", True), Numerics(device, "bf16", False)]
    return found


def choose_numerics(cfg: TrialConfig, device: torch.device, timer=time.perf_counter) -> Numerics:
    """The numerics of `cfg.precision` on `device`: fixed for fp32 and bf16, the fastest candidate for auto."""
    options = candidates(cfg.precision, device)
    if len(options) == 1:
        return options[0]
    key = (str(device), cfg.model.model, cfg.model.bn != "none", cfg.data.batch_size, torch.get_num_threads())
    if key not in _CHOSEN:
        _CHOSEN[key] = min(options, key=lambda numerics: step_seconds(cfg, numerics, timer))
    return _CHOSEN[key]


def step_seconds(cfg: TrialConfig, numerics: Numerics, timer=time.perf_counter, steps: int = PROBE_STEPS,
                 compile: bool = False) -> float:
    """Seconds per training step of `cfg`'s model with `numerics`, on synthetic images (the RNG left as it
    was); `compile` runs the model through `torch.compile`, as `TrialConfig.compile` does."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = numerics.place(build_model(cfg.model).to(numerics.device))
        forward = torch.compile(model) if compile else model
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        x = torch.randint(0, 256, (cfg.data.batch_size, 1, 28, 28), dtype=torch.uint8, device=numerics.device)
        y = torch.randint(0, 10, (cfg.data.batch_size,), device=numerics.device)

        def step() -> None:
            with numerics.autocast():
                loss = F.cross_entropy(forward(numerics.prepare(x)).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        for _ in range(2):  # warm-up: the first steps allocate, pick kernels and compile
            step()
        if numerics.device.type == "cuda":
            torch.cuda.synchronize(numerics.device)
        start = timer()
        for _ in range(steps):
            step()
        if numerics.device.type == "cuda":
            torch.cuda.synchronize(numerics.device)
        return (timer() - start) / steps
