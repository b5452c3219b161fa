"""`study run --dry-run`: the work a plan implies, ASHA's expected epochs, and the wall time from measured rates."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from study.cli import main
from study.training.rate_probe import Rates, measure_rates
from study.tuning import cost
from study.tuning.planning import StudyOptions, plan_study
from study.vocabulary.config import DataConfig, ModelConfig, OptimConfig, TrialConfig
from study.vocabulary.errors import UserError


def ray_asha_epochs(max_t: int, grace: int, factor: float, trials_per_cell: int, cells: int, seed: int) -> float:
    """Mean epochs per trial under Ray Tune's own asynchronous successive halving (one `_Bracket`, as each cell's
    ASHAScheduler holds), the cell's trials on random scores one after another."""
    from ray.tune.schedulers.async_hyperband import _Bracket
    from ray.tune.schedulers.trial_scheduler import TrialScheduler

    rng = np.random.default_rng(seed)
    epochs = 0
    for _ in range(cells):
        bracket = _Bracket(min_t=grace, max_t=max_t, reduction_factor=factor, s=0)
        for i, score in enumerate(rng.normal(size=trials_per_cell)):
            trial = SimpleNamespace(trial_id=str(i))
            for epoch in range(1, max_t + 1):
                epochs += 1
                if bracket.on_result(trial, epoch, score) == TrialScheduler.STOP:
                    break
    return epochs / (cells * trials_per_cell)


@pytest.mark.parametrize(("max_t", "grace", "factor", "per_cell"), [(10, 3, 3, 6), (4, 2, 2, 4), (30, 3, 3, 24), (16, 1, 2, 8)])
def test_expected_epochs_under_asha_are_ray_tunes(max_t, grace, factor, per_cell):
    expected = cost.asha_epochs_per_trial(max_t, grace, factor, trials_per_cell=per_cell)
    assert expected == pytest.approx(ray_asha_epochs(max_t, grace, factor, per_cell, cells=1500, seed=1), rel=0.03)
    assert grace <= expected < max_t
    assert cost.asha_epochs_per_trial(max_t, grace, factor, early_stopping=False) == max_t


def test_few_trials_per_cell_go_on_more_often_than_successive_halving():
    """The findings budget: 6 trials a cell, 10 epochs, rungs at 3 and 9. Synchronous halving would train
    3 + 6/3 + 1/9 = 5.1 epochs a trial; a cell's first trial always goes on, and more than an epoch more do."""
    assert cost.asha_epochs_per_trial(10, 3, 3, trials_per_cell=6) > 3 + 6 / 3 + 1 / 9 + 1
    assert cost.asha_epochs_per_trial(10, 3, 3, trials_per_cell=1) == 10  # alone in its cell: never stopped


def test_the_probe_measures_this_machine():
    cfg = TrialConfig(model=ModelConfig(model="small"), data=DataConfig(batch_size=64), device="cpu")
    rates = measure_rates(cfg, threads=1, images=256, seconds=0.2)
    assert rates.device == "cpu" and rates.train > 0
    assert rates.evaluate > rates.train  # a forward pass alone is cheaper than forward, backward and step


def test_the_probe_outlasts_a_short_one_cycle_schedule():
    """A one-cycle schedule planned for one epoch refuses the probe's second; the probe plans its own."""
    cfg = TrialConfig(model=ModelConfig(model="small"), data=DataConfig(batch_size=64), device="cpu",
                      optim=OptimConfig(schedule="onecycle"), max_epochs=1)
    rates = measure_rates(cfg, threads=1, images=64, seconds=0.2)  # many one-step epochs in 0.2 s
    assert rates.train > 0


@pytest.fixture
def smoke_plan(fake_data_dir, tmp_path):
    return plan_study(StudyOptions(space="bn_dropout", budget="smoke", data_dir=str(fake_data_dir), storage=str(tmp_path)))


def test_the_wall_time_is_the_work_over_the_rates_and_the_concurrency(smoke_plan):
    keys = {cost._probe_key(cfg) for cfg in cost.cell_configs(smoke_plan)}
    assert {key[0] for key in keys} == {"medium"} and {key[1] for key in keys} == {True, False}
    slow = cost.estimate(smoke_plan, 1, "cpu", {key: Rates(1000.0, 4000.0, "cpu") for key in keys})
    fast = cost.estimate(smoke_plan, 2, "cpu", {key: Rates(2000.0, 8000.0, "cpu") for key in keys})
    search, stage_two = slow.stages
    assert search.trainings == smoke_plan.num_samples and stage_two.trainings == 12 * 2  # 12 cells, 2 seeds
    assert search.epochs_most == smoke_plan.num_samples * 3 and search.epochs_expected < search.epochs_most
    train_s, validation_s = 400 / 1000, (100 + 100) / 4000  # 400 trained; 100 validated, 100 train-eval
    assert all(seconds == pytest.approx((train_s, validation_s)) for seconds in slow.epoch_s.values())
    fixed = sum(s.trainings * cost.OVERHEAD_PER_TRIAL_S + cost.OVERHEAD_PER_STAGE_S for s in slow.stages)
    # The search validates every epoch; stage 2 once per training, after its last epoch.
    training = ((search.epochs_expected + stage_two.epochs_most) * train_s
                + (search.epochs_expected + stage_two.trainings) * validation_s)
    assert slow.wall_s[0] == pytest.approx(training + fixed)
    assert fast.wall_s[0] == pytest.approx(training / 4 + fixed)  # twice the rate, twice the trials at once
    text = cost.describe(slow)
    assert "search: 24 trainings" in text and "Nothing was started" in text


def test_dry_run_prints_the_plan_and_starts_nothing(fake_data_dir, tmp_path, capsys):
    argv = ["run", "--space", "bn_dropout", "--budget", "smoke", "--data-dir", str(fake_data_dir), "--storage", str(tmp_path),
            "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Plan: 12 cells" in out and "Estimated wall time:" in out and "measured on this machine" in out
    assert "native bf16 instructions: " in out and "Resolution: with 2 seeds a cell" in out
    assert "2 probes at once as the trials will run" in out  # smoke: 1 CPU a trial, 2 at once on 2 cores
    assert list(tmp_path.iterdir()) == []  # no experiment directory, no lock, no Ray


def gpu_rates_file(path, sharing, models=("medium",)):
    rates = [{"model": model, "bn": bn, "augment": augment, "train": 40_000.0, "evaluate": 160_000.0}
             for model in models for bn in (False, True) for augment in (False, True)]
    path.write_text(json.dumps({"machine": "a GPU", "device": "cuda", "date": "2026-12-02", "batch_size": 256,
                                "rates": rates, "sharing": sharing}))
    return path


def test_an_estimate_for_gpus_shares_each_gpu_as_the_gpu_check_measured(smoke_plan, tmp_path):
    # 4 trials per GPU (the medium model's share, 1/4), which the check found 3x one trial's throughput together.
    rates_file = gpu_rates_file(tmp_path / "rates.json", {"1": 1.0, "2": 1.8, "4": 3.0})
    rates, source = cost.gpu_check_rates(smoke_plan, rates_file, trials_per_gpu=4)
    assert all(r.train == pytest.approx(40_000 * 3.0 / 4) for r in rates.values())
    assert "4 trials per GPU at 0.75x" in source and "a GPU, 2026-12-02" in source
    # Beyond the largest count measured, the aggregate is assumed to grow no further.
    rates, _ = cost.gpu_check_rates(smoke_plan, rates_file, trials_per_gpu=8)
    assert all(r.train == pytest.approx(40_000 * 3.0 / 8) for r in rates.values())
    one, two = (cost._dry_run_on_gpus(smoke_plan, gpus, rates_file) for gpus in (1, 2))
    assert "4 trials at once on the CUDA" in one and "8 trials at once on the CUDA" in two
    assert "the full budget does" in one  # the smoke budget gives trials no GPU: 1/4 of one, as the full budget


def test_an_estimate_for_gpus_says_what_is_missing(smoke_plan, tmp_path, capsys):
    with pytest.raises(UserError, match="python -m benchmarks --gpu-check"):
        cost.gpu_check_rates(smoke_plan, tmp_path / "absent.json", 4)
    with pytest.raises(UserError, match="no medium model with bn=no, augment=False"):
        cost.gpu_check_rates(smoke_plan, gpu_rates_file(tmp_path / "r.json", {"1": 1.0}, models=("large",)), 4)
    assert main(["run", "--budget", "smoke", "--gpus", "2"]) == 2
    assert "--gpus and --rates go with --dry-run" in capsys.readouterr().err
