"""Same configuration, same images, same epochs: does the project's pipeline reach
the accuracy of a plain PyTorch loop with the standard input pipeline?

This checks that the speed-ups (device-resident data, batched augmentation, one
host sync per epoch, channels_last) change nothing a study measures. Each pipeline
trains `seeds` times; the verdict compares the difference of the means with its
standard error.

The project's pipeline also trains each seed in bf16 (autocast, channels_last), from
the same initial weights and the same batches as its fp32 run: the difference per
seed is bf16's alone, so its mean is compared with the standard error of the paired
differences.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from benchmarks.standard_pipeline import StandardTrainer, make_loader, torchvision_root
from study.vocabulary.config import DataConfig, ModelConfig, OptimConfig, TrialConfig
from study.data.device_data import load_split
from study.training.loop import fit

EVAL_BATCH = 1024


@dataclass(frozen=True)
class AccuracyResult:
    config: str
    epochs: int
    train_images: int | None
    val_images: int
    project: list[float]  # validation accuracy per seed (fp32)
    baseline: list[float]
    bf16: list[float] = ()  # the project's pipeline in bf16, seed by seed as `project`

    @property
    def difference(self) -> float:
        return statistics.mean(self.project) - statistics.mean(self.baseline)

    @property
    def standard_error(self) -> float:
        return math.sqrt(statistics.variance(self.project) / len(self.project)
                         + statistics.variance(self.baseline) / len(self.baseline))

    @property
    def verdict(self) -> str:
        return _verdict(self.difference, self.standard_error)

    @property
    def bf16_differences(self) -> list[float]:
        return [b - f for b, f in zip(self.bf16, self.project)]

    @property
    def bf16_difference(self) -> float:
        return statistics.mean(self.bf16_differences)

    @property
    def bf16_standard_error(self) -> float:
        return statistics.stdev(self.bf16_differences) / math.sqrt(len(self.bf16))

    @property
    def bf16_verdict(self) -> str:
        return _verdict(self.bf16_difference, self.bf16_standard_error)


def _verdict(difference: float, standard_error: float) -> str:
    # Two standard errors: a difference this small is what reseeding alone produces.
    return "same within seed noise" if abs(difference) <= 2 * standard_error else "different"


def accuracy_config(seed: int, epochs: int, train_images: int | None, batch_size: int, device: str,
                    data_dir: str | None, val_size: int = 6000) -> TrialConfig:
    """A configuration that exercises every part of the pipeline: BN, both Dropouts, augmentation."""
    return TrialConfig(
        model=ModelConfig(model="medium", bn="pre_act", dropout="all", p_conv=0.1, p_fc=0.3),
        optim=OptimConfig(optimizer="sgd", lr=0.05, weight_decay=5e-4, schedule="cosine"),
        data=DataConfig(data_dir=data_dir, train_size=train_images, val_size=val_size, batch_size=batch_size,
                        augment=True),
        max_epochs=epochs, seed=seed, device=device,
    )


def run(data_dir: str | None, device: str, seeds: int, epochs: int, train_images: int | None,
        batch_size: int, workers: int, val_size: int = 6000) -> AccuracyResult:
    project, baseline, bf16 = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        root = torchvision_root(data_dir, Path(scratch))
        for seed in range(seeds):
            cfg = accuracy_config(seed, epochs, train_images, batch_size, device, data_dir, val_size)
            split = load_split(cfg.data, torch.device(device))
            project.append(fit(cfg, split).history[-1]["val_acc"])
            bf16.append(fit(replace(cfg, precision="bf16"), split).history[-1]["val_acc"])

            torch_device = torch.device(device)
            train = make_loader(root, split.train_idx, batch_size, True, True, workers, torch_device, seed)
            val = make_loader(root, split.val_idx, EVAL_BATCH, False, False, workers, torch_device, seed)
            trainer = StandardTrainer(cfg, train, torch_device)
            for _ in range(epochs):
                trainer.train_epoch()
            baseline.append(trainer.evaluate(val)[1])
            print(f"  seed {seed}: project val_acc {project[-1]:.4f} (bf16 {bf16[-1]:.4f}), "
                  f"standard {baseline[-1]:.4f}", flush=True)
    name = "medium bn=pre_act dropout=all p_conv=0.1 p_fc=0.3 augment sgd lr=0.05 cosine"
    return AccuracyResult(name, epochs, train_images, val_size, project, baseline, bf16)
