"""One command at a time per experiment directory.

`study run`, `study cv` and `study final` write into the experiment directory and
resume what they find there; two at once would resume each other's half-written
state. `experiment_lock` holds ``EXPERIMENT/.study.lock`` (created exclusively,
holding the holder's host, pid, command and start time) for the whole command. A
lock left by a process that no longer runs on this host (a killed run) is stale and
taken over; one held on another host cannot be checked from here, so the message
says whose it is and how to clear it.

Object storage (``s3://...``) has no exclusive create, so experiments there are not
locked: run one command at a time per experiment name (README says so).
"""

from __future__ import annotations

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
def experiment_lock(experiment: str, command: str, *, create: bool = False):
    """Hold the experiment's lock while the block runs; `ExperimentInUse` at once when another command holds it.

    `create`: make the directory (a new study); otherwise a missing one is left for the
    command to report.
    """
    path = Path(experiment) / LOCK_FILE
    if is_uri(experiment) or not (create or path.parent.is_dir()):
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "command": command,
              "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _acquire(path, holder)
    try:
        yield
    finally:
        if _read(path) == holder:  # still ours
            path.unlink(missing_ok=True)


def _acquire(path: Path, holder: dict) -> None:
    for _ in range(2):  # a second try after removing a stale lock
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = _read(path)
            if other is not None and _stale(other):
                path.unlink(missing_ok=True)
                continue
            raise ExperimentInUse(_in_use_message(path, other)) from None
        with os.fdopen(fd, "w") as f:
            json.dump(holder, f)
        return
    raise ExperimentInUse(_in_use_message(path, _read(path)))


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # absent, or being written this instant
    return data if isinstance(data, dict) else None


def _stale(holder: dict) -> bool:
    """Held by a process of this host that has ended."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    return not process_alive(holder["pid"])


def process_alive(pid: int) -> bool:
    """Whether a process of this host with that pid runs (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _in_use_message(path: Path, holder: dict | None) -> str:
    who = (f"`{holder.get('command')}` (pid {holder.get('pid')} on host {holder.get('host')}, since "
           f"{holder.get('started')})" if holder else "another command")
    return (f"experiment {path.parent} is in use by {who}; wait until it ends, or run this one under another "
            f"--name. If that command is gone (e.g. its machine was lost), delete {path} and run this again.")
