"""`study run --dry-run`: the work a plan implies, ASHA's expected epochs, and the wall time from measured rates."""

from __future__ import annotations

import numpy as np
import pytest

from study.cli import main
from study.training.rate_probe import Rates, measure_rates
from study.tuning import cost
from study.tuning.planning import StudyOptions, plan_study
from study.vocabulary.config import DataConfig, ModelConfig, TrialConfig


def simulated_asha_epochs(max_t: int, grace: int, factor: float, trials: int, seed: int) -> float:
    """Mean epochs per trial of synchronous successive halving on random scores: at each rung only the
    best 1/factor of the trials there go on (the limit ASHA's asynchronous promotions approach)."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=trials)
    alive, trained, epochs, milestone = np.arange(trials), 0.0, 0.0, float(grace)
    while True:
        stop = min(milestone, max_t)
        epochs += len(alive) * (stop - trained)
        trained = stop
        if stop >= max_t:
            return epochs / trials
        keep = int(round(len(alive) / factor))
        alive = alive[np.argsort(-scores[alive])[:keep]]
        milestone *= factor


@pytest.mark.parametrize(("max_t", "grace", "factor"), [(4, 2, 2), (30, 3, 3), (3, 1, 2), (16, 1, 2)])
def test_expected_epochs_under_asha_match_successive_halving(max_t, grace, factor):
    expected = cost.asha_epochs_per_trial(max_t, grace, factor)
    assert expected == pytest.approx(simulated_asha_epochs(max_t, grace, factor, trials=3 ** 8, seed=0), rel=0.01)
    assert grace <= expected < max_t
    assert cost.asha_epochs_per_trial(max_t, grace, factor, early_stopping=False) == max_t


def test_the_probe_measures_this_machine():
    cfg = TrialConfig(model=ModelConfig(model="small"), data=DataConfig(batch_size=64), device="cpu")
    rates = measure_rates(cfg, threads=1, images=256, seconds=0.2)
    assert rates.device == "cpu" and rates.train > 0
    assert rates.evaluate > rates.train  # a forward pass alone is cheaper than forward, backward and step


@pytest.fixture
def smoke_plan(fake_data_dir, tmp_path):
    return plan_study(StudyOptions(budget="smoke", data_dir=str(fake_data_dir), storage=str(tmp_path)))


def test_the_wall_time_is_the_work_over_the_rates_and_the_concurrency(smoke_plan):
    keys = {cost._probe_key(cfg) for cfg in cost.cell_configs(smoke_plan)}
    assert {model for model, _, _ in keys} == {"medium"} and {bn for _, bn, _ in keys} == {True, False}
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
    argv = ["run", "--budget", "smoke", "--data-dir", str(fake_data_dir), "--storage", str(tmp_path), "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Plan: 12 cells" in out and "Estimated wall time:" in out and "measured on this machine" in out
    assert list(tmp_path.iterdir()) == []  # no experiment directory, no lock, no Ray
