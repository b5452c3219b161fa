"""Several trials on one GPU: aggregate training images per second with 1, 2, 4 and 8
concurrent trainings, each in its own process with its memory capped at its share
of the GPU, as `--gpus-per-trial 1/N` makes Ray run them.

Processes rather than Ray trials, so it also runs on a GPU machine without Ray;
each process does what a trial worker does: cap its memory (as
`study.runtime.trial_worker` does for a fractional GPU), load the split onto the
GPU, build the model, train. All start together (a barrier); the aggregate is the
images all of them trained over the span from the first start to the last finish.
Each process also reports its peak allocated memory, to set beside its cap.

On the CPU (the GPU check's dry run) each process gets one thread and no cap.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass

import torch
import torch.multiprocessing as mp

from benchmarks.common import Measured
from study.vocabulary.config import DataConfig, ModelConfig, OptimConfig, TrialConfig
from study.data.device_data import load_split
from study.training.loop import start_training, steps_per_epoch, train_one_epoch


@dataclass(frozen=True)
class SharingRow:
    trials: int
    aggregate: Measured  # images/s, all trials together
    per_trial: float  # median aggregate / trials
    cap_mb: float | None  # each trial's memory cap (None: uncapped, on the CPU)
    peak_mb: float  # the largest peak of any trial: CUDA memory allocated, or resident memory on the CPU

    def speedup(self, single: "SharingRow") -> float:
        return self.aggregate.median / single.aggregate.median


def sharing_config(model: str, batch_size: int, compile: bool, data_dir: str | None, device: str = "cuda",
                   train_size: int | None = None, val_size: int = 6000) -> TrialConfig:
    return TrialConfig(
        model=ModelConfig(model=model, bn="pre_act", dropout="fc", p_fc=0.3),
        optim=OptimConfig(lr=0.05),
        data=DataConfig(data_dir=data_dir, batch_size=batch_size, augment=True, train_size=train_size,
                        val_size=val_size),
        max_epochs=1000, device=device, compile=compile, precision="auto",  # bf16 where the GPU has it
    )


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _worker(cfg: TrialConfig, share: float, epochs: int, barrier, results) -> None:
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_per_process_memory_fraction(share, device)
    else:
        torch.set_num_threads(1)
    split = load_split(cfg.data, device)
    state = start_training(cfg, steps_per_epoch(split.n_train, cfg.data.batch_size), device)
    train_one_epoch(state, split)  # warm-up: cuDNN plans, allocator, compilation
    barrier.wait()
    start = time.time()
    for _ in range(epochs):
        train_one_epoch(state, split)
    results.put((start, time.time(), epochs * split.n_train, _peak_mb(device)))


def aggregate_throughput(cfg: TrialConfig, trials: int, epochs: int) -> tuple[float, float]:
    """(images per second of all `trials` together, the largest peak memory of any of them in MB)."""
    context = mp.get_context("spawn" if cfg.device == "cuda" else "fork")  # CUDA cannot be forked
    barrier, results = context.Barrier(trials), context.Queue()
    workers = [context.Process(target=_worker, args=(cfg, 1.0 / trials, epochs, barrier, results))
               for _ in range(trials)]
    for worker in workers:
        worker.start()
    spans = [results.get(timeout=1800) for _ in workers]
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise RuntimeError(f"a sharing worker exited with code {worker.exitcode}")
    images = sum(span[2] for span in spans)
    seconds = max(span[1] for span in spans) - min(span[0] for span in spans)
    return images / seconds, max(span[3] for span in spans)


def run(data_dir: str | None, model: str, batch_size: int, counts: list[int], epochs: int, repeats: int,
        compile: bool = False, device: str = "cuda", train_size: int | None = None,
        val_size: int = 6000) -> list[SharingRow]:
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("the GPU-sharing benchmark needs a CUDA GPU (or --device cpu for its dry run)")
    cfg = sharing_config(model, batch_size, compile, data_dir, device, train_size, val_size)
    total_mb = torch.cuda.get_device_properties(0).total_memory / 2**20 if device == "cuda" else None
    rows = []
    for trials in counts:
        runs = [aggregate_throughput(cfg, trials, epochs) for _ in range(repeats)]
        measured = Measured.of([rate for rate, _ in runs])
        cap_mb = total_mb / trials if total_mb else None
        rows.append(SharingRow(trials, measured, measured.median / trials, cap_mb, max(peak for _, peak in runs)))
        print(f"  {trials} trials on one {device.upper()}: {measured} images/s in all, peak "
              f"{rows[-1].peak_mb:,.0f} MB per trial" + (f" (cap {cap_mb:,.0f} MB)" if cap_mb else ""), flush=True)
    return rows
