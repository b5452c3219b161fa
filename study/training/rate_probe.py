"""How fast this machine trains and evaluates one configuration, measured in a second or two.

`study run --dry-run` multiplies these rates by the images a study will train and
evaluate. The probe runs the project's own training step (`train_one_epoch`) and
evaluation (`evaluate`) on synthetic images of FashionMNIST's shape, after one
warm-up pass, on the device and with the threads a trial would get; with several
trials at once on a CPU, as many probes run at once, each in its own process, since
trials that share a CPU's memory bandwidth each run slower than one alone.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass, replace

import torch

from study.data.device_data import DeviceSplit
from study.training.loop import evaluate, resolve_device, start_training, steps_per_epoch, train_one_epoch
from study.vocabulary.config import MAX_EPOCHS, TrialConfig


@dataclass(frozen=True)
class Rates:
    """Images per second of one trial: training (forward, backward, step) and evaluation (forward only)."""

    train: float
    evaluate: float
    device: str


def measure_rates(cfg: TrialConfig, threads: int, images: int = 1024, seconds: float = 0.5) -> Rates:
    """The training and evaluation rates of `cfg` with `threads` CPU threads, each timed over whole
    epochs of `images` synthetic images until `seconds` have passed (after a warm-up epoch)."""
    device = resolve_device(cfg.device)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        generator = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (images, 1, 28, 28), dtype=torch.uint8, generator=generator).to(device)
        y = torch.randint(0, 10, (images,), generator=generator).to(device)
        split = DeviceSplit(x, y, x, y)
        # The probe runs as many epochs as fit in `seconds`, more than a short budget's max_epochs on a fast
        # machine: its schedule is planned for more (a one-cycle schedule refuses a step past its last).
        probe_cfg = replace(cfg, max_epochs=MAX_EPOCHS)  # more than fit in any probe's few seconds
        state = start_training(probe_cfg, steps_per_epoch(images, cfg.data.batch_size), device)

        def rate(run_once) -> float:
            run_once()  # warm-up: first calls allocate and pick kernels
            done, start = 0, time.perf_counter()
            while True:
                run_once()
                done += images
                elapsed = time.perf_counter() - start
                if elapsed >= seconds:
                    return done / elapsed

        train = rate(lambda: train_one_epoch(state, split))
        evaluation = rate(lambda: evaluate(state.model, x, y, state.numerics))
    finally:
        torch.set_num_threads(previous_threads)
    return Rates(train, evaluation, device.type)


def measure_rates_at_once(cfgs: list[TrialConfig], threads: int, copies: int, seconds: float = 1.0) -> list[Rates]:
    """Each configuration's rates for one of `copies` trials training at once, each in its own process with
    `threads` threads (the mean over the copies): what a study's trials get while that many share the
    machine. The copies time each configuration together, after warming it up."""
    if copies <= 1:
        return [measure_rates(cfg, threads, seconds=seconds) for cfg in cfgs]
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no state of this one's torch
    together, results = context.Barrier(copies), context.Queue()
    workers = [context.Process(target=_probe_worker, args=(cfgs, threads, seconds, together, results))
               for _ in range(copies)]
    for worker in workers:
        worker.start()
    try:
        measured = [results.get(timeout=600) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    failed = [m for m in measured if isinstance(m, str)]
    if failed:
        raise RuntimeError(f"a rate probe failed: {failed[0]}")
    return [Rates(sum(m[i].train for m in measured) / copies, sum(m[i].evaluate for m in measured) / copies, measured[0][i].device)
            for i in range(len(cfgs))]


def _probe_worker(cfgs: list[TrialConfig], threads: int, seconds: float, together, results) -> None:
    try:
        out = []
        for cfg in cfgs:
            measure_rates(cfg, threads, images=256, seconds=0.05)  # warm-up alone: allocation, kernels
            together.wait(timeout=300)
            out.append(measure_rates(cfg, threads, seconds=seconds))
        results.put(out)
    except Exception as exc:  # reported to the parent, which raises it
        results.put(f"{type(exc).__name__}: {exc}")
