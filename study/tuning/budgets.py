"""Budget presets: how much data, how many epochs and trials a study spends.

`smoke` is for tests (seconds, on tiny synthetic files), `quick` for the README
command on a 2-core CPU machine (the default space's search, stage 2 and report in
about 3 minutes when idle, with bf16), `full` for a GPU cluster. Every field can be
overridden from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from study.vocabulary.errors import UserError


@dataclass(frozen=True)
class Budget:
    name: str
    samples_per_cell: int  # trials per scientific cell
    max_epochs: int
    train_size: int | None  # stratified subset of the 54k training split; None = all of it
    val_size: int
    batch_size: int
    grace_period: int  # ASHA: epochs every trial gets before it can be stopped
    reduction_factor: float  # ASHA: keep the best 1/reduction_factor at each rung
    cpus_per_trial: float
    gpus_per_trial: float
    # Stage 2: each cell's best configuration is retrained on this many seeds, and
    # every conclusion comes from them (see study.retraining.cross_validation).
    confirm_seeds: int = 3
    # auto | fp32 | bf16 (study.training.numerics): auto measures what is fastest on each worker.
    precision: str = "auto"

    def with_overrides(self, **overrides) -> "Budget":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


BUDGETS = {
    "smoke": Budget(
        name="smoke", samples_per_cell=2, max_epochs=3, train_size=400, val_size=100, batch_size=64,
        grace_period=1, reduction_factor=2, cpus_per_trial=1, gpus_per_trial=0, confirm_seeds=2,
        precision="fp32",  # the tests' tiny trials: no probe to pay in every worker
    ),
    # 4 space-filling trials per cell select its best configuration (the best of 4 qmc draws lies within
    # 0.16 decades of any lr in the default range), 5 seeds confirm it. Seeds are sized by the claim table:
    # a claim comparing two cells decides differences above 2.5 seed-to-seed sds with 5 seeds (1.7 pp at
    # the 0.7 pp spread measured at this budget), 4.7 with 3, 1.7 with 8 (`analysis.resolution.
    # claim_half_width`). On the simulated default space at that spread, a planted 2 pp advantage of BN
    # before Dropout was supported in 2 of 30 studies with 3 seeds, 13 of 30 with 5 and 29 of 30 with 8;
    # 5 is the most that keeps the README command within 10 minutes on a 2-core CPU without bf16 (the
    # default space's 25 cells: 2 min 45 s on an idle AMD EPYC with bf16, search and stage 2 in 4 min 50 s
    # there in fp32).
    "quick": Budget(
        name="quick", samples_per_cell=4, max_epochs=4, train_size=1500, val_size=1000, batch_size=64,
        grace_period=2, reduction_factor=2, cpus_per_trial=1, gpus_per_trial=0, confirm_seeds=5,
    ),
    "full": Budget(
        name="full", samples_per_cell=24, max_epochs=30, train_size=None, val_size=6000, batch_size=256,
        grace_period=3, reduction_factor=3, cpus_per_trial=2, gpus_per_trial=0.25,  # by model: GPU_SHARE_BY_MODEL
        confirm_seeds=5,
    ),
    # A real answer on one machine: the default space on all 54,000 training images, 10 epochs, 6 trials per
    # cell (ASHA's rungs at 3 and 9), 5 seeds to confirm. One thread per trial, two at once: on a 2-core AMD
    # EPYC with bf16 (batch 256), two one-thread trials together trained 1.85x (medium, no BN), 1.13x (medium,
    # BN) and 1.05x (large, BN, augmented) the images of one two-thread trial. There the run took 1 h 59 min
    # (`--dry-run`: 1.7 h, at most 2.1 h), within the 150 minutes this budget is for (docs/findings).
    "findings": Budget(
        name="findings", samples_per_cell=6, max_epochs=10, train_size=None, val_size=6000, batch_size=256,
        grace_period=3, reduction_factor=3, cpus_per_trial=1, gpus_per_trial=0, confirm_seeds=5,
    ),
    # The headline recipe's search (search_spaces/headline.yaml): 6 trials per cell on a 12,000-image subset for
    # up to 9 epochs (ASHA's rungs at 3 and 9), 2 seeds to confirm each cell's best; `study final --max-epochs 30`
    # then trains the winner on all 60,000 images. One CPU per trial: two at once on a 2-core machine beat one
    # with both (1.15x, docs/headline.md).
    "headline": Budget(
        name="headline", samples_per_cell=6, max_epochs=9, train_size=12_000, val_size=6000, batch_size=256,
        grace_period=3, reduction_factor=3, cpus_per_trial=1, gpus_per_trial=0, confirm_seeds=2,  # on a GPU: 0.5
    ),
}


# A budget that trains on GPUs gives each trial this share of one GPU, by model size:
# one small network cannot keep a GPU busy, so several trials share it, fewer as
# the network grows. `--gpus-per-trial` overrides it.
GPU_SHARE_BY_MODEL = {"small": 0.125, "medium": 0.25, "large": 0.5}


def gpu_share(models) -> float:
    """The GPU share for a study whose trials train these model sizes (the largest decides)."""
    return max(GPU_SHARE_BY_MODEL[model] for model in models)


def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise UserError(f"unknown budget {name!r}; choose one of {', '.join(BUDGETS)}")
    return BUDGETS[name]
