"""`plan_study`: options, space and data resolved before Ray starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from study.tuning.budgets import BUDGETS, GPU_SHARE_BY_MODEL
from study.tuning.planning import SAMPLERS, StudyError, StudyOptions, plan_study


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    """Options on a dataset large enough for every budget (the full one validates on 6,000 images)."""
    from study.data.fake_data import write_fake_fashion_mnist

    data = write_fake_fashion_mnist(tmp_path_factory.mktemp("full_size"), n_train=6100, n_test=10, seed=0)
    storage = tmp_path_factory.mktemp("storage")

    def make(**kwargs) -> StudyOptions:
        return StudyOptions(**{"data_dir": str(data), "storage": str(storage), **kwargs})

    return make


def test_the_validation_split_must_fit_in_the_data(fake_data_dir, tmp_path):
    with pytest.raises(StudyError, match="the full budget validates on 6000 images, but .* has only 600"):
        plan_study(StudyOptions(data_dir=str(fake_data_dir), storage=str(tmp_path), budget="full"))


def test_gpu_budget_shares_the_gpu_by_model_size(options):
    assert plan_study(options(space="bn_dropout", budget="full")).budget.gpus_per_trial == GPU_SHARE_BY_MODEL["medium"]
    small = plan_study(options(space="bn_dropout", budget="full", model="small"))
    assert small.budget.gpus_per_trial == GPU_SHARE_BY_MODEL["small"]
    # blog_ablation compares sizes: the large model's cells decide
    assert plan_study(options(space="blog_ablation", budget="full")).budget.gpus_per_trial == GPU_SHARE_BY_MODEL["large"]


def test_explicit_gpu_share_and_cpu_budgets_are_kept(options):
    assert plan_study(options(space="bn_dropout", budget="full", gpus_per_trial=1.0)).budget.gpus_per_trial == 1.0
    assert plan_study(options(space="bn_dropout", budget="quick")).budget.gpus_per_trial == 0


def test_trial_count_must_split_evenly_over_cells(options):
    with pytest.raises(StudyError, match="--num-samples 13 is not a multiple of the 12 cells"):
        plan_study(options(space="bn_dropout", num_samples=13))
    assert plan_study(options(space="bn_dropout", num_samples=24)).samples_per_cell == 2


# ---- the sampler of each cell's study (`--sampler`)


@pytest.mark.parametrize(
    "budget, num_samples, sampler",
    [("smoke", None, "qmc"), ("quick", None, "qmc"), ("full", None, "tpe"), ("quick", 12 * 15, "qmc"),
     ("quick", 12 * 16, "tpe")],
)
def test_the_default_sampler_is_resolved_from_the_trials_per_cell_and_recorded(options, budget, num_samples, sampler):
    plan = plan_study(options(space="bn_dropout", budget=budget, num_samples=num_samples))
    assert plan.options.sampler is None and plan.sampler == sampler
    assert plan.record()["searcher"]["sampler"] == sampler


def test_an_explicit_sampler_is_kept_and_recorded_with_its_settings(options):
    records = {}
    for sampler in SAMPLERS:
        plan = plan_study(options(space="bn_dropout", budget="full", sampler=sampler))
        assert plan.sampler == sampler
        records[sampler] = plan.record()["searcher"]
    assert records["qmc"]["sampler_settings"] == {"qmc_type": "sobol", "scramble": True}
    assert records["tpe"]["sampler_settings"] == {"n_startup_trials": 8, "constant_liar": True}  # 24 per cell
    assert records["random"]["sampler_settings"] == {}
    # The sampler is part of the plan a resume must match.
    assert len({json.dumps(r, sort_keys=True) for r in records.values()}) == 3


@pytest.mark.parametrize("bad", ["sobol", "TPE", ""])
def test_a_bad_sampler_fails_before_the_space_and_data_are_read(tmp_path, bad):
    missing = str(tmp_path / "no-data")  # would be a FileNotFoundError if the data were read first
    with pytest.raises(ValueError, match=rf"unknown sampler {bad!r}; choose one of qmc, tpe, random"):
        plan_study(StudyOptions(space="no-such-space", data_dir=missing, sampler=bad))


def test_a_bad_sampler_on_the_command_line_is_a_one_line_error(tmp_path, capsys):
    from study.cli import main

    assert main(["run", "--sampler", "sobol", "--data-dir", str(tmp_path), "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error: unknown sampler 'sobol'; choose one of qmc, tpe, random" in err
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("sampler", [None, "random"])
def test_build_tuner_gives_the_searcher_the_planned_sampler(options, monkeypatch, tmp_path, sampler):
    from study.tuning import run as tuning

    monkeypatch.setattr(tuning.tune, "Tuner", lambda trainable, **kwargs: kwargs)  # no Tuner, no Ray
    plan = plan_study(options(space="bn_dropout", budget="quick", sampler=sampler, max_concurrent=1,
                              storage=str(tmp_path)))
    searcher = tuning.build_tuner(plan)["tune_config"].search_alg
    assert searcher.sampler == plan.sampler == (sampler or "qmc")


def test_a_resume_that_lost_trials_does_not_overwrite_trials_csv(tmp_path):
    pytest.importorskip("ray")
    from study.tuning.run import refuse_fewer_rows

    (tmp_path / "trials.csv").write_text("trial_id,status\n" + "".join(f"t{i},completed\n" for i in range(5)))
    refuse_fewer_rows(str(tmp_path), 5)  # as many rows: written
    refuse_fewer_rows(str(tmp_path / "new"), 1)  # no table yet
    with pytest.raises(StudyError, match="returned 1 trials, but its trials.csv holds 5.*nothing was overwritten"):
        refuse_fewer_rows(str(tmp_path), 1)


def test_only_a_remote_experiment_keeps_a_local_copy_of_its_journals(options, tmp_path):
    local = plan_study(options())
    assert not local.is_remote and local.journal_dir() == Path(local.experiment_uri) / "optuna"
    assert local.lock_dir() == local.experiment_uri
    remote = plan_study(options(storage=f"file://{tmp_path}/bucket"))
    assert remote.is_remote and remote.journal_dir().parent.name.startswith(remote.options.experiment_name() + "-")
    assert remote.lock_dir() == str(remote.journal_dir().parent)  # object storage has no locks
    elsewhere = plan_study(options(storage=f"file://{tmp_path}/other-bucket"))
    assert elsewhere.journal_dir() != remote.journal_dir()  # same name, another experiment: another copy


def test_precision_is_a_fixed_setting_of_the_study_from_the_budget_or_the_option(fake_data_dir, tmp_path):
    def precision(**options) -> str:
        plan = plan_study(StudyOptions(data_dir=str(fake_data_dir), storage=str(tmp_path), **options))
        return plan.record()["param_space"]["precision"]

    assert precision(budget="smoke") == "fp32"  # the tests' tiny trials skip the probe
    # The smoke budget's sizes (the fake data is small), with the quick budget's default and an option.
    sizes = {"budget": "smoke"}
    assert precision(**sizes, precision="auto") == "auto" and precision(**sizes, precision="bf16") == "bf16"
    assert BUDGETS["quick"].precision == BUDGETS["full"].precision == "auto"
