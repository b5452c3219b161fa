"""conclusions.json, report.md and report.html are written whole or not at all: a kill or a full disk mid-write
leaves the previous report (they were written in place, and a kill left them 0 bytes)."""

from __future__ import annotations

import os

import pytest

from analysis import analyze, files
from analysis.pipeline import load_conclusions
from analysis.report import write_report
from synthetic import cells, make_epochs, make_trials, write_experiment

REPORT_FILES = ("conclusions.json", "report.md", "report.html")


@pytest.fixture
def experiment(tmp_path):
    df = make_trials(0, cell_list=cells(bn=["none", "pre_act"], dropout=["none", "fc"]), n_per_cell=4)
    return write_experiment(tmp_path / "exp", df, make_epochs(df))


def test_a_write_cut_short_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "report.md"
    files.write_whole(path, "the previous report\n")

    class Killed(BaseException):
        pass

    real_fdopen = os.fdopen

    def fdopen_that_dies(fd, mode):
        stream = real_fdopen(fd, mode)
        original = stream.write

        def write(data):
            original(data[: len(data) // 2])
            stream.flush()
            raise Killed  # as SIGKILL would, half-way through

        stream.write = write
        return stream

    monkeypatch.setattr(files.os, "fdopen", fdopen_that_dies)
    with pytest.raises(Killed):
        files.write_whole(path, "a new report, never finished\n" * 100)
    assert path.read_text() == "the previous report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_on_a_full_disk_the_previous_report_stays_whole(experiment, tmpfs):
    disk, _ = tmpfs(3)
    out = disk / "report"
    analyze(experiment, out, n_boot=20, importance=False)
    before = {name: (out / name).read_bytes() for name in REPORT_FILES}
    ballast = disk / "ballast"
    with open(ballast, "wb") as stream:  # fill the disk to its last byte
        try:
            while True:
                stream.write(b"\0" * 65536)
                stream.flush()
        except OSError:
            pass
    conclusions = load_conclusions(out / "conclusions.json")
    with pytest.raises(OSError):
        write_report(conclusions, {}, out)
    with pytest.raises(OSError):
        files.write_whole(out / "conclusions.json", "{}" * 100_000)
    assert {name: (out / name).read_bytes() for name in REPORT_FILES} == before
    assert all(len(data) > 100 for data in before.values())
