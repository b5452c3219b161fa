"""A command started by `ray job submit --working-dir`: leave the working directory Ray lent it.

Ray's job API unpacks the submitted `--working-dir` into the node's runtime-resource
folder (`SESSION/runtime_resources/working_dir_files/_ray_pkg_HASH`) and starts the
command there. That folder is Ray's, not the command's: when a node's
runtime-environment agent first sets the package up for a worker, it unpacks it
afresh and deletes whatever lies at that path first (Ray's `WorkingDirPlugin.create`
calls `download_and_unpack_package(..., overwrite=True)`), and it deletes the package
once no worker of its node uses it. Nodes started with `ray start` on one machine
share one session folder, so the first trial on a worker node deletes the directory
the head's driver runs in and puts a new one at the same path. The driver's working
directory is then gone (`os.getcwd()` fails although the path exists again), and
anything that resolves a relative path fails with FileNotFoundError: Ray Tune's
listing of an experiment folder calls `os.path.relpath`, which calls `os.getcwd()`,
however absolute the paths the study passes are. Nodes on separate machines each
have their own folder, so there the head's copy is left alone; a command should not
rely on it either way.

So a command that finds itself in a job's working directory turns every path it was
given into an absolute one, then moves to a folder of its own
(`TEMP/bn-dropout-study/driver`) for the rest of its run. The modules it imports later
come from the installed package or, while it exists, the unpacked one (Python skips a
path entry that has gone). Outside a job nothing changes: an embedded Ray gives its
workers the driver's working directory as an import path, so it must stay the user's.
Pure Python, no Ray.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from study.vocabulary.errors import UserError
from study.vocabulary.tables import is_uri

# Set by Ray's job supervisor for the command it starts: the job's runtime environment, as JSON.
JOB_CONFIG = "RAY_JOB_CONFIG_JSON_ENV_VAR"
# The command-line options that name local files or folders, by attribute of the parsed arguments.
PATH_OPTIONS = ("path", "storage", "data_dir", "space", "rates", "out")


def in_job_working_dir() -> bool:
    """True when this process was started by Ray's job API with a `working_dir` (its current directory)."""
    raw = os.environ.get(JOB_CONFIG)
    if not raw:
        return False
    try:
        runtime_env = (json.loads(raw) or {}).get("runtime_env") or {}
    except (ValueError, AttributeError):
        return False
    return bool(runtime_env.get("working_dir"))


def absolute_paths(args, names=PATH_OPTIONS) -> list[str]:
    """Make each local path among `names` of `args` absolute, in place; returns the names changed.

    A URI (s3://...) is left as is, and so is a `--space` that names a shipped space
    rather than a file (no such file here).
    """
    changed = []
    for name in names:
        value = getattr(args, name, None)
        if not isinstance(value, str) or not value or is_uri(value):
            continue
        if name == "space" and not Path(value).expanduser().exists():
            continue
        absolute = os.path.abspath(os.path.expanduser(value))
        if absolute != value:
            setattr(args, name, absolute)
            changed.append(name)
    return changed


def driver_folder() -> Path:
    """The folder a job's driver works in: the study's own, under the machine's temporary folder."""
    folder = Path(tempfile.gettempdir()) / "bn-dropout-study" / "driver"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def leave_job_working_dir(args) -> Path | None:
    """In a job's working directory: absolute paths in `args`, then move to `driver_folder()`.

    Returns the folder moved to, or None outside a job (nothing changed). A relative
    `--storage` (the default `experiments` among them) is refused: it would put the
    experiment inside the unpacked package, which Ray deletes.
    """
    if not in_job_working_dir():
        return None
    storage = getattr(args, "storage", None)
    if isinstance(storage, str) and not is_uri(storage) and not os.path.isabs(os.path.expanduser(storage)):
        raise UserError(
            f"--storage {storage!r} is a relative path, and this command runs in the working directory that "
            "`ray job submit --working-dir` unpacked, which Ray deletes when the job no longer needs it: the "
            "experiment would go with it. Pass storage every node can reach, e.g. --storage s3://BUCKET/PREFIX "
            "(or an absolute path on a shared filesystem)"
        )
    absolute_paths(args)
    folder = driver_folder()
    os.chdir(folder)
    return folder
