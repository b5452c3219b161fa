"""The benchmarks run and compare like with like (their numbers are not checked: speed is noisy)."""

from __future__ import annotations

import pytest
import torch

from benchmarks import accuracy, profile_step, study_overhead, throughput
from benchmarks.__main__ import main, overhead_section, update_results
from benchmarks.common import Measured
from benchmarks.standard_pipeline import make_loader, torchvision_root
from study.vocabulary.config import DataConfig
from study.data.device_data import load_split, normalize


def test_standard_pipeline_sees_the_same_images_as_the_project(fake_data_dir, tmp_path):
    split = load_split(DataConfig(data_dir=str(fake_data_dir), val_size=100, train_size=64), "cpu")
    root = torchvision_root(fake_data_dir, tmp_path)
    loader = make_loader(root, split.train_idx, 64, augment=False, shuffle=False, workers=0,
                         device=torch.device("cpu"), seed=0)
    x, y = next(iter(loader))
    torch.testing.assert_close(x, normalize(split.train_x), atol=1e-5, rtol=1e-5)
    assert torch.equal(y, split.train_y)


def test_throughput_measures_both_pipelines(fake_data_dir):
    rows = throughput.run(str(fake_data_dir), "cpu", ["small"], {"small": 64}, batch_size=32, repeats=2,
                          workers=[0], val_size=100)
    assert [(r.model, r.factors, r.images) for r in rows] == [("small", "fastest", 64), ("small", "slowest", 64)]
    for row in rows:
        assert row.project.n == row.baseline.n == 2
        assert row.project.median > 0 and row.baseline.median > 0


def test_accuracy_trains_both_pipelines_per_seed(fake_data_dir):
    result = accuracy.run(str(fake_data_dir), "cpu", seeds=2, epochs=1, train_images=64, batch_size=32,
                          workers=0, val_size=100)
    assert len(result.project) == len(result.baseline) == 2
    assert all(0.0 <= acc <= 1.0 for acc in result.project + result.baseline)
    assert result.difference == pytest.approx(sum(result.project) / 2 - sum(result.baseline) / 2)


@pytest.mark.parametrize("project, baseline, verdict", [
    ([0.90, 0.91, 0.92], [0.905, 0.915, 0.895], "same within seed noise"),  # 0.5 pp apart, seeds spread 1 pp
    ([0.90, 0.901, 0.899], [0.85, 0.851, 0.849], "different"),  # 5 pp apart, seeds spread 0.1 pp
])
def test_the_accuracy_verdict_compares_the_difference_with_the_seed_spread(project, baseline, verdict):
    result = accuracy.AccuracyResult("medium", 1, None, 100, project, baseline)
    assert result.verdict == verdict


def test_results_file_replaces_only_the_measured_section(tmp_path):
    path = tmp_path / "RESULTS.md"
    update_results(path, "cuda throughput", "GPU numbers")
    update_results(path, "cpu throughput", "CPU throughput")
    update_results(path, "cpu accuracy", "old CPU accuracy")
    update_results(path, "cpu accuracy", "new CPU accuracy")
    text = path.read_text()
    assert "GPU numbers" in text and "CPU throughput" in text and "new CPU accuracy" in text
    assert "old CPU accuracy" not in text
    assert text.count("<!-- begin cpu accuracy -->") == 1


def test_an_epoch_reads_device_values_once_whatever_its_batch_count(fake_data_dir):
    """The profiler sees no per-batch host read (each would make the host wait for a GPU)."""
    rows = {n: profile_step.run(str(fake_data_dir), "cpu", ["small"], {"small": n}, batch_size=32, val_size=100)
            for n in (64, 256)}
    for row in rows[64] + rows[256]:
        assert row.host_reads == 2  # train_loss and train_acc, read after the last batch
        assert 0 < row.in_ops_s <= row.wall_s and row.gpu_busy_s is None
    assert {r.batches for r in rows[64]} == {2} and {r.batches for r in rows[256]} == {8}


def test_profile_counts_a_host_read_added_per_batch(fake_data_dir, monkeypatch):
    """The check above can fail: a per-batch `.item()` in the step shows up in the count."""
    from study.training import loop as training

    real_cross_entropy = training.F.cross_entropy

    def reading_cross_entropy(*args, **kwargs):
        loss = real_cross_entropy(*args, **kwargs)
        loss.item()
        return loss

    monkeypatch.setattr(training.F, "cross_entropy", reading_cross_entropy)
    [row, _] = profile_step.run(str(fake_data_dir), "cpu", ["small"], {"small": 256}, batch_size=32, val_size=100)
    assert row.host_reads == 2 + row.batches


def test_benchmark_command_writes_a_section_per_benchmark(fake_data_dir, tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    update_results(results, "cpu overhead", "kept")
    assert main(["--smoke", "--device", "cpu", "--data-dir", str(fake_data_dir), "--results", str(results),
                 "--only", "throughput", "profile"]) == 0
    text = results.read_text()
    for key in ("cpu throughput", "cpu profile", "cpu overhead"):
        assert text.count(f"<!-- begin {key} -->") == 1
    assert "## CPU: where an epoch's time goes" in text and "host reads per epoch" in text and "kept" in text
    assert "Updated" in capsys.readouterr().out


def test_study_overhead_splits_into_per_trial_and_once():
    # 40 s once, 0.5 s per trial: 46 s of overhead with 12 trials, 58 s with 36.
    assert study_overhead.split_overhead((12, 46.0), (36, 58.0)) == pytest.approx((0.5, 40.0))
    with pytest.raises(ValueError, match="more trials"):
        study_overhead.split_overhead((36, 58.0), (12, 46.0))


def test_overhead_section_names_both_study_sizes():
    seconds = Measured.of([1.0, 2.0])
    result = study_overhead.OverheadResult(12, 5.0, seconds, seconds, seconds, seconds, 900.0, seconds,
                                           Measured.of([2.0, 4.0]))
    text = overhead_section(result)
    assert "12-trial and a 36-trial study" in text and "overhead s once per study" in text
    assert "| one-line display (the default) | 1.5 (1.0-2.0, n=2) | 0.50x |" in text
