"""Where a training epoch's time goes, read off the PyTorch profiler.

The training step promises that the host never waits for the device inside an epoch:
losses and correct counts are summed on the device and read once, at its end. The
profiler checks it: it counts the reads of a tensor's value into Python
(`aten::_local_scalar_dense`, what `.item()`, `float(t)` and `bool(t)` run; on CUDA
each one waits for the GPU to finish everything queued) in one epoch, which must not
grow with the number of batches. It also gives the share of the epoch's wall time
spent inside PyTorch operators (the rest is Python between them: the time a GPU would
wait on the host) and, on CUDA, the share of it the GPU was busy with kernels.

The optimizer is SGD: AdamW's step counters are CPU tensors read with `.item()`
every step, which the profiler counts although no device waits for them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.throughput import FACTOR_CONFIGS, trial_config
from study.data.device_data import load_split
from study.training.loop import TrainingState, start_training, steps_per_epoch, train_one_epoch

HOST_READ_OP = "aten::_local_scalar_dense"
TOP_OPS = 5
US_PER_S = 1e6


@dataclass(frozen=True)
class EpochProfile:
    """One profiled training epoch (after a warm-up epoch)."""

    model: str
    factors: str
    batches: int
    host_reads: int  # reads of a tensor value into Python during the epoch
    wall_s: float  # the epoch, profiler running (its own cost included)
    in_ops_s: float  # summed self time of every operator, host side
    gpu_busy_s: float | None  # summed kernel time; None on CPU
    top_ops: tuple[tuple[str, float], ...]  # (operator, self seconds on the host), largest first

    @property
    def in_ops_share(self) -> float:
        return self.in_ops_s / self.wall_s

    @property
    def gpu_busy_share(self) -> float | None:
        return None if self.gpu_busy_s is None else self.gpu_busy_s / self.wall_s


def profile_epoch(state: TrainingState, split, model: str = "", factors: str = "") -> EpochProfile:
    """Profile one call of `train_one_epoch(state, split)`."""
    cuda = state.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        train_one_epoch(state, split)
        if cuda:
            torch.cuda.synchronize(state.device)
        wall_s = time.perf_counter() - start
    averages = prof.key_averages()
    host_reads = sum(a.count for a in averages if a.key == HOST_READ_OP)
    by_self_time = sorted(averages, key=lambda a: a.self_cpu_time_total, reverse=True)
    gpu_busy_s = sum(a.self_device_time_total for a in averages) / US_PER_S if cuda else None
    return EpochProfile(
        model=model, factors=factors, batches=steps_per_epoch(split.n_train, state.cfg.data.batch_size), host_reads=host_reads, wall_s=wall_s,
        in_ops_s=sum(a.self_cpu_time_total for a in averages) / US_PER_S, gpu_busy_s=gpu_busy_s,
        top_ops=tuple((a.key, a.self_cpu_time_total / US_PER_S) for a in by_self_time[:TOP_OPS]),
    )


def run(data_dir: str | None, device: str, models: list[str], images: dict[str, int | None], batch_size: int,
        val_size: int = 6000) -> list[EpochProfile]:
    """Profile an epoch of each model with the throughput benchmark's fastest and slowest factors."""
    rows = []
    for model in models:
        for factors in FACTOR_CONFIGS:
            cfg = trial_config(model, factors, batch_size, images[model], device, False, data_dir, val_size)
            split = load_split(cfg.data, torch.device(device))
            state = start_training(cfg, steps_per_epoch(split.n_train, batch_size), torch.device(device))
            train_one_epoch(state, split)  # warm-up: allocator, oneDNN/cuDNN plans
            row = profile_epoch(state, split, model, factors)
            rows.append(row)
            print(f"  {model:6s} {factors:7s} {row.batches} batches, {row.host_reads} host reads, "
                  f"{row.in_ops_share:.0%} of the epoch in operators", flush=True)
    return rows
