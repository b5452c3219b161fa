"""Write and delete a probe object at a storage URI, in a child process that a time limit (or Ctrl-C) can end.

pyarrow's filesystems retry inside C++: on `gs://` without credentials (no metadata server to ask) its
calls sleep in a retry loop for many minutes, where neither a timeout of ours nor Python's signal handlers
can reach them. A child process can always be killed, so the probe runs there, and the driver waits at
most `timeout_s` seconds for it (`subprocess.run` kills the child when the wait ends or is interrupted).
"""

from __future__ import annotations

import subprocess
import sys

PROBE_TIMEOUT_S = 25.0  # an object store answers a write in a second; a retry loop does not end by itself

# The child: the same calls every node makes when it writes there (or, with "read", a listing of the folder).
# Exit 0 and "ok", or exit 3 and the error.
_CHILD = r"""
import sys
import pyarrow.fs
uri, mode = sys.argv[1], sys.argv[2]
try:
    fs, root = pyarrow.fs.FileSystem.from_uri(uri)
    if mode == "read":
        fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    else:
        fs.create_dir(root, recursive=True)
        probe = root + "/.study-write-check"
        with fs.open_output_stream(probe) as stream:
            stream.write(b"")
        fs.delete_file(probe)
except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid (an unknown scheme) is a ValueError
    print(type(exc).__name__ + ": " + " ".join(str(exc).split())[:300])
    sys.exit(3)
print("ok")
"""


class StorageProbeError(Exception):
    """The probe failed (the message is pyarrow's) or did not answer in time (`timed_out`)."""

    def __init__(self, message: str, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


def probe_storage(uri: str, timeout_s: float = PROBE_TIMEOUT_S, read_only: bool = False) -> None:
    """Return when a probe object can be written to and deleted from `uri` (with `read_only`, when its folder can be
    listed); else raise `StorageProbeError`."""
    mode = "read" if read_only else "write"
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, uri, mode], capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise StorageProbeError(f"no answer in {timeout_s:.0f} s", timed_out=True) from None
    if done.returncode == 0:
        return
    lines = (done.stdout.strip() or done.stderr.strip() or f"the probe exited {done.returncode}").splitlines()
    raise StorageProbeError(lines[-1][:400])
