"""How fast this machine trains and evaluates one configuration, measured in a second or two.

`study run --dry-run` multiplies these rates by the images a study will train and
evaluate. The probe runs the project's own training step (`train_one_epoch`) and
evaluation (`evaluate`) on synthetic images of FashionMNIST's shape, after one
warm-up pass, on the device and with the threads a trial would get.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from study.data.device_data import DeviceSplit
from study.training.loop import evaluate, resolve_device, start_training, steps_per_epoch, train_one_epoch
from study.vocabulary.config import TrialConfig


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
        state = start_training(cfg, steps_per_epoch(images, cfg.data.batch_size), device)

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
