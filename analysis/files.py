"""Report files written whole or not at all, as the experiment's tables are.

A temporary file in the same folder renamed over the old one (`os.replace` is atomic on one filesystem): a
command killed mid-write, or a full disk, leaves the previous conclusions.json, report.md or report.html whole
instead of an empty or cut-short file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_whole(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8) to `path` whole or not at all; returns `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)  # mkstemp's file is private; a report is as readable as any file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
