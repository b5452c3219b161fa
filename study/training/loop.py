"""Training and evaluation as plain functions: no Ray here.

The trainable, cross-validation, final evaluation and the benchmarks all drive
the same three calls: `start_training` builds a `TrainingState` from a typed
config, `run_epoch` trains one epoch and evaluates, `state_dict` /
`load_state_dict` make a checkpoint that resumes bit-for-bit on CPU. The
checkpoint holds tensors, numbers, strings and lists/dicts of them only, so it
loads with ``torch.load(..., weights_only=True)`` (no code runs from the file).

A non-finite training loss raises nothing: `run_epoch` flags the epoch
``diverged`` and every training loop stops after it, so the trial ends normally
and its status (``diverged``, `study.vocabulary.factors.is_diverged`) is a result, not an error.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from study.vocabulary.config import ConfigError

from study.vocabulary.config import OptimConfig, TrialConfig
from study.data.device_data import DeviceSplit, augment, batch_indices, random_erase
from study.vocabulary.factors import is_diverged
from study.training.mechanism import BNInputMoments, CalibrationBins, bn_layers, reestimated_copy, summarise_shift
from study.training.models import build_model
from study.training.numerics import Numerics, choose_numerics

EVAL_BATCH_SIZE = 2048  # evaluation holds no activations for backward: big batches are cheap

# The training images `train_eval_loss` / `train_eval_acc` are measured on: the first
# min(n_train, n_val, TRAIN_EVAL_SIZE) rows of the split's training tensors, clean (no
# augmentation) and in eval mode. A fixed slice and no RNG: the same images every epoch,
# so the curve moves with the model only, and resuming from a checkpoint is unchanged.
# - At most n_val: `gap` subtracts two means and the validation mean's noise bounds its
#   precision, so a larger training side buys little; this way the pass never costs
#   more than validation itself (quick budget: 1000 of its 1500 training images).
# - At most 2000: the mean loss over 2000 images is precise to ~0.01-0.02 and accuracy to
#   ~0.7 points (binomial s.e.), below the seed-to-seed spread of `gap`, while the pass
#   stays cheap where validation is large: on CPU an eval-mode image costs 0.6-1.2 of
#   a training step's image (measured, small and medium models), so 2000 images are
#   2-4% of a full-budget epoch (54k images; the full budget's 6000 would be 7-13%).
# The rows are in file order, and FashionMNIST's training file is not ordered by class
# (nor are the synthetic test files), so the first rows are a fair sample.
TRAIN_EVAL_SIZE = 2000


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'device' is 'cuda' but no CUDA GPU is visible; use 'auto' or 'cpu'")
    return torch.device(name)


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    # Weight decay on weights only: decaying BN scales and biases just fights BN.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))


def make_scheduler(optimizer, cfg: OptimConfig, total_steps: int):
    """A per-step learning-rate schedule over the whole run ('none' keeps lr fixed)."""
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.25,
            cycle_momentum=cfg.optimizer == "sgd" and cfg.momentum > 0,
        )
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


@dataclass
class TrainingState:
    """Everything that changes while training; `state_dict` is the checkpoint."""

    cfg: TrialConfig
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # draws shuffles and augmentation, on `device`
    step_fn: object  # model forward used for training (maybe compiled)
    numerics: Numerics  # precision and layout (study.training.numerics)
    epoch: int = 0
    history: list[dict] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        """Whether the last epoch trained (in this run or before the checkpoint) was flagged diverged.

        Training loops test it before each epoch, so a run resumed from its diverged
        epoch's checkpoint stops at once instead of training NaN weights.
        """
        return bool(self.history) and bool(self.history[-1].get("diverged", False))

    def state_dict(self) -> dict:
        """The checkpoint: plain data only, loadable with ``torch.load(..., weights_only=True)``.

        The LambdaLR schedules' lambdas are not in it (PyTorch stores None for a plain
        function or lambda); `start_training` rebuilds them from the config.
        """
        rng = {"torch": torch.get_rng_state(), "data": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "history": list(self.history),
            "rng": rng,
            "config": self.cfg.to_flat(),
            "numerics": self.numerics.label,
        }

    def load_state_dict(self, checkpoint: dict) -> None:
        # A resume computes as the run it continues (its precision and layout), whatever a probe chose now.
        if checkpoint.get("numerics", self.numerics.label) != self.numerics.label:
            self.numerics = Numerics.from_label(checkpoint["numerics"], self.device)
            self.numerics.place(self.model)  # in place: the optimizer keeps the same parameters
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.epoch = int(checkpoint["epoch"])
        self.history = list(checkpoint["history"])
        # RNG states are CPU byte tensors whatever the generator's device, and set_state
        # refuses any other; torch.load(map_location=cuda) moves them to the GPU.
        rng = {name: state.cpu() for name, state in checkpoint["rng"].items()}
        torch.set_rng_state(rng["torch"])
        self.generator.set_state(rng["data"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)


def start_training(cfg: TrialConfig, steps_per_epoch: int, device: torch.device | None = None) -> TrainingState:
    """Build model, optimizer and schedule, all seeded from `cfg.seed`."""
    device = device or resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)  # model init and the CPU dropout masks
    if device.type == "cuda":
        torch.cuda.manual_seed(cfg.seed)
    numerics = choose_numerics(cfg, device)  # before the model: a probe builds models of its own
    model = numerics.place(build_model(cfg.model).to(device))
    optimizer = make_optimizer(model, cfg.optim)
    scheduler = make_scheduler(optimizer, cfg.optim, steps_per_epoch * cfg.max_epochs)
    generator = torch.Generator(device=device)
    generator.manual_seed(cfg.seed + 1_000_003)  # independent of the init stream
    step_fn = torch.compile(model) if cfg.compile else model
    return TrainingState(cfg, device, model, optimizer, scheduler, generator, step_fn, numerics)


def train_one_epoch(state: TrainingState, split: DeviceSplit) -> dict:
    """One pass over the training images; returns train_loss (smoothed, with label smoothing), train_acc, lr,
    samples_per_s.

    These are train-mode numbers (Dropout and augmentation on, averaged over the
    epoch's changing weights). A NaN or infinite loss is returned as it is: the
    caller (`run_epoch`) flags the epoch diverged.
    """
    cfg, device = state.cfg, state.device
    state.model.train()
    loss_sum = torch.zeros((), device=device)  # summed on device: no host sync per batch
    correct = torch.zeros((), device=device, dtype=torch.long)
    start = time.perf_counter()
    for idx in batch_indices(split.n_train, cfg.data.batch_size, state.generator, device=device):
        x = split.train_x[idx]
        if cfg.data.augment:
            x = augment(x, state.generator)
        if cfg.data.random_erasing:  # no draws without it: older configs keep their random streams
            x = random_erase(x, state.generator, cfg.data.random_erasing)
        y = split.train_y[idx]
        with state.numerics.autocast():
            logits = state.step_fn(state.numerics.prepare(x))
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.optim.label_smoothing)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.scheduler.step()
        loss_sum += loss.detach() * y.numel()
        correct += (logits.argmax(1) == y).sum()
    train_loss = loss_sum.item() / split.n_train  # the epoch's one host sync
    seconds = time.perf_counter() - start
    return {
        "train_loss": train_loss,
        "train_acc": correct.item() / split.n_train,
        "lr": state.optimizer.param_groups[0]["lr"],
        "samples_per_s": split.n_train / seconds,
    }


@torch.no_grad()
def evaluate(model: nn.Module, x_uint8: torch.Tensor, y: torch.Tensor, numerics: Numerics,
             calibration: CalibrationBins | None = None, flip_average: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` in eval mode on uint8 images [N,1,28,28], computed with
    `numerics` (the training's); each batch's class probabilities also go into `calibration` when given.

    With `flip_average`, each image is scored by the mean of the class probabilities of the image and
    its mirror image (left-right): test-time augmentation with the flip that training's augmentation
    draws half the time, so the network has learnt both views. It costs a second forward pass."""
    device = numerics.device
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for start in range(0, len(y), EVAL_BATCH_SIZE):
        xb, yb = x_uint8[start : start + EVAL_BATCH_SIZE], y[start : start + EVAL_BATCH_SIZE]
        with numerics.autocast():
            logits = model(numerics.prepare(xb)).float()
            mirrored = model(numerics.prepare(xb.flip(-1))).float() if flip_average else None
        if mirrored is None:
            scores = logits
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        else:  # the log of the mean of the two views' probabilities
            scores = torch.logaddexp(logits.log_softmax(1), mirrored.log_softmax(1)) - math.log(2)
            loss_sum += F.nll_loss(scores, yb, reduction="sum")
        correct += (scores.argmax(1) == yb).sum()
        if calibration is not None:
            calibration.add(scores.softmax(1), yb)
    return loss_sum.item() / len(y), correct.item() / len(y)


def train_eval_images(split: DeviceSplit) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed training images of `train_eval_loss` / `train_eval_acc` (views, no copy)."""
    n = min(split.n_train, split.n_val, TRAIN_EVAL_SIZE)
    return split.train_x[:n], split.train_y[:n]


def train_eval_metrics(state: TrainingState, split: DeviceSplit) -> dict:
    """`train_eval_loss`, `train_eval_acc`: eval mode, clean images, the same ones every epoch.

    The same pass measures the variance shift of every BN layer (`study.training.mechanism`:
    var_shift_max, var_shift_mean, var_shift_bn0, ...; absent without BN), since its
    ``real_var`` is exactly this: eval mode, training images. So the shift costs the hooks'
    per-channel sums and no forward pass of its own.
    """
    with BNInputMoments(state.model) as moments:
        loss, acc = evaluate(state.model, *train_eval_images(split), state.numerics)
    return {"train_eval_loss": loss, "train_eval_acc": acc, **summarise_shift(moments.variance_shift())}


def scored(model: nn.Module, x_uint8: torch.Tensor, y: torch.Tensor, numerics: Numerics,
           flip_average: bool = False) -> dict:
    """loss, acc, ece and conf_wrong of `model` in eval mode on these images (`evaluate` with calibration)."""
    histogram = CalibrationBins(numerics.device)
    loss, acc = evaluate(model, x_uint8, y, numerics, histogram, flip_average)
    ece, conf_wrong = histogram.result()
    return {"loss": loss, "acc": acc, "ece": ece, "conf_wrong": conf_wrong}


def bn_reestimated(state: TrainingState, split: DeviceSplit) -> nn.Module | None:
    """A copy of the model with its BN statistics recomputed, Dropout off, on the fixed training images
    of `train_eval_images` (clean, as evaluation sees them), in batches of the training batch size;
    None for a model without BN. The model itself keeps the statistics it learnt."""
    if not bn_layers(state.model):
        return None
    images, _ = train_eval_images(split)
    return reestimated_copy(state.model, state.numerics.prepare(images), state.cfg.data.batch_size)


def run_epoch(state: TrainingState, split: DeviceSplit, validate: bool = True) -> dict:
    """Train one epoch, evaluate, and return the epoch's metrics.

    Evaluation (eval mode) is on the validation images (val_loss, val_acc, and the
    calibration of its predictions: ece over 15 equal-width confidence bins, and
    conf_wrong, the mean confidence of the wrong ones; `study.training.mechanism`) and on a
    fixed subset of the training images (train_eval_loss, train_eval_acc and the
    variance shift of the BN layers, see TRAIN_EVAL_SIZE and `train_eval_metrics`);
    gap = val_loss - train_eval_loss, both clean eval-mode losses, so a regulariser
    cannot "close the gap" by inflating the train-mode train_loss. After the last epoch
    (`cfg.max_epochs`) a model with BN is validated once more with its BN statistics
    re-estimated (`bn_reestimated`): val_acc_bn_reestimated.

    With `validate=False` both evaluations are skipped (no val_*, train_eval_*, gap):
    for runs scored only after their last epoch, where the validation images (a 12,000
    image CV fold, or the test set) cost more than an epoch on a training subset.

    `diverged` is True when the training loss is not finite (NaN weights never
    recover); every training loop stops after such an epoch. The accuracy criterion of
    `study.vocabulary.factors.is_diverged` (val_acc below DIVERGED_ACCURACY) is left to the finished
    trial's status (`study.runtime.results.trial_row`): at an early epoch a trial can still climb
    out of chance, and stopping it there would cut short the slow starters (Dropout slows
    early epochs) rather than the broken runs.
    """
    start = time.perf_counter()
    metrics = train_one_epoch(state, split)
    metrics["diverged"] = is_diverged(metrics["train_loss"], None)
    if validate:
        val = scored(state.model, split.val_x, split.val_y, state.numerics)
        metrics.update(train_eval_metrics(state, split))
        metrics.update(val_loss=val["loss"], val_acc=val["acc"], gap=val["loss"] - metrics["train_eval_loss"],
                       ece=val["ece"], conf_wrong=val["conf_wrong"])
        last = state.epoch + 1 >= state.cfg.max_epochs
        reestimated = bn_reestimated(state, split) if last and not metrics["diverged"] else None
        if reestimated is not None:
            metrics["val_acc_bn_reestimated"] = evaluate(reestimated, split.val_x, split.val_y, state.numerics)[1]
    state.epoch += 1
    metrics.update(epoch=state.epoch, epoch_s=time.perf_counter() - start, numerics=state.numerics.label)
    state.history.append(metrics)
    return metrics


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return math.ceil(n_train / batch_size)


def fit(cfg: TrialConfig, split: DeviceSplit, epochs: int | None = None) -> TrainingState:
    """Train `epochs` epochs (default: all of `cfg.max_epochs`) from scratch; a plain loop.

    Stops early after an epoch flagged diverged (its metrics are the history's last).
    """
    state = start_training(cfg, steps_per_epoch(split.n_train, cfg.data.batch_size))
    for _ in range(epochs or cfg.max_epochs):
        run_epoch(state, split)
        if state.diverged:
            break
    return state
