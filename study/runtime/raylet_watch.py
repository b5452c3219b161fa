"""The embedded Ray's node manager (raylet) ending under a running command: the tool's own message and the resume
command, instead of Ray's log dump and exit 1.

When the raylet dies (killed, out of memory), Ray's core worker in the driver notices a few seconds later and ends
the process from C++ (exit 1): no Python exception, so no handler of ours runs. A daemon thread polls the raylet
process that `ray.init` started (every half second) and, when it has ended, says what happened and exits first.
Every file of the experiment is whole at any moment (tables and snapshots are written whole), so the same command
resumes from the last snapshot Tune wrote.
"""

from __future__ import annotations

import atexit
import os
import shlex
import sys
import textwrap
import threading

EXIT_CODE = 75  # EX_TEMPFAIL (sysexits.h): nothing is wrong with the input; run it again
POLL_S = 0.5
_stopped = threading.Event()


def watch_raylet() -> bool:
    """Start watching the raylet of the Ray this process started; False when there is none to watch (a joined
    cluster's raylet is the cluster's own)."""
    try:
        from ray._private import ray_constants, worker

        process = worker._global_node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process
    except (AttributeError, KeyError, IndexError, ImportError):
        return False
    _stopped.clear()
    atexit.register(_stopped.set)  # registered after ray.init's shutdown, so it runs first: a normal exit is quiet
    threading.Thread(target=_watch, args=(process,), daemon=True, name="raylet-watch").start()
    return True


def stop_watching() -> None:
    _stopped.set()


def _watch(process) -> None:
    while not _stopped.wait(POLL_S):
        code = process.poll()
        if code is None:
            continue
        # Shut down on purpose meanwhile: the process exiting, or `ray.shutdown()` (a second command in the same
        # process, a test), which disconnects the driver before it ends the raylet.
        if _stopped.is_set() or not _driver_connected():
            return
        sys.stderr.write(raylet_message(process.pid, code, sys.argv[1:]) + "\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)


def _driver_connected() -> bool:
    import ray

    return ray.is_initialized()


def raylet_message(pid: int, code: int, argv: list[str]) -> str:
    how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    text = (f"error: Ray's node manager on this machine (raylet, pid {pid}) ended unexpectedly ({how}: killed, or "
            "out of memory), and every training with it; the command stopped. Every file already written is whole, "
            "finished trainings are kept, and the same command resumes from the last snapshot Ray Tune wrote "
            "(unfinished trainings restart from their last checkpoint).")
    return (textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False)
            + f"\nResume with the same command:\n  {shlex.join(['study', *argv])}")
