"""Bad input to the command line: one paragraph on stderr, exit status 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys


def _study(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "STUDY_DEBIAN_DATA_DIR": str(tmp_path / "no-debian"), "STUDY_DATA_CACHE": str(tmp_path / "no-cache")}
    return subprocess.run(
        [sys.executable, "-m", "study", *args], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )


def _assert_clean_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert "\n\n" not in result.stderr.strip()  # one paragraph
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def test_unknown_space(tmp_path, fake_data_dir):
    result = _study("run", "--space", "nosuch", "--data-dir", str(fake_data_dir), tmp_path=tmp_path)
    _assert_clean_error(result, "'nosuch'", "default", "study spaces")


def test_rate_of_one_and_a_half_in_a_user_space(tmp_path, fake_data_dir):
    space = tmp_path / "bad.yaml"
    space.write_text("scientific:\n  bn: [none, pre_act]\nfixed:\n  dropout: fc\n  p_fc: 1.5\n")
    result = _study("run", "--space", str(space), "--data-dir", str(fake_data_dir), tmp_path=tmp_path)
    _assert_clean_error(result, "'p_fc'", "1.5", "[0, 1)")


def test_missing_dataset_names_the_three_ways_to_get_it(tmp_path):
    result = _study("run", "--budget", "smoke", tmp_path=tmp_path)
    _assert_clean_error(result, "--data-dir", "dataset-fashion-mnist", "torchvision")


def test_corrupt_file(tmp_path, fake_data_dir):
    bad = tmp_path / "corrupt"
    bad.mkdir()
    for f in fake_data_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    images = bad / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])  # truncated
    result = _study("run", "--budget", "smoke", "--data-dir", str(bad), tmp_path=tmp_path)
    _assert_clean_error(result, "train-images-idx3-ubyte")


def test_spaces_lists_the_shipped_spaces(tmp_path):
    result = subprocess.run([sys.executable, "-m", "study", "spaces"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"default", "blog_ablation", "placement", "dropout_rate", "full"} <= set(names)
