"""The smaller cases of issue 29: each ends with one paragraph and exit 2 instead of "this is a bug" (or silence)."""

from __future__ import annotations

import re

import pytest

from study.cli import main


def _run_argv(fake_data_dir, tmp_path, *extra):
    return ["run", "--budget", "smoke", "--data-dir", str(fake_data_dir), "--storage", str(tmp_path / "e"), *extra]


@pytest.mark.parametrize("extra, needle", [
    (["--cpus-per-trial", "0"], "--cpus-per-trial must be a number above 0"),
    (["--cpus-per-trial", "nan"], "--cpus-per-trial must be a number of at least 0, got nan"),
    (["--cpus-per-trial", "0", "--dry-run"], "--cpus-per-trial must be a number above 0"),  # was "0.00 CPU-hours"
    (["--reduction-factor", "inf"], "--reduction-factor must be above 1 and finite (ASHA keeps the best 1/F at each rung), got inf"),
    (["--grace-period", "10", "--max-epochs", "3"], "--grace-period 10 is not below the 3 epochs of a trial"),
    (["--grace-period", "3"], "--grace-period 3 is not below the 3 epochs of a trial (the smoke budget)"),
])
def test_options_no_study_can_use_are_refused_before_anything_starts(fake_data_dir, tmp_path, capsys, extra, needle):
    assert main(_run_argv(fake_data_dir, tmp_path, *extra)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert needle in err and "this is a bug" not in err
    assert not (tmp_path / "e").exists()  # nothing written: no study.json with Infinity in it


def test_cv_and_final_refuse_zero_or_nan_cpus(tmp_path, capsys):
    from study.retraining.common import Resources, RetrainError

    for cpus in (0.0, float("nan"), float("inf")):
        with pytest.raises(RetrainError, match="needs a finite number of CPUs above 0"):
            Resources.resolve({}, cpus, None, None, None)


@pytest.mark.parametrize("content", [
    b"\x00\x01\x02binary\xff\xfe\x00garbage" * 50,
    "trial_id,status,epochs,best_val_acc,bn,dropout\nt1,completed,3,0.9,none,none\n".encode("utf-16"),
])
def test_a_binary_or_utf16_csv_to_analyze_is_a_clear_error(tmp_path, capsys, content):
    path = tmp_path / "trials.csv"
    path.write_bytes(content)
    assert main(["analyze", str(path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert str(path) in err and ("UTF-8" in err or "readable CSV" in err) and "this is a bug" not in err


def test_an_unwritable_out_is_a_clear_error(tmp_path, capsys):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / "analysis"))
    from synthetic import make_epochs, make_trials, write_experiment

    df = make_trials(0, n_per_cell=3)
    experiment = write_experiment(tmp_path / "exp", df, make_epochs(df))
    (tmp_path / "a_file").write_text("not a folder")
    assert main(["analyze", str(experiment), "--out", str(tmp_path / "a_file" / "report")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot write the report to" in err and "a_file" in err and "--out" in err


@pytest.mark.parametrize("command", ["study cv", "study final"])
def test_the_lock_message_of_cv_and_final_does_not_suggest_a_name_option(tmp_path, command):
    from study.runtime.lock import ExperimentInUse, experiment_lock

    with experiment_lock(str(tmp_path), "study run"):
        with pytest.raises(ExperimentInUse) as caught:
            with experiment_lock(str(tmp_path), command):
                pass
    message = str(caught.value)
    assert "--name" not in message and f"then run `{command}` again" in message
    with experiment_lock(str(tmp_path), "study cv"):
        with pytest.raises(ExperimentInUse, match="under another --name"):
            with experiment_lock(str(tmp_path), "study run"):
                pass


def test_report_md_escapes_text_that_came_from_the_tables():
    from analysis.report import Block, to_markdown

    hostile = "<img src=x onerror=alert(1)> [click](http://example.com) *bold* a|b"
    md = to_markdown([Block("p", f"cell {hostile}"), Block("ul", [hostile]),
                      Block("table", ["cell", "score"], [[hostile, 0.9]])])
    assert not re.search(r"(?<!\\)<img", md) and not re.search(r"(?<!\\)\]\(http", md)  # no raw tag, no link
    table_row = next(line for line in md.splitlines() if line.startswith("| \\<img"))
    assert table_row.count(" | ") == 1  # the pipe in the text does not add a column
    assert "\\*bold\\*" in table_row
    # The report's own prose keeps reading normally.
    assert to_markdown([Block("p", "p < 0.05 for `study run`")]) == "p < 0.05 for `study run`\n"


def test_an_immutable_table_the_command_must_rewrite_is_a_clear_error(monkeypatch, capsys, tmp_path):
    # `chattr +i trials.csv`, then the run that rewrites it: EPERM from the rename over it ("this is a bug" before).
    import errno

    from study import cli

    def run(args):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(tmp_path / "trials.csv"))

    monkeypatch.setattr(cli, "cmd_run", run)
    assert cli.main(["run", "--budget", "smoke"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"cannot write {tmp_path / 'trials.csv'} (Operation not permitted)" in err and "chattr -i" in err


def test_a_run_that_must_rewrite_an_immutable_trials_csv_names_it(smoke_study, smoke_data_dirs, tmp_path, capsys):
    import shutil
    import subprocess

    if shutil.which("chattr") is None:
        pytest.skip("needs chattr")
    copy = tmp_path / "experiments" / "smoke"
    shutil.copytree(smoke_study, copy, ignore=shutil.ignore_patterns("report"))
    trials = copy / "trials.csv"
    if subprocess.run(["chattr", "+i", str(trials)], capture_output=True).returncode:
        pytest.skip("this filesystem has no immutable flag (or we may not set it)")
    try:
        _, train_only = smoke_data_dirs
        argv = ["run", "--space", str(smoke_study.parent.parent / "two_cells.yaml"), "--budget", "smoke",
                "--num-samples", "8", "--data-dir", str(train_only), "--storage", str(copy.parent), "--name", "smoke",
                "--no-analyze"]
        assert main(argv) == 2
    finally:
        subprocess.run(["chattr", "-i", str(trials)], check=False)
    err = " ".join(capsys.readouterr().err.split())
    assert f"cannot write {trials} (Operation not permitted)" in err and "this is a bug" not in err
