"""An experiment's files in local or remote storage, through pyarrow's filesystem layer: the same calls read
and write a local directory or a URI such as ``s3://bucket/prefix/name`` (the study writes through them, the
analysis reads a remote experiment through them). pyarrow and pandas only: no Ray, no PyTorch."""

from __future__ import annotations

import fnmatch
import io
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.fs

from study.vocabulary.tables import is_uri


def filesystem_for(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it, for a local path or a URI."""
    if is_uri(uri):
        return pyarrow.fs.FileSystem.from_uri(uri)
    return pyarrow.fs.LocalFileSystem(), uri


def folders_in(folder: str) -> list[str]:
    """Names of the folders directly in `folder` (local or a URI), sorted; none if it is absent."""
    fs, root = filesystem_for(folder)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    return sorted(info.base_name for info in infos if info.type == pyarrow.fs.FileType.Directory)


def files_in(folder: str, pattern: str = "*") -> list[str]:
    """Names of the files directly in `folder` (local or a URI) that match `pattern`, sorted; none if it is absent."""
    fs, root = filesystem_for(folder)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    names = (info.base_name for info in infos if info.type == pyarrow.fs.FileType.File)
    return sorted(name for name in names if fnmatch.fnmatch(name, pattern))


def write_text(experiment_uri: str, filename: str, text: str) -> None:
    write_bytes(experiment_uri, filename, text.encode())


def write_bytes(experiment_uri: str, filename: str, data: bytes) -> None:
    """Write a file of the experiment whole or not at all: a kill mid-write leaves the old file.

    Locally through a temporary file renamed over the old one; an object store's PUT
    is already all or nothing.
    """
    fs, root = filesystem_for(experiment_uri)
    fs.create_dir(root, recursive=True)
    if is_uri(experiment_uri):
        with fs.open_output_stream(f"{root}/{filename}") as stream:
            stream.write(data)
        return
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{filename}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp's file is private; a table is as readable as any file
        os.replace(tmp, Path(root) / filename)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _read_umask() -> int:
    mask = os.umask(0)  # at import, before the driver starts threads: the only way to read it
    os.umask(mask)
    return mask


UMASK = _read_umask()


def read_text(experiment_uri: str, filename: str) -> str | None:
    data = read_bytes(experiment_uri, filename)
    return None if data is None else data.decode()


def read_bytes(experiment_uri: str, filename: str) -> bytes | None:
    fs, root = filesystem_for(experiment_uri)
    path = f"{root}/{filename}"
    if fs.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as stream:
        return stream.read()


def write_csv(experiment_uri: str, filename: str, frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    write_text(experiment_uri, filename, buffer.getvalue())


def write_json(experiment_uri: str, filename: str, data: dict) -> None:
    write_text(experiment_uri, filename, json.dumps(data, indent=2, default=str) + "\n")
