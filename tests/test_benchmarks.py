"""The benchmarks run and compare like with like (their numbers are not checked: speed is noisy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import accuracy, gpu_check, gpu_sharing, precision, profile_step, study_overhead, throughput
from benchmarks.sections import overhead_section, update_results
from benchmarks.common import Measured
from benchmarks.standard_pipeline import make_loader, torchvision_root
from study.vocabulary.config import DataConfig
from study.data.device_data import load_split, normalize

REPO = Path(__file__).resolve().parents[1]


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
    assert len(result.bf16) == 2 and all(0.0 <= acc <= 1.0 for acc in result.bf16)


def test_bf16_is_compared_with_fp32_seed_by_seed():
    # bf16 0.1 pp below fp32 on every seed, while the seeds themselves spread 2 pp: paired, that is a difference.
    result = accuracy.AccuracyResult("medium", 1, None, 100, [0.90, 0.92, 0.88], [0.9, 0.9, 0.9],
                                     [0.899, 0.919, 0.879])
    assert result.bf16_difference == pytest.approx(-0.001) and result.bf16_standard_error == pytest.approx(0, abs=1e-9)
    assert result.bf16_verdict == "different"
    noisy = accuracy.AccuracyResult("medium", 1, None, 100, [0.90, 0.92, 0.88], [0.9] * 3, [0.91, 0.91, 0.89])
    assert noisy.bf16_verdict == "same within seed noise"  # +1, -1, +1 pp: mean +0.33, standard error 0.67


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


# Stands in for a GPU machine's Python, which has torch and torchvision and nothing else the project uses.
ONLY_TORCH = """
import importlib.abc, importlib.machinery, sys

class Refuse(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (not installed on a GPU machine)")

    def exec_module(self, module):
        pass

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in {"ray", "optuna", "pandas", "matplotlib", "yaml"}:
            return importlib.machinery.ModuleSpec(name, Refuse())

sys.meta_path.insert(0, NotInstalled())
"""


def test_gpu_check_dry_run_runs_every_part_with_only_torch_and_torchvision(tmp_path):
    """`--gpu-check --device cpu`: each section written (others kept), the checks' table, the rates file."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(ONLY_TORCH)
    results, rates = tmp_path / "RESULTS.md", tmp_path / "rates.json"
    update_results(results, "cpu overhead", "kept")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--gpu-check", "--device", "cpu", "--results",
                           str(results), "--rates", str(rates)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = results.read_text()
    for key in ("throughput", "precision", "profile", "sharing", "gpu-check", "overhead"):
        assert text.count(f"<!-- begin cpu {key} -->") == 1, key
    assert "kept" in text and "host reads per epoch" in text and "share of the matmul rate" in text
    assert "| medium model against the standard pipeline (the lower of its two factor settings) |" in done.stdout
    written = json.loads(rates.read_text())
    assert {(r["model"], r["bn"], r["augment"]) for r in written["rates"]} == {
        ("medium", bn, augment) for bn in (False, True) for augment in (False, True)}
    assert all(r["train"] > 0 and r["evaluate"] > 0 for r in written["rates"])
    assert written["sharing"]["1"] == 1.0 and written["sharing"]["2"] > 0


def test_gpu_check_sets_each_measurement_against_its_target():
    def throughput_row(images_per_s, ratio):
        return throughput.ThroughputRow("medium", "slowest", 54_000, Measured.of([images_per_s]),
                                        Measured.of([images_per_s / ratio]), 8, "bf16+channels_last", 1e7, 100.0)

    def sharing_row(trials, images_per_s, peak_mb):
        return gpu_sharing.SharingRow(trials, Measured.of([images_per_s]), images_per_s / trials, 1000 / trials,
                                      peak_mb)

    large = precision.PrecisionRow("large", "pre_act", 1, 256, {"fp32": 400.0, "fp32+channels_last": 500.0,
                                                                "bf16": 900.0, "bf16+channels_last": 1000.0},
                                   {"fp32": 100.0, "bf16": 400.0}, "bf16+channels_last", None, 1.34e8)
    found = gpu_check.checks({
        "throughput": [throughput_row(60_000, 12.0)], "precision": [large], "profile": [],
        "sharing": [sharing_row(1, 10_000, 300), sharing_row(4, 24_000, 200), sharing_row(8, 30_000, 150)]})

    def check(start: str) -> gpu_check.Check:
        [match] = [c for c in found if c.name.startswith(start)]
        return match

    assert check("medium model against the standard pipeline").met  # 12x >= 10x
    assert check("medium model, one 54,000-image epoch").measured == "0.90 s"  # 54,000 / 60,000 img/s
    assert check("medium model, one 54,000-image epoch").met
    # 1,000 img/s x 134 MFLOP = 134 GFLOP/s: 34% of bf16's 400
    assert check("large model's training step").measured.startswith("34%")
    assert not check("large model's training step").met
    assert check("large, bn=pre_act: bf16 + channels_last against fp32").measured == "2.50x"
    assert check("4 trials, each capped").met and not check("8 trials, each capped").met  # 200 <= 250; 150 > 125
    assert not check("4 trials on one GPU").met  # 2.4x < 2.5x
    assert check("4 trials on one GPU").verdict == "missed" and check("large, bn=pre_act").verdict == ""


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


def test_gpu_check_without_a_gpu_says_how_to_run_its_dry_run(monkeypatch):
    from benchmarks.__main__ import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA GPU on this machine.*--gpu-check --device cpu"):
        main(["--gpu-check"])
