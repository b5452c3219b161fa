"""What measuring the mechanism costs: the variance shift per epoch, BN re-estimation once per run.

The variance shift rides on the train-eval pass (hooks on the BN layers' inputs, no
forward pass of its own), so its cost is that pass with the hooks minus the same pass
without them, measured back to back on the same model and images, as a share of a
whole validated epoch (`run_epoch`, what a search trial runs every epoch). The
re-estimation (a copy of the model, a train-mode BN pass over the train-eval images and
one more validation pass) runs after the last epoch only: it is shown per run of
`max_epochs` epochs. Sizes are those of the quick and full budgets, where they fit.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from benchmarks.common import Measured
from study.data.device_data import load_split
from study.training.loop import (
    bn_reestimated,
    evaluate,
    run_epoch,
    start_training,
    steps_per_epoch,
    train_eval_images,
    train_eval_metrics,
)
from study.vocabulary.config import DataConfig, ModelConfig, OptimConfig, TrialConfig

# Dropout2d before BN in every conv block: the placement the measurement exists for.
MODEL = dict(bn="pre_act", dropout="conv", order="dropout_first", p_conv=0.2)
PAIRS = 5  # train-eval passes with and without the hooks, per repeat


@dataclass(frozen=True)
class OverheadRow:
    model: str
    train_images: int
    val_images: int
    train_eval_images: int
    epoch_s: Measured  # a whole validated epoch, the shift included
    shift_s: Measured  # the train-eval pass with the hooks minus without
    reestimate_s: Measured  # re-estimation and its validation pass
    max_epochs: int

    @property
    def shift_share(self) -> float:
        return self.shift_s.median / self.epoch_s.median

    @property
    def reestimate_share(self) -> float:
        """Of a whole run of `max_epochs` epochs."""
        return self.reestimate_s.median / (self.max_epochs * self.epoch_s.median)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(cfg: TrialConfig, repeats: int, max_epochs: int) -> OverheadRow:
    """`cfg` trains far longer than measured (no epoch here is its last); `max_epochs` is the run the
    re-estimation's share is of."""
    device = torch.device(cfg.device)
    split = load_split(cfg.data, device)
    state = start_training(cfg, steps_per_epoch(split.n_train, cfg.data.batch_size), device)
    images, labels = train_eval_images(split)
    run_epoch(state, split)  # warm-up: allocator, oneDNN plans
    epoch, shift, reestimate = [], [], []
    for _ in range(repeats):
        epoch.append(run_epoch(state, split)["epoch_s"])
        # A few milliseconds on a pass of a few hundred: the median of several interleaved pairs.
        pairs = [_seconds(lambda: train_eval_metrics(state, split))
                 - _seconds(lambda: evaluate(state.model, images, labels, state.numerics)) for _ in range(PAIRS)]
        shift.append(max(statistics.median(pairs), 0.0))
        reestimate.append(_seconds(lambda: evaluate(bn_reestimated(state, split), split.val_x, split.val_y,
                                                    state.numerics)))
    return OverheadRow(cfg.model.model, split.n_train, split.n_val, len(labels), Measured.of(epoch),
                       Measured.of(shift), Measured.of(reestimate), max_epochs)


def run(data_dir: str | None, device: str, sizes: list[tuple[str, int | None, int, int, int]],
        repeats: int) -> list[OverheadRow]:
    """One row per (model, training images or None for all, validation images, batch size, max_epochs) in `sizes`."""
    rows = []
    for model, train_images, val_images, batch_size, max_epochs in sizes:
        cfg = TrialConfig(
            model=ModelConfig(model=model, **MODEL), optim=OptimConfig(lr=0.01),
            data=DataConfig(data_dir=data_dir, train_size=train_images, val_size=val_images, batch_size=batch_size),
            max_epochs=10_000, device=device,
        )
        row = measure(cfg, repeats, max_epochs)
        rows.append(row)
        print(f"  {model:6s} {row.train_images:6,} images: epoch {row.epoch_s.median:.3f} s, shift "
              f"{1000 * row.shift_s.median:.1f} ms ({row.shift_share:.1%}), re-estimation "
              f"{1000 * row.reestimate_s.median:.0f} ms ({row.reestimate_share:.1%} of a {max_epochs}-epoch run)",
              flush=True)
    return rows
