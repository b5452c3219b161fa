"""study.runtime.working_dir: a command started in a Ray job's working directory leaves it."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from study.runtime.working_dir import JOB_CONFIG, absolute_paths, in_job_working_dir, leave_job_working_dir
from study.vocabulary.errors import UserError


@pytest.fixture
def in_job(monkeypatch, tmp_path):
    """This process as Ray's job supervisor starts a command: the job's config set, in its unpacked folder."""
    package = tmp_path / "_ray_pkg_0123"
    package.mkdir()
    monkeypatch.setenv(JOB_CONFIG, json.dumps({"runtime_env": {"working_dir": "gcs://_ray_pkg_0123.zip"}}))
    monkeypatch.chdir(package)
    return package


def test_only_a_job_with_a_working_dir_counts(monkeypatch):
    monkeypatch.delenv(JOB_CONFIG, raising=False)
    assert not in_job_working_dir()
    monkeypatch.setenv(JOB_CONFIG, json.dumps({"runtime_env": {"env_vars": {"A": "1"}}}))
    assert not in_job_working_dir()
    monkeypatch.setenv(JOB_CONFIG, "not json")
    assert not in_job_working_dir()


def test_local_paths_become_absolute_and_uris_and_space_names_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("")
    args = argparse.Namespace(path="exp", storage="s3://bucket/prefix", data_dir="~/data", space="default", out=None)
    assert absolute_paths(args) == ["path", "data_dir"]
    assert args.path == str(tmp_path / "exp") and args.data_dir == os.path.expanduser("~/data")
    assert args.storage == "s3://bucket/prefix" and args.space == "default"
    args.space = "mine.yaml"
    assert absolute_paths(args) == ["space"] and args.space == str(tmp_path / "mine.yaml")


def test_a_job_moves_to_a_folder_of_its_own_and_survives_the_loss_of_its_working_dir(in_job, tmp_path):
    args = argparse.Namespace(storage=str(tmp_path / "storage"), data_dir="data", space="default")
    folder = leave_job_working_dir(args)
    assert args.data_dir == str(in_job / "data")  # resolved where the job started
    assert os.getcwd() == str(folder) and folder != in_job
    in_job.rmdir()  # what Ray's runtime-environment agent does to the unpacked package
    assert os.path.relpath("a/b", start="a") == "b"  # needs os.getcwd(): fails in a deleted folder


def test_a_relative_storage_in_a_job_is_refused_with_what_to_pass(in_job):
    with pytest.raises(UserError, match=r"--storage 'experiments' is a relative path.*s3://BUCKET/PREFIX"):
        leave_job_working_dir(argparse.Namespace(storage="experiments"))
    assert os.getcwd() == str(in_job)


def test_outside_a_job_nothing_changes(monkeypatch, tmp_path):
    monkeypatch.delenv(JOB_CONFIG, raising=False)
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(storage="experiments", data_dir="data")
    assert leave_job_working_dir(args) is None
    assert os.getcwd() == str(tmp_path) and args.storage == "experiments" and args.data_dir == "data"
