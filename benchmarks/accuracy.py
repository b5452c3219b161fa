"""Same configuration, same images, same epochs: does the project's pipeline reach
the accuracy of a plain PyTorch loop with the standard input pipeline?

This checks that the speed-ups (device-resident data, batched augmentation, one
host sync per epoch, bf16 and channels_last on CUDA) change nothing a study
measures. Each pipeline trains `seeds` times; the verdict compares the difference
of the means with its standard error.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from dataclasses import dataclass
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
    project: list[float]  # validation accuracy per seed
    baseline: list[float]

    @property
    def difference(self) -> float:
        return statistics.mean(self.project) - statistics.mean(self.baseline)

    @property
    def standard_error(self) -> float:
        return math.sqrt(statistics.variance(self.project) / len(self.project)
                         + statistics.variance(self.baseline) / len(self.baseline))

    @property
    def verdict(self) -> str:
        # Two standard errors: a difference this small is what reseeding alone produces.
        return "same within seed noise" if abs(self.difference) <= 2 * self.standard_error else "different"


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
    project, baseline = [], []
    with tempfile.TemporaryDirectory() as scratch:
        root = torchvision_root(data_dir, Path(scratch))
        for seed in range(seeds):
            cfg = accuracy_config(seed, epochs, train_images, batch_size, device, data_dir, val_size)
            split = load_split(cfg.data, torch.device(device))
            project.append(fit(cfg, split).history[-1]["val_acc"])

            torch_device = torch.device(device)
            train = make_loader(root, split.train_idx, batch_size, True, True, workers, torch_device, seed)
            val = make_loader(root, split.val_idx, EVAL_BATCH, False, False, workers, torch_device, seed)
            trainer = StandardTrainer(cfg, train, torch_device)
            for _ in range(epochs):
                trainer.train_epoch()
            baseline.append(trainer.evaluate(val)[1])
            print(f"  seed {seed}: project val_acc {project[-1]:.4f}, standard {baseline[-1]:.4f}", flush=True)
    name = "medium bn=pre_act dropout=all p_conv=0.1 p_fc=0.3 augment sgd lr=0.05 cosine"
    return AccuracyResult(name, epochs, train_images, val_size, project, baseline)
