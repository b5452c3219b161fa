"""Several trials on one GPU: aggregate training images per second with 1, 2, 4 and 8
concurrent trainings, each in its own process with its memory capped at its share
of the GPU, as `--gpus-per-trial 1/N` makes Ray run them.

Processes rather than Ray trials, so it also runs on a GPU machine without Ray;
each process does what a trial worker does: load the split onto the GPU, build
the model, train. All start together (a barrier); the aggregate is the images all
of them trained over the span from the first start to the last finish.
"""

from __future__ import annotations

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

    def speedup(self, single: "SharingRow") -> float:
        return self.aggregate.median / single.aggregate.median


def sharing_config(model: str, batch_size: int, compile: bool, data_dir: str | None) -> TrialConfig:
    return TrialConfig(
        model=ModelConfig(model=model, bn="pre_act", dropout="fc", p_fc=0.3),
        optim=OptimConfig(lr=0.05),
        data=DataConfig(data_dir=data_dir, batch_size=batch_size, augment=True),
        max_epochs=1000, device="cuda", compile=compile, precision="auto",  # bf16 where the GPU has it
    )


def _worker(cfg: TrialConfig, share: float, epochs: int, barrier, results) -> None:
    device = torch.device("cuda")
    torch.cuda.set_per_process_memory_fraction(share, device)
    split = load_split(cfg.data, device)
    state = start_training(cfg, steps_per_epoch(split.n_train, cfg.data.batch_size), device)
    train_one_epoch(state, split)  # warm-up: cuDNN plans, allocator, compilation
    barrier.wait()
    start = time.time()
    for _ in range(epochs):
        train_one_epoch(state, split)
    results.put((start, time.time(), epochs * split.n_train))


def aggregate_throughput(cfg: TrialConfig, trials: int, epochs: int) -> float:
    context = mp.get_context("spawn")  # CUDA cannot be forked
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
    images = sum(n for _, _, n in spans)
    return images / (max(end for _, end, _ in spans) - min(start for start, _, _ in spans))


def run(data_dir: str | None, model: str, batch_size: int, counts: list[int], epochs: int, repeats: int,
        compile: bool = False) -> list[SharingRow]:
    if not torch.cuda.is_available():
        raise RuntimeError("the GPU-sharing benchmark needs a CUDA GPU")
    cfg = sharing_config(model, batch_size, compile, data_dir)
    rows = []
    for trials in counts:
        measured = Measured.of([aggregate_throughput(cfg, trials, epochs) for _ in range(repeats)])
        rows.append(SharingRow(trials, measured, measured.median / trials))
        print(f"  {trials} trials on one GPU: {measured} images/s in all", flush=True)
    return rows
