"""The usual PyTorch recipe, as the baseline the project's training step is measured against.

`torchvision.datasets.FashionMNIST` read from the same IDX files, the same
augmentation as per-sample transforms (2-pixel padded random crop, horizontal
flip), `ToTensor` + `Normalize`, and a `DataLoader` with worker processes and
pinned memory; the same model, optimizer, schedule and device as the project.
Only the input pipeline differs, so a throughput or accuracy difference is the
pipeline's doing.
"""

from __future__ import annotations

import gzip
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torchvision import datasets as tv_datasets
from torchvision import transforms

from study.data import datasets
from study.vocabulary.config import TrialConfig
from study.data.device_data import CROP_PAD, MEAN, STD
from study.training.models import build_model
from study.training.loop import make_optimizer, make_scheduler, resolve_device, steps_per_epoch


def torchvision_root(data_dir: str | Path | None, cache: Path) -> Path:
    """A directory torchvision's FashionMNIST can read: `<root>/FashionMNIST/raw/` with plain IDX files.

    torchvision wants the files uncompressed and in its own layout, so they are
    copied (and gunzipped) once into `cache`.
    """
    source = datasets.find_data_dir(data_dir)
    raw = cache / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in datasets.ALL_FILES:
        target = raw / name
        if target.exists():
            continue
        found = datasets.find_file(source, name)
        if found is None:
            raise FileNotFoundError(f"{source} has no {name}[.gz]; the baseline needs the training files")
        opener = gzip.open if found.suffix == ".gz" else open
        with opener(found, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return cache


def train_transform(augment: bool) -> transforms.Compose:
    steps = [transforms.RandomCrop(28, padding=CROP_PAD), transforms.RandomHorizontalFlip()] if augment else []
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])


def make_loader(root: Path, indices: np.ndarray, batch_size: int, augment: bool, shuffle: bool,
                workers: int, device: torch.device, seed: int) -> DataLoader:
    """A DataLoader over rows `indices` of the training files, as the usual recipe builds it."""
    dataset = tv_datasets.FashionMNIST(str(root), train=True, download=False, transform=train_transform(augment))
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        Subset(dataset, indices.tolist()), batch_size=batch_size, shuffle=shuffle, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0, generator=generator,
    )


class StandardTrainer:
    """Model, optimizer and schedule built as the project builds them, fed by a DataLoader."""

    def __init__(self, cfg: TrialConfig, train_loader: DataLoader, device: torch.device | None = None):
        self.cfg, self.loader = cfg, train_loader
        self.device = device or resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model).to(self.device)
        self.optimizer = make_optimizer(self.model, cfg.optim)
        total = steps_per_epoch(len(train_loader.dataset), cfg.data.batch_size) * cfg.max_epochs
        self.scheduler = make_scheduler(self.optimizer, cfg.optim, total)

    def train_epoch(self, max_batches: int | None = None) -> dict:
        """One pass (or `max_batches` batches) over the loader; returns images/s and the mean loss."""
        self.model.train()
        seen, loss_sum = 0, 0.0
        start = time.perf_counter()
        for i, (x, y) in enumerate(self.loader):
            if max_batches is not None and i >= max_batches:
                break
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            loss = F.cross_entropy(self.model(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            loss_sum += loss.item() * len(y)  # the usual per-batch .item(): a host sync per batch
            seen += len(y)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return {"samples_per_s": seen / (time.perf_counter() - start), "train_loss": loss_sum / max(seen, 1)}

    @torch.no_grad()
    def evaluate(self, loader: DataLoader) -> tuple[float, float]:
        """Mean cross-entropy and accuracy over `loader`."""
        self.model.eval()
        loss_sum, correct, n = 0.0, 0, 0
        for x, y in loader:
            x, y = x.to(self.device), y.to(self.device)
            logits = self.model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
        return loss_sum / n, correct / n
