"""What a planned study will cost, before it runs: `study run --dry-run`.

The plan gives the work: cells, search trials, stage-2 trainings, epochs, images.
ASHA makes the search's epochs uncertain: every trial trains to the grace period,
and at each rung (grace x factor^k epochs) about 1/factor of those that reached it
go on, but a cell's first trials cannot be stopped (nothing to compare them with),
so the estimate gives that expectation and the most (every trial to the end).

The rates come from `study.training.rate_probe`, measured here and now for each
distinct (model, BN or not, augmentation) of the space, with the CPU threads and the
device a trial gets. With `--gpus N` they come instead from the GPU check's file
(`python -m benchmarks --gpu-check` writes benchmarks/gpu_rates.json on a GPU
machine): one trial's rates alone on a GPU, and the aggregate of k trials sharing
one, so that k trials at once each train at the single rate x aggregate(k) / k. The
overhead of the study machinery (per trial and once per stage) is the study-overhead
benchmark's (benchmarks/RESULTS.md, 2-core AMD EPYC). Trials run `concurrency` at a
time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from study.tuning.budgets import gpu_share
from study.tuning.planning import StudyPlan
from study.vocabulary.config import TrialConfig
from study.vocabulary.errors import UserError

GPU_RATES_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_rates.json"  # the GPU check writes it

# The study machinery's cost, from the study-overhead benchmark (benchmarks/RESULTS.md, CPU, 2-core AMD EPYC):
OVERHEAD_PER_TRIAL_S = 0.07
OVERHEAD_PER_STAGE_S = 13.0
TRAIN_EVAL_IMAGES = 2000  # study.training.loop.TRAIN_EVAL_SIZE: at most this many, with every validation


@dataclass(frozen=True)
class StageWork:
    """One stage's trainings, in epochs (the expectation and the most) and validations."""

    name: str
    trainings: int
    epochs_expected: float
    epochs_most: int
    validated_every_epoch: bool  # the search validates each epoch; stage 2 once, after the last

    def validations(self, epochs: float) -> float:
        return epochs if self.validated_every_epoch else self.trainings


@dataclass(frozen=True)
class CostEstimate:
    cells: int
    train_images: int  # per epoch
    val_images: int
    stages: tuple[StageWork, ...]
    epoch_s: dict  # probe key -> (seconds of one trial's training epoch, of one validation)
    concurrency: int
    wall_s: tuple[float, float]  # expected, most
    device: str
    device_per_trial: float  # CPUs or GPUs each trial holds
    rates_from: str


def asha_milestones(max_t: int, grace: int, factor: float) -> list[int]:
    """The epochs where ASHA judges a trial: grace x factor^k below max_t (Tune's rungs; one at max_t judges
    nothing, the trial ends there anyway)."""
    milestones, milestone = [], float(grace)
    while milestone < max_t:
        milestones.append(int(milestone))
        milestone *= factor
    return milestones


def asha_epochs_per_trial(max_t: int, grace: int, factor: float, early_stopping: bool = True,
                          trials_per_cell: int = 1, cells: int = 4000, seed: int = 0) -> float:
    """Expected epochs of a trial under each cell's own asynchronous ASHA, its `trials_per_cell` trials arriving one
    after another (as round-robin suggestions over many cells on a few workers make them).

    Tune's rule: a trial reaching a rung stops when its score is below the (1 - 1/factor) quantile of the scores
    recorded there before it, and is recorded either way. So a cell's first trial always trains to the end, and
    with few trials per cell many more go on than the 1/factor of synchronous successive halving (6 per cell, 10
    epochs, rungs at 3 and 9: 6.6 epochs a trial against 5.1). Scores are drawn at random, `cells` cells with a
    fixed `seed` (the same answer every time), and keep their rank at every rung."""
    if not early_stopping:
        return float(max_t)
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(cells, trials_per_cell))
    trained = np.full((cells, trials_per_cell), float(max_t))
    alive = np.ones((cells, trials_per_cell), dtype=bool)
    for milestone in asha_milestones(max_t, grace, factor):
        recorded = np.where(alive, scores, np.nan)  # the trials that reach this rung are recorded there
        for i in range(1, trials_per_cell):
            stops = alive[:, i] & (scores[:, i] < _row_quantiles(recorded[:, :i], 1 - 1 / factor))
            trained[stops, i] = milestone
            alive[stops, i] = False
    return float(trained.mean())


def _row_quantiles(values: np.ndarray, q: float) -> np.ndarray:
    """Each row's q-quantile over its recorded (non-NaN) values, interpolated linearly as np.nanquantile does;
    -inf for a row with none (nothing to compare with: the trial goes on). Vectorised: nanquantile by rows is
    a Python loop."""
    ordered = np.sort(values, axis=1)  # NaN last
    count = (~np.isnan(values)).sum(axis=1)
    position = q * np.maximum(count - 1, 0)
    low, high = np.floor(position).astype(int)[:, None], np.ceil(position).astype(int)[:, None]
    below, above = np.take_along_axis(ordered, low, 1)[:, 0], np.take_along_axis(ordered, high, 1)[:, 0]
    return np.where(count > 0, below + (position - low[:, 0]) * (above - below), -np.inf)


def _probe_key(cfg: TrialConfig) -> tuple[str, bool, bool, float]:
    return cfg.model.model, cfg.model.bn != "none", cfg.data.augment, cfg.model.width_multiplier


RATES_FROM = "measured on this machine just now (study.training.rate_probe)"


def cell_configs(plan: StudyPlan) -> list[TrialConfig]:
    """One training configuration per cell, as its trials would train (nuisance at their defaults)."""
    fixed = {k: v for k, v in plan.param_space.items() if k != "data_dir"}
    return [TrialConfig.from_flat({**fixed, **cell.settings}) for cell in plan.space.named_cells()]


def estimate(plan: StudyPlan, concurrency: int, device: str, rates,
             rates_from: str = RATES_FROM,
             device_per_trial: float | None = None) -> CostEstimate:
    """The work of `plan` and its wall time with `concurrency` trials at once, from `rates`:
    {probe key: study.training.rate_probe.Rates}, one per distinct (model, BN, augmentation, width), each the rate
    of one trial while `concurrency` run."""
    budget = plan.budget
    configs = cell_configs(plan)
    settings = plan.scheduler_settings()
    cells = len(configs)
    per_trial = asha_epochs_per_trial(budget.max_epochs, settings["grace_period"], budget.reduction_factor,
                                      settings["early_stopping"], trials_per_cell=max(1, plan.num_samples // cells))
    confirmations = cells * budget.confirm_seeds
    stages = (
        StageWork("search", plan.num_samples, plan.num_samples * per_trial, plan.num_samples * budget.max_epochs, True),
        StageWork("stage 2", confirmations, confirmations * budget.max_epochs, confirmations * budget.max_epochs, False),
    )
    train_images = budget.train_size or 54_000
    val_images = budget.val_size
    evaluated = val_images + min(TRAIN_EVAL_IMAGES, train_images, val_images)  # as study.training.loop does
    keys = [_probe_key(cfg) for cfg in configs]
    epoch_s = {key: (train_images / rates[key].train, evaluated / rates[key].evaluate) for key in keys}
    # Every cell gets the same number of trials: the mean over cells.
    train_s = sum(epoch_s[key][0] for key in keys) / cells
    validation_s = sum(epoch_s[key][1] for key in keys) / cells
    walls = []
    for epochs_of in (lambda s: s.epochs_expected, lambda s: s.epochs_most):
        seconds = sum((epochs_of(s) * train_s + s.validations(epochs_of(s)) * validation_s) / concurrency
                      + s.trainings * OVERHEAD_PER_TRIAL_S + OVERHEAD_PER_STAGE_S for s in stages)
        walls.append(seconds)
    if device_per_trial is None:
        device_per_trial = budget.gpus_per_trial if device == "cuda" else budget.cpus_per_trial
    return CostEstimate(cells, train_images, val_images, stages, epoch_s, concurrency, (walls[0], walls[1]),
                        device, device_per_trial, rates_from)


def probe_rates(plan: StudyPlan, on_device, at_once: int = 1) -> dict:
    """The training and evaluation rates of each distinct (model, BN, augmentation, width) of the plan's cells,
    each configuration moved by `on_device` (a TrialConfig -> TrialConfig) to the device to measure, and
    measured while `at_once` copies of it train (on a CPU, trials that share it slow each other down)."""
    from study.training.rate_probe import measure_rates_at_once  # imports PyTorch: only --dry-run needs it here

    distinct = {}
    for cfg in cell_configs(plan):
        distinct.setdefault(_probe_key(cfg), on_device(cfg))
    measured = measure_rates_at_once(list(distinct.values()), max(1, int(plan.budget.cpus_per_trial)), at_once)
    return dict(zip(distinct, measured))


def gpu_check_rates(plan: StudyPlan, path: Path, trials_per_gpu: int) -> tuple[dict, str]:
    """Each probe key's rate of one trial of `trials_per_gpu` sharing a GPU, from the GPU check's file at `path`;
    and a line on where the rates come from."""
    from study.training.rate_probe import Rates

    try:
        measured = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"no GPU rates at {path}: `python -m benchmarks --gpu-check` measures them on a machine with "
                        "the GPU and writes that file (copy it here), or pass --rates FILE") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the GPU rates at {path} ({exc}): run `python -m benchmarks --gpu-check` "
                        "again on the GPU machine, or pass --rates FILE") from None
    # The aggregate of k trials on one GPU against one, from the largest k measured up to trials_per_gpu: no
    # further gain is assumed past it. (Below the smallest k measured, it scales down in proportion.)
    sharing = {int(k): float(v) for k, v in measured["sharing"].items()}
    known = max((k for k in sharing if k <= trials_per_gpu), default=min(sharing))
    per_trial = sharing[known] * min(trials_per_gpu, known) / known / trials_per_gpu
    table = {(r["model"], bool(r["bn"]), bool(r["augment"]), float(r.get("width_multiplier", 1.0))): r
             for r in measured["rates"]}
    rates = {}
    for cfg in cell_configs(plan):
        key = _probe_key(cfg)
        if key not in table:
            width = f" x{key[3]:g}" if key[3] != 1.0 else ""
            raise UserError(f"the GPU rates at {path} have no {key[0]}{width} model with "
                            f"bn={'yes' if key[1] else 'no'}, augment={key[2]}: run `python -m benchmarks --gpu-check` "
                            "on the GPU machine again (it measures the sizes at their own widths: pass --rates FILE "
                            "for another)")
        rates[key] = Rates(table[key]["train"] * per_trial, table[key]["evaluate"] * per_trial, "cuda")
    source = (f"from the GPU check ({path}: {measured['machine']}, {measured['date']}, batch "
              f"{measured['batch_size']}), {trials_per_gpu} trial{'s' if trials_per_gpu > 1 else ''} per GPU at "
              f"{per_trial:.2f}x one trial's rate alone")
    return rates, source


def describe(cost: CostEstimate) -> str:
    """The dry run's printout: the plan, each stage's work, and the estimate with what it rests on."""
    lines = [f"Plan: {cost.cells} cells; {cost.train_images:,} training and {cost.val_images:,} validation images "
             f"per epoch; {cost.concurrency} trial{'s' if cost.concurrency > 1 else ''} at once on the {cost.device.upper()}."]
    for stage in cost.stages:
        expected = (f"about {stage.epochs_expected:,.0f} epochs with ASHA's early stops, at most "
                    if stage.epochs_expected < stage.epochs_most else "")
        lines.append(f"  {stage.name}: {stage.trainings} trainings, {expected}{stage.epochs_most:,} epochs "
                     f"({stage.epochs_most * cost.train_images:,} training images at most)")
    lines.append("One trial's seconds per training epoch, and per validation (with the train-eval pass):")
    for (model, bn, augment, width), (train_s, validation_s) in sorted(cost.epoch_s.items()):
        lines.append(f"  {model}{f' x{width:g}' if width != 1.0 else ''}, {'BN' if bn else 'no BN'}"
                     f"{', augmented' if augment else ''}: "
                     f"{train_s:.2f} s, {validation_s:.2f} s")
    expected, most = cost.wall_s
    unit = "GPU" if cost.device == "cuda" else "CPU"
    hours = [w / 3600 * cost.concurrency * cost.device_per_trial for w in cost.wall_s]
    lines.append(f"Estimated wall time: {_hours(expected)} (at most {_hours(most)}); {hours[0]:.2f} {unit}-hours "
                 f"(at most {hours[1]:.2f}).")
    lines.append(f"Rates {cost.rates_from}; study overhead {OVERHEAD_PER_TRIAL_S} s per trial and "
                 f"{OVERHEAD_PER_STAGE_S:.0f} s per stage (the study-overhead benchmark, CPU). The analysis is not "
                 "counted. Nothing was started; drop --dry-run to run it.")
    return "\n".join(lines)


def _hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def dry_run(plan: StudyPlan, gpus: int | None = None, rates_file: str | None = None) -> str:
    """`study run --dry-run`: the plan and its estimated cost on this machine, from a probe of its rates; or,
    with `gpus`, on that many GPUs, from the GPU check's rates (`rates_file`, default GPU_RATES_FILE)."""
    if gpus is not None:
        return _dry_run_on_gpus(plan, gpus, Path(rates_file) if rates_file else GPU_RATES_FILE)
    from dataclasses import replace

    budget = plan.budget
    device, slots = local_slots(budget.cpus_per_trial, budget.gpus_per_trial)
    concurrency = min(slots, plan.options.max_concurrent or slots)
    # On the CPU the probes run as the trials will: `concurrency` at once (one alone overstated their rate,
    # and the estimate fell 1.3-1.4x short of concurrent trials' real time).
    at_once = concurrency if device == "cpu" else 1
    rates = probe_rates(plan, lambda cfg: replace(cfg, device=device), at_once)
    source = f"measured on this machine just now, {at_once} probes at once as the trials will run (study.training.rate_probe)"
    text = describe(estimate(plan, concurrency, device, rates, source if at_once > 1 else RATES_FROM))
    if budget.gpus_per_trial > 0 and device == "cpu":
        text += ("\nThis budget gives each trial a GPU share and this machine has no GPU: the estimate is for its "
                 "CPUs, as with --gpus-per-trial 0. --gpus N estimates N GPUs from the GPU check's rates.")
    if device == "cpu":
        text += "\n" + cpu_line(budget.precision, "the study")
    return text + "\n" + resolution_line(plan)


def local_slots(cpus_per_trial: float, gpus_per_trial: float) -> tuple[str, int]:
    """The device trials would train on here and how many fit at once: the GPUs' shares when the trials ask for
    a GPU and this machine has one, else its CPU cores."""
    import os

    import torch

    gpus = torch.cuda.device_count()
    if gpus_per_trial > 0 and gpus:
        return "cuda", int(gpus / gpus_per_trial)
    return "cpu", max(1, int((os.cpu_count() or 1) // max(cpus_per_trial, 1)))


def cpu_line(precision: str, what: str) -> str:
    """The dry run's closing line on the CPU it measured: its rates hold for this kind of processor only."""
    import os

    from study.vocabulary.machine import cpu_has_bf16, cpu_name

    bf16 = cpu_has_bf16()
    return (f"This CPU: {cpu_name()}, {os.cpu_count()} cores, native bf16 instructions: {'yes' if bf16 else 'no'} "
            f"(precision {precision}: the rates above use what it picks here); the estimate is for this "
            f"kind of processor, so run --dry-run on the machine that will run {what}.")


def resolution_line(plan: StudyPlan) -> str:
    """What stage 2's seeds buy: the smallest difference between two cells a claim of the table decides."""
    from analysis.resolution import QUICK_SEED_SD, claim_half_width
    from search_spaces.claims import shipped_claims

    seeds, claims = plan.budget.confirm_seeds, len(plan.space.claims or shipped_claims())
    if seeds < 2:
        return "Stage 2 has fewer than 2 seeds a cell: no claim can be decided (no spread to measure)."
    width = claim_half_width(seeds, claims)
    return (f"Resolution: with {seeds} seeds a cell, a claim comparing two cells decides a difference above about "
            f"{width:.1f} seed-to-seed standard deviations (its interval's half-width, simultaneous over {claims} "
            f"claims): {100 * width * QUICK_SEED_SD:.1f} pp at the quick budget's spread on FashionMNIST "
            f"({100 * QUICK_SEED_SD:.1f} pp); the report measures the real spread.")


def _dry_run_on_gpus(plan: StudyPlan, gpus: int, rates_file: Path) -> str:
    share, note = plan.budget.gpus_per_trial, ""
    if share <= 0:  # a CPU budget (smoke, quick): each trial gets the share the full budget gives its model
        share = gpu_share({cfg.model.model for cfg in cell_configs(plan)})
        note = (f"\nThis budget gives trials no GPU; the estimate gives each {share:g} of one, as the full budget "
                "does (set it with --gpus-per-trial).")
    slots = gpus * max(1, math.floor(1 / share + 1e-9))
    concurrency = min(slots, plan.options.max_concurrent or slots)
    trials_per_gpu = math.ceil(concurrency / gpus)
    rates, source = gpu_check_rates(plan, rates_file, trials_per_gpu)
    return describe(estimate(plan, concurrency, "cuda", rates, source, share)) + note
