"""One command at a time per experiment directory.

`study run`, `study cv` and `study final` write into the experiment directory and
resume what they find there; two at once would resume each other's half-written
state. `experiment_lock` holds an exclusive `flock` on ``EXPERIMENT/.study.lock``
for the whole command and writes the holder (host, pid, command, start time) into
it, for the message a second command gets. The kernel releases the lock when the
holder ends, however it ends, so a killed run leaves nothing to clean up (the file
stays, empty). On a network filesystem this needs one with locks (NFSv4 has them).

Object storage (``s3://...``) has no locks. `study run` of an experiment there locks
the driver's local copy of its journals instead (`StudyPlan.lock_dir`), which stops a
second run on the same machine but not on another one; `study cv` and `study final`
there are not locked. docs/faults.md says to run one command at a time per experiment name.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from study.vocabulary.errors import UserError
from study.vocabulary.tables import is_uri

LOCK_FILE = ".study.lock"


class ExperimentInUse(UserError):
    """Another command is running on the same experiment directory."""


@contextmanager
def experiment_lock(experiment: str, command: str, *, create: bool = False, named: str | None = None):
    """Hold the experiment's lock while the block runs; `ExperimentInUse` at once when another command holds it.

    `create`: make the directory (a new study); otherwise a missing one is left for the
    command to report. `named`: the experiment as the message names it, where the lock
    is not in its directory (a remote experiment's local copy).
    """
    path = Path(experiment) / LOCK_FILE
    if is_uri(experiment) or not (create or path.parent.is_dir()):
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExperimentInUse(_in_use_message(named or str(path.parent), _holder(fd), command)) from None
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "command": command,
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        _write(fd, json.dumps(holder))
        try:
            yield
        finally:
            _write(fd, "")  # released: no holder to name
    finally:
        os.close(fd)  # releases the lock


def _write(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)


def _holder(fd: int) -> dict | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "null")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _in_use_message(experiment: str, holder: dict | None, command: str = "study run") -> str:
    """What `command`, refused, says: who holds the experiment, and what this command can do instead (only
    `study run` has --name; `study cv` and `study final` work on the experiment they are given)."""
    who = (f"`{holder.get('command')}` (pid {holder.get('pid')} on host {holder.get('host')}, since "
           f"{holder.get('started')})" if holder else "another command")
    instead = ("or run this one under another --name" if command == "study run" else
               f"then run `{command}` again (it resumes or adds to what is there)")
    return f"experiment {experiment} is in use by {who}; wait until it ends, {instead}"
