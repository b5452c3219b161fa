"""`python -m benchmarks --gpu-check`: every CUDA path once, on one GPU, in minutes.

Made for the day a GPU machine is lent for a few minutes, with only torch and
torchvision installed (no Ray, Optuna or pandas). It runs the throughput benchmark
against the standard pipeline on whole 54,000-image epochs, the precision and
layout step (fp32, bf16, channels_last, torch.compile), the profile with the GPU's
busy share, and GPU sharing with 1, 2, 4 and 8 trainings, each capped at its share
of the memory. It writes the GPU sections of RESULTS.md, prints one table of what
it checked against the project's targets, and writes the rates `study run --dry-run
--gpus N` estimates from (`RATES_FILE`).

Without `--data-dir` it trains on synthetic images of FashionMNIST's size: a rate
does not depend on what the images show, and the GPU machine may not have the
dataset. `--device cpu` is its dry run, with tiny sizes: what the test suite runs.
"""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from benchmarks.common import machine, markdown_table

RATES_FILE = Path(__file__).with_name("gpu_rates.json")
CHECKED = ("throughput", "precision", "profile", "sharing")
EPOCH_IMAGES = 54_000  # a full-data epoch: the training split without the 6,000 validation images

# The targets the project set for a GPU (docs/benchmarks.md). The CPU dry run shows them, not expecting them met.
MEDIUM_VS_STANDARD = 10.0
EPOCH_SECONDS = 1.0
FOUR_TRIALS_VS_ONE = 2.5
LARGE_SHARE_OF_MATMUL = 0.5


@dataclass(frozen=True)
class Check:
    name: str
    measured: str
    target: str = ""
    met: bool | None = None  # None: no target, measured for the record

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("met" if self.met else "missed")


def check_settings(settings, device: str):
    """The benchmarks' settings trimmed to fit the check in minutes: the medium and large models on whole
    epochs (GPU), each figure measured once, one DataLoader worker count, torch.compile of the medium model
    only. Estimated (not yet measured) at 6-8 minutes on one GPU, most of it the 4 rounds of sharing
    processes, each importing PyTorch."""
    if device == "cpu":  # the dry run: tiny sizes, no compile (its first step alone takes half a minute here)
        return replace(settings, images={"medium": 128}, precision_models=["medium"], precision_compiled=())
    return replace(settings, images={"medium": None, "large": None}, repeats=1, workers=[8],
                   precision_models=["medium", "large"], precision_compiled=("medium",), sharing_epochs=2)


def rate_models(settings, device: str) -> list[str]:
    """The model sizes whose rates the dry-run estimate gets: every size on a GPU (each takes seconds)."""
    from study.vocabulary.factors import MODELS

    return list(MODELS) if device == "cuda" else list(settings.images)


@contextmanager
def data_dir_for_check(data_dir: str | None, device: str):
    """`data_dir`, or synthetic IDX files of FashionMNIST's size (tiny for the CPU dry run)."""
    if data_dir:
        yield data_dir
        return
    from study.data.fake_data import write_fake_fashion_mnist

    with tempfile.TemporaryDirectory() as scratch:
        sizes = {"n_train": 60_000, "n_test": 10_000} if device == "cuda" else {"n_train": 600, "n_test": 100}
        write_fake_fashion_mnist(Path(scratch), **sizes)
        yield scratch


def checks(results: dict) -> list[Check]:
    """What the check measured, set against the targets: `results` maps each of CHECKED to its rows."""
    found = []
    medium = [r for r in results["throughput"] if r.model == "medium"]
    if medium:
        ratio = min(r.ratio for r in medium)
        found.append(Check("medium model against the standard pipeline (the lower of its two factor settings)",
                           f"{ratio:.2f}x", f">= {MEDIUM_VS_STANDARD:g}x", ratio >= MEDIUM_VS_STANDARD))
        slowest = min(medium, key=lambda r: r.project.median)
        seconds = EPOCH_IMAGES / slowest.project.median
        found.append(Check(f"medium model, one {EPOCH_IMAGES:,}-image epoch ({slowest.factors} factors)",
                           f"{seconds:.2f} s", f"< {EPOCH_SECONDS:g} s", seconds < EPOCH_SECONDS))
    large = [r for r in results["precision"] if r.model == "large"]
    if large:
        share = min(r.share(r.auto) for r in large)
        found.append(Check("large model's training step, share of the matmul rate of its precision",
                           f"{share:.0%} ({large[0].auto})", f">= {LARGE_SHARE_OF_MATMUL:.0%}",
                           share >= LARGE_SHARE_OF_MATMUL))
    for row in results["precision"]:
        gain = row.rates["bf16+channels_last"] / row.rates["fp32"]
        found.append(Check(f"{row.model}, bn={row.bn}: bf16 + channels_last against fp32", f"{gain:.2f}x"))
        if row.compiled:
            found.append(Check(f"{row.model}, bn={row.bn}: torch.compile against eager ({row.auto})",
                               f"{row.compiled / row.rates[row.auto]:.2f}x"))
    busy = [r.gpu_busy_share for r in results["profile"] if r.gpu_busy_share is not None]
    if busy:
        found.append(Check("GPU busy share of a training epoch (the lowest)", f"{min(busy):.0%}"))
    sharing = {r.trials: r for r in results["sharing"]}
    for trials, row in sharing.items():
        if row.cap_mb is not None and trials > 1:
            found.append(Check(f"{trials} trials, each capped at 1/{trials} of the memory: peak of the largest",
                               f"{row.peak_mb:,.0f} MB", f"<= {row.cap_mb:,.0f} MB", row.peak_mb <= row.cap_mb))
    if 1 in sharing and 4 in sharing:
        gain = sharing[4].speedup(sharing[1])
        found.append(Check("4 trials on one GPU, aggregate against one", f"{gain:.2f}x",
                           f">= {FOUR_TRIALS_VS_ONE:g}x", gain >= FOUR_TRIALS_VS_ONE))
    return found


def check_table(found: list[Check]) -> str:
    return markdown_table(["check", "measured", "target", ""], [[c.name, c.measured, c.target, c.verdict]
                                                                   for c in found])


def measure_rates_for_dry_run(device: str, models: list[str], batch_size: int, sharing_rows) -> dict:
    """What `study run --dry-run --gpus N` estimates from: one trial's training and evaluation rates per
    (model, BN or not, augmentation), and the aggregate of N trials sharing one GPU against one."""
    from study.training.rate_probe import measure_rates
    from study.vocabulary.config import DataConfig, ModelConfig, TrialConfig

    probe = {} if device == "cuda" else {"images": 64, "seconds": 0.0}  # the dry run: one timed epoch of 64
    rates = []
    for model in models:
        for bn in ("none", "pre_act"):
            for augment in (False, True):
                cfg = TrialConfig(model=ModelConfig(model=model, bn=bn, dropout="all", p_conv=0.1, p_fc=0.3),
                                  data=DataConfig(batch_size=batch_size, augment=augment), device=device,
                                  precision="auto")
                measured = measure_rates(cfg, threads=torch.get_num_threads(), **probe)
                rates.append({"model": model, "bn": bn != "none", "augment": augment,
                              "train": round(measured.train, 1), "evaluate": round(measured.evaluate, 1)})
    single = next((r for r in sharing_rows if r.trials == 1), None)
    sharing = {str(r.trials): round(r.speedup(single), 3) for r in sharing_rows} if single else {"1": 1.0}
    return {"machine": machine(), "device": device, "date": time.strftime("%Y-%m-%d"), "batch_size": batch_size,
            "rates": rates, "sharing": sharing}


def write_rates(path: Path, rates: dict) -> None:
    path.write_text(json.dumps(rates, indent=1) + "\n")
