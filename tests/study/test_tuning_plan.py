"""`plan_study`: options, space and data resolved before Ray starts."""

from __future__ import annotations

import pytest

from study.budgets import GPU_SHARE_BY_MODEL
from study.planning import StudyError, StudyOptions, plan_study


@pytest.fixture
def options(fake_data_dir):
    def make(**kwargs) -> StudyOptions:
        return StudyOptions(data_dir=str(fake_data_dir), storage="/tmp/unused", **kwargs)

    return make


def test_gpu_budget_shares_the_gpu_by_model_size(options):
    assert plan_study(options(space="default", budget="full")).budget.gpus_per_trial == GPU_SHARE_BY_MODEL["medium"]
    small = plan_study(options(space="default", budget="full", model="small"))
    assert small.budget.gpus_per_trial == GPU_SHARE_BY_MODEL["small"]
    # blog_ablation compares sizes: the large model's cells decide
    assert plan_study(options(space="blog_ablation", budget="full")).budget.gpus_per_trial == GPU_SHARE_BY_MODEL["large"]


def test_explicit_gpu_share_and_cpu_budgets_are_kept(options):
    assert plan_study(options(space="default", budget="full", gpus_per_trial=1.0)).budget.gpus_per_trial == 1.0
    assert plan_study(options(space="default", budget="quick")).budget.gpus_per_trial == 0


def test_trial_count_must_split_evenly_over_cells(options):
    with pytest.raises(StudyError, match="--num-samples 13 is not a multiple of the 12 cells"):
        plan_study(options(space="default", num_samples=13))
    assert plan_study(options(space="default", num_samples=24)).samples_per_cell == 2
