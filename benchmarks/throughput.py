"""Training images per second: the project's step against the standard PyTorch pipeline.

For each model size and for the fastest and the slowest factor configuration, both
pipelines train the same model with the same optimizer on the same images and
device, alternating within one run, so the ratio is not skewed by a machine that
got busier halfway. The baseline is measured with each worker count in
`--workers` and the fastest one is the baseline, so the comparison is against
the standard recipe at its best on this machine.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.common import Measured
from benchmarks.limits import matmul_gflops, precision_of, training_flops_per_image
from benchmarks.standard_pipeline import StandardTrainer, make_loader, torchvision_root
from study.vocabulary.config import DataConfig, ModelConfig, OptimConfig, TrialConfig
from study.data.device_data import load_split
from study.training.loop import start_training, steps_per_epoch, train_one_epoch

# The cheapest and the most expensive networks of each size: no BN, no Dropout and
# no augmentation, against BN + Dropout everywhere + augmentation.
FACTOR_CONFIGS = {
    "fastest": (ModelConfig(bn="none", dropout="none"), False),
    "slowest": (ModelConfig(bn="pre_act", dropout="all", order="dropout_first", p_conv=0.1, p_fc=0.5), True),
}


@dataclass(frozen=True)
class ThroughputRow:
    model: str
    factors: str
    images: int
    project: Measured
    baseline: Measured
    baseline_workers: int
    numerics: str  # what the project's step computed with, e.g. fp32+channels_last
    flops_per_image: float  # one training image, forward and backward (benchmarks.limits)
    limit_gflops: float  # the matmul rate of that precision, measured in the same run

    @property
    def ratio(self) -> float:
        return self.project.median / self.baseline.median

    @property
    def project_gflops(self) -> float:
        return self.project.median * self.flops_per_image / 1e9

    @property
    def share_of_limit(self) -> float:
        return self.project_gflops / self.limit_gflops


def trial_config(model: str, factors: str, batch_size: int, images: int | None, device: str, compile: bool,
                 data_dir: str | None = None, val_size: int = 6000) -> TrialConfig:
    model_cfg, augment = FACTOR_CONFIGS[factors]
    model_cfg = ModelConfig(**{**vars(model_cfg), "model": model})
    return TrialConfig(
        model=model_cfg, optim=OptimConfig(lr=0.01),
        data=DataConfig(data_dir=data_dir, train_size=images, val_size=val_size, batch_size=batch_size, augment=augment),
        max_epochs=1000, device=device, compile=compile, precision="auto",  # as the quick and full budgets
    )


def measure(cfg: TrialConfig, repeats: int, workers: list[int], root: Path) -> tuple[Measured, Measured, int, int, str]:
    """(project images/s, best baseline images/s, that baseline's worker count, images per epoch, the
    project's numerics)."""
    device = torch.device(cfg.device)
    split = load_split(cfg.data, device)
    project = start_training(cfg, steps_per_epoch(split.n_train, cfg.data.batch_size), device)
    baselines = {
        w: StandardTrainer(cfg, make_loader(root, split.train_idx, cfg.data.batch_size, cfg.data.augment,
                                            shuffle=True, workers=w, device=device, seed=cfg.seed), device)
        for w in workers
    }
    # One warm-up epoch each: allocator, oneDNN/cuDNN plans, compilation, worker start-up.
    train_one_epoch(project, split)
    for trainer in baselines.values():
        trainer.train_epoch()
    ours, theirs = [], {w: [] for w in workers}
    for _ in range(repeats):
        ours.append(train_one_epoch(project, split)["samples_per_s"])
        for w, trainer in baselines.items():
            theirs[w].append(trainer.train_epoch()["samples_per_s"])
    best = max(workers, key=lambda w: Measured.of(theirs[w]).median)
    return Measured.of(ours), Measured.of(theirs[best]), best, split.n_train, project.numerics.label


def run(data_dir: str | None, device: str, models: list[str], images: dict[str, int | None], batch_size: int,
        repeats: int, workers: list[int], compile: bool = False, val_size: int = 6000) -> list[ThroughputRow]:
    rows, limits = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        root = torchvision_root(data_dir, Path(scratch))
        for model in models:
            for factors in FACTOR_CONFIGS:
                cfg = trial_config(model, factors, batch_size, images[model], device, compile, data_dir, val_size)
                project, baseline, best_workers, n_images, numerics = measure(cfg, repeats, workers, root)
                precision = precision_of(numerics)
                if precision not in limits:  # right after a training: the machine as the trainings found it
                    limits[precision] = matmul_gflops(precision, torch.device(device))
                rows.append(ThroughputRow(model, factors, n_images, project, baseline, best_workers, numerics,
                                          training_flops_per_image(cfg.model), limits[precision]))
                row = rows[-1]
                print(f"  {model:6s} {factors:7s} project {project} img/s, standard {baseline} img/s "
                      f"({best_workers} workers): x{row.ratio:.2f}; {numerics} {row.project_gflops:.1f} GFLOP/s, "
                      f"{row.share_of_limit:.0%} of the {precision} matmul rate", flush=True)
    return rows
