"""The dataset as tensors on the training device, and batches as index slices.

Following airbench: the whole split lives on the device as uint8 (60k x 784 bytes
= 47 MB), a batch is ``x[idx]`` for a slice of a random permutation, augmentation
is batched tensor code, and normalisation happens per batch on the device. No
DataLoader, no worker processes.

A Ray worker that runs several trials keeps its data: `_CACHE` (the project's only
global state) holds the raw training arrays per data directory and the device
tensors per split, so a reused worker neither rereads the files nor re-splits.
Cached tensors are shared between trials: never modify them in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from study.data import datasets
from study.vocabulary.config import DataConfig
from study.data.split import stratified_folds, stratified_split, stratified_subset

# FashionMNIST training-set pixel mean and std, on the [0, 1] scale.
MEAN = 0.2860
STD = 0.3530
CROP_PAD = 2

# Keys: ("arrays", dir) -> (images uint8 [N, 28, 28], labels int64 [N]);
#       ("split", dir, val_size, train_size, split_seed, fold, n_folds, device) -> DeviceSplit.
_CACHE: dict[tuple, Any] = {}


@dataclass
class DeviceSplit:
    """Training and validation tensors on one device.

    `train_x`, `val_x`: uint8 [N, 1, 28, 28]; `train_y`, `val_y`: int64 [N].
    `train_idx`, `val_idx`: which rows of the training files they are (sorted);
    `val_idx` is None when the validation part is the test set.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    train_idx: np.ndarray | None = None
    val_idx: np.ndarray | None = None

    @property
    def n_train(self) -> int:
        return len(self.train_y)

    @property
    def n_val(self) -> int:
        return len(self.val_y)

    @property
    def device(self) -> torch.device:
        return self.train_x.device


def clear_cache() -> None:
    """Forget cached arrays and tensors (tests; or to free device memory)."""
    _CACHE.clear()


def _device_key(device: torch.device | str) -> str:
    """A cache key that treats "cuda" and "cuda:<current>" as the same device."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def _train_arrays(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """The training files of `directory`, read once per process."""
    key = ("arrays", str(directory))
    if key not in _CACHE:
        _CACHE[key] = datasets.load_arrays(directory, "train")
    return _CACHE[key]


def _to_device(images: np.ndarray, labels: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [N, 28, 28] and int64 [N] arrays -> uint8 [N, 1, 28, 28] and int64 [N] tensors."""
    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).to(device)
    y = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)).to(device)
    return x, y


def split_indices(labels: np.ndarray, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) into the training files, as `cfg` asks.

    The fixed `val_size` split, or fold `cfg.fold` of `cfg.n_folds` stratified folds;
    then, if `cfg.train_size` is set, a stratified subset of the training part (the
    validation part stays the same, so runs with different train sizes compare).
    """
    n = len(labels)
    if cfg.fold is None:
        if cfg.val_size >= n:
            raise ValueError(
                f"val_size={cfg.val_size} leaves nothing to train on: the training files hold {n} images; "
                f"choose a val_size below {n}"
            )
        train_idx, val_idx = stratified_split(labels, cfg.val_size, cfg.split_seed)
    else:
        if cfg.n_folds > n:
            raise ValueError(f"n_folds={cfg.n_folds} exceeds the {n} training images; choose fewer folds")
        train_idx, val_idx = stratified_folds(labels, cfg.n_folds, cfg.split_seed)[cfg.fold]
    if cfg.train_size is not None:
        if cfg.train_size > len(train_idx):
            raise ValueError(
                f"train_size={cfg.train_size} exceeds the {len(train_idx)} images left for training "
                f"after validation; choose a train_size of at most {len(train_idx)} (or leave it unset)"
            )
        train_idx = stratified_subset(labels, train_idx, cfg.train_size, cfg.split_seed)
    return train_idx, val_idx


def load_split(cfg: DataConfig, device: torch.device | str) -> DeviceSplit:
    """Training and validation tensors for `cfg`, on `device`; cached per process.

    Reads only the training files (never the test set). A second call with the same
    directory, split settings and device returns the same `DeviceSplit` object.
    """
    directory = datasets.find_data_dir(cfg.data_dir)
    key = ("split", str(directory), cfg.val_size, cfg.train_size, cfg.split_seed, cfg.fold, cfg.n_folds,
           _device_key(device))
    if key not in _CACHE:
        images, labels = _train_arrays(directory)
        train_idx, val_idx = split_indices(labels, cfg)
        train_x, train_y = _to_device(images[train_idx], labels[train_idx], device)
        val_x, val_y = _to_device(images[val_idx], labels[val_idx], device)
        _CACHE[key] = DeviceSplit(train_x, train_y, val_x, val_y, train_idx, val_idx)
    return _CACHE[key]


def load_full_train_and_test(data_dir: str | Path | None, device: torch.device | str) -> DeviceSplit:
    """All training images as `train_*` and the test set as `val_*`: for final evaluation only.

    The test set is read through `datasets.load_test_arrays` on every call and not
    cached, so a spy on that function sees each use.
    """
    directory = datasets.find_data_dir(data_dir)
    images, labels = _train_arrays(directory)
    test_images, test_labels = datasets.load_test_arrays(directory)
    train_x, train_y = _to_device(images, labels, device)
    test_x, test_y = _to_device(test_images, test_labels, device)
    return DeviceSplit(train_x, train_y, test_x, test_y, np.arange(len(labels)), None)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 ((x / 255 - MEAN) / STD), same shape and device."""
    return (x.float() - 255.0 * MEAN) / (255.0 * STD)


def _check_generator(generator: torch.Generator, device: torch.device) -> None:
    if generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device} but the data is on {device}; "
            f"make it with torch.Generator(device={str(device)!r})"
        )


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop (2-pixel zero padding) and horizontal flip (p = 0.5), per sample.

    x: uint8 [B, C, H, W] on any device; `generator` must be on the same device.
    Returns a new uint8 [B, C, H, W] tensor; `x` is not modified. Each sample draws
    its own offsets (dy, dx in 0..4, 2 meaning unshifted) and flip, all at once.
    """
    if x.ndim != 4:
        raise ValueError(f"augment expects images of shape [B, C, H, W], got shape {tuple(x.shape)}")
    _check_generator(generator, x.device)
    b, _, h, w = x.shape
    padded = F.pad(x, (CROP_PAD,) * 4)  # [B, C, H+4, W+4], zeros around
    dy = torch.randint(0, 2 * CROP_PAD + 1, (b, 1), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * CROP_PAD + 1, (b, 1), generator=generator, device=x.device)
    flip = torch.rand((b, 1), generator=generator, device=x.device) < 0.5
    rows = dy + torch.arange(h, device=x.device)  # [B, H] rows of the crop window
    cols = dx + torch.arange(w, device=x.device)  # [B, W] columns of the crop window
    cols = torch.where(flip, cols.flip(1), cols)  # reading the window right to left = flip
    batch = torch.arange(b, device=x.device)
    # Advanced indexing on [B, H+4, W+4, C] with index shapes [B,1,1], [B,H,1], [B,1,W]
    # gathers every sample's window in one op: [B, H, W, C].
    out = padded.permute(0, 2, 3, 1)[batch[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


# Random erasing (Zhong et al., AAAI 2020), torchvision's defaults: the rectangle covers 2-33% of the
# image, with an aspect ratio between 0.3 and 3.3 (drawn on a log scale).
ERASE_AREA = (0.02, 0.33)
ERASE_RATIO = (0.3, 3.3)
ERASE_FILL = round(255 * MEAN)  # the mean pixel: zero once normalised, as torchvision fills a normalised image


def random_erase(x: torch.Tensor, generator: torch.Generator, p: float) -> torch.Tensor:
    """Each sample, with probability `p`, gets one random rectangle set to the mean pixel.

    x: uint8 [B, C, H, W] on any device; `generator` must be on the same device. Returns a
    new tensor; `x` is not modified. All samples draw at once (area, aspect ratio, corner);
    where torchvision retries a rectangle that does not fit, this one clips it to the image.
    """
    if x.ndim != 4:
        raise ValueError(f"random_erase expects images of shape [B, C, H, W], got shape {tuple(x.shape)}")
    _check_generator(generator, x.device)
    b, _, h, w = x.shape
    draws = torch.rand((5, b), generator=generator, device=x.device)  # erase?, area, ratio, top, left
    area = h * w * (ERASE_AREA[0] + (ERASE_AREA[1] - ERASE_AREA[0]) * draws[1])
    log_low, log_high = np.log(ERASE_RATIO[0]), np.log(ERASE_RATIO[1])
    ratio = torch.exp(log_low + (log_high - log_low) * draws[2])
    eh = torch.sqrt(area * ratio).round().clamp(1, h)
    ew = torch.sqrt(area / ratio).round().clamp(1, w)
    top = (draws[3] * (h - eh + 1)).floor()
    left = (draws[4] * (w - ew + 1)).floor()
    rows = torch.arange(h, device=x.device)[None, :, None]  # [1, H, 1]
    cols = torch.arange(w, device=x.device)[None, None, :]  # [1, 1, W]
    inside = ((rows >= top[:, None, None]) & (rows < (top + eh)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + ew)[:, None, None]))
    erased = inside & (draws[0] < p)[:, None, None]  # [B, H, W]
    return torch.where(erased[:, None], torch.full_like(x, ERASE_FILL), x)


def batch_indices(
    n: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    """Index tensors covering ``range(n)`` once, in batches of `batch_size` (the last may be smaller).

    With `shuffle`, a random permutation from `generator`; else in order. `device`
    defaults to the generator's device (CPU without a generator).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)
    if shuffle:
        if generator is None:
            raise ValueError("batch_indices(shuffle=True) needs a generator, so the order is reproducible")
        _check_generator(generator, device)
        order = torch.randperm(n, generator=generator, device=device)
    else:
        order = torch.arange(n, device=device)
    return list(order.split(batch_size))
