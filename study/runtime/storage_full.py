"""A full disk (or quota) under the experiment stops the stage cleanly, as Ctrl-C does, and the same command resumes.

Three things make that work:

- `StorageWatch` (`study.runtime.storage_watch`), a Tune callback, stops the run at the first trial that
  failed for lack of space (Tune's own graceful stop, as a signal would), instead of letting Tune start trial
  after trial that fail the same way;
- `install_whole_file_uploads` (in the driver and in each trial's worker) makes Tune's copies into a local
  experiment directory (its experiment state, `tuner.pkl`, the searcher's state, checkpoints) write each file
  under a temporary name and rename it over the old one: a copy cut short by a full disk leaves the previous,
  whole file (an object store's upload is already all or nothing);
- `StorageFull`, raised by `interruption.fit` and caught by the command line for any write that ran out of space,
  which prints what happened and the resume command (exit 74, EX_IOERR of sysexits.h).
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How the errors read once a worker's exception has become text (Ray's RayTaskError, Tune's error file).
FULL_WORDS = ("No space left on device", "Disk quota exceeded", "[Errno 28]", "[errno 28]")
EXIT_CODE = 74


class StorageFull(Exception):
    """A write of the stage failed for lack of space; `detail` is the failing write's message."""

    def __init__(self, detail: str, saved: bool = True):
        super().__init__(detail)
        self.detail, self.saved = detail, saved


def is_storage_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or an exception it was raised from or carries (Ray wraps a worker's), is a full disk."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        if any(word in str(exc) for word in FULL_WORDS):
            return True
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return False


# --------------------------------------------------------------------------- whole-file copies


def install_whole_file_uploads() -> None:
    """Route Tune's copies into local directories through `whole_file_copy` (once per process)."""
    from ray.train._internal import storage

    if getattr(storage._pyarrow_fs_copy_files, "_whole_files", False):
        return
    original = storage._pyarrow_fs_copy_files

    def copy(source, destination, source_filesystem=None, destination_filesystem=None, **kwargs):
        local = _local_destination(destination, destination_filesystem)
        if local is None:
            return original(source, destination, source_filesystem=source_filesystem,
                            destination_filesystem=destination_filesystem, **kwargs)
        return whole_file_copy(original, source, local, source_filesystem, destination_filesystem, **kwargs)

    copy._whole_files = True
    storage._pyarrow_fs_copy_files = copy


def _local_destination(destination: str, filesystem) -> str | None:
    """The local path a copy writes to, or None when it writes to an object store."""
    import pyarrow.fs

    if filesystem is None:
        return None if "://" in str(destination) else str(destination)
    if isinstance(filesystem, pyarrow.fs.LocalFileSystem):
        return str(destination)
    return None


def whole_file_copy(copy_files, source, destination: str, source_filesystem, destination_filesystem, **kwargs):
    """`copy_files` into a temporary sibling of `destination`, then each file renamed into place: a copy that
    fails (a full disk) leaves every file at `destination` as it was, and the partial copy is removed."""
    staging = f"{destination.rstrip('/')}.partial-{uuid.uuid4().hex[:8]}"
    try:
        if os.path.isdir(destination) or _is_folder(source, source_filesystem):
            os.makedirs(staging)  # as Ray makes the destination folder before it copies one into it
        copy_files(source, staging, source_filesystem=source_filesystem,
                   destination_filesystem=destination_filesystem, **kwargs)
        # A file, or a folder where there is none or an empty one (a new checkpoint): renamed whole, at once.
        if os.path.isfile(staging) or not os.path.exists(destination) or not os.listdir(destination):
            os.replace(staging, destination)
            return
        for folder, _, files in os.walk(staging):
            target = os.path.join(destination, os.path.relpath(folder, staging))
            os.makedirs(target, exist_ok=True)
            for name in files:
                os.replace(os.path.join(folder, name), os.path.join(target, name))
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)
        elif os.path.exists(staging):
            os.remove(staging)


def _is_folder(source, filesystem) -> bool:
    """Whether the copy's source is a folder (on its own filesystem, or a local path)."""
    if filesystem is None:
        return os.path.isdir(str(source))
    try:
        import pyarrow.fs

        return filesystem.get_file_info(str(source)).type == pyarrow.fs.FileType.Directory
    except (OSError, ValueError, TypeError):
        return False
