"""What processor this is, read from /proc/cpuinfo (no PyTorch): the project names it with every figure."""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_name() -> str:
    """The processor's model name ("unknown CPU" where /proc/cpuinfo does not say)."""
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_has_bf16() -> bool:
    """Whether the CPU computes bf16 in hardware (avx512_bf16 or amx_bf16); False where it cannot be told."""
    try:
        flags = CPUINFO.read_text()
    except OSError:  # not Linux: no way to tell
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
