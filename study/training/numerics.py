"""How a trial computes: the precision (fp32, or bf16 autocast) and the memory layout (channels_last or not).

`precision` is a study's fixed setting (`TrialConfig.precision`):

- ``fp32``: float32, the contiguous layout on the CPU (channels_last on CUDA);
- ``bf16``: bf16 autocast for convolutions and matrix products, channels_last;
- ``auto``: on CUDA, bf16 with channels_last where the GPU supports bf16. On the CPU,
  chosen by measurement: a short probe at the worker's first training of a model
  times a few training steps of each candidate, interleaved (fp32 contiguous, fp32
  channels_last, and where the processor has native bf16 instructions, bf16 both
  ways), and keeps the fastest; the choice is cached per worker process for that
  model, BN or not and batch size. Without native bf16 (AVX2-only processors, say) autocast emulates it
  and was 5-10x slower here, so it is never a candidate there.

The numbers a trial reports do not depend on the layout; bf16 changes them within
its precision (the accuracy benchmark compares the two).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from study.data.device_data import normalize
from study.vocabulary.machine import cpu_has_bf16
from study.training.models import build_model
from study.vocabulary.config import TrialConfig

PROBE_ROUNDS = 5  # timed training steps per candidate, after 2 warm-up steps
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
    return cpu_has_bf16()


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
        seconds = probe_step_seconds(cfg, options, timer)
        _CHOSEN[key] = options[seconds.index(min(seconds))]
    return _CHOSEN[key]


def probe_step_seconds(cfg: TrialConfig, options: list[Numerics], timer=time.perf_counter,
                       rounds: int = PROBE_ROUNDS) -> list[float]:
    """Each candidate's fastest training step of `cfg`'s model over `rounds` rounds, where a round times one
    step of every candidate in turn (synthetic images; the RNG left as it was).

    Why interleaved and the fastest: on a machine that runs several trials, another process's load comes
    and goes (its start, its data, its own probe). Timed one candidate after another, a burst falls on one
    candidate and hands the choice to another; it happened in a study here, where workers of the same
    model chose differently. Interleaved, a burst spreads over all candidates, and load only ever adds
    time, so the fastest step of each is the one that load missed."""
    with torch.random.fork_rng(devices=[]):
        steps = []
        for numerics in options:
            torch.manual_seed(0)  # every candidate from the same weights and batch
            steps.append(_training_step(cfg, numerics))
        fastest = [math.inf] * len(steps)
        for _ in range(rounds):
            for i, (numerics, step) in enumerate(zip(options, steps)):
                start = timer()
                step()
                _synchronize(numerics.device)
                fastest[i] = min(fastest[i], timer() - start)
    return fastest


def step_seconds(cfg: TrialConfig, numerics: Numerics, timer=time.perf_counter, steps: int = 5,
                 compile: bool = False) -> float:
    """Mean seconds per training step of `cfg`'s model with `numerics` over `steps` steps, on synthetic
    images (the RNG left as it was); `compile` runs the model through `torch.compile`, as
    `TrialConfig.compile` does. The precision benchmark's measure, on a machine it has to itself."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        step = _training_step(cfg, numerics, compile)
        start = timer()
        for _ in range(steps):
            step()
        _synchronize(numerics.device)
        return (timer() - start) / steps


def _training_step(cfg: TrialConfig, numerics: Numerics, compile: bool = False):
    """A function that runs one SGD step of a fresh `cfg` model on one synthetic batch, warmed up."""
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
    _synchronize(numerics.device)
    return step


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
