"""What every benchmark shares: medians with their spread, and the machine they ran on."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import torch

from study.vocabulary.machine import cpu_name


@dataclass(frozen=True)
class Measured:
    """The median of several runs, with the smallest and largest."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Measured":
        if not values:
            raise ValueError("no measurements to summarise")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def __str__(self) -> str:
        return f"{self.median:,.0f} ({self.low:,.0f}-{self.high:,.0f}, n={self.n})"


def machine() -> str:
    """One line naming the hardware: the GPU when the benchmark uses one, else the CPU."""
    cpu = cpu_name()
    line = f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    if torch.cuda.is_available():
        line = f"{torch.cuda.get_device_name(0)}; host {line}"
    return line


def versions() -> str:
    parts = [f"python {platform.python_version()}"]
    for package in ("torch", "torchvision", "ray", "optuna"):
        try:
            parts.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            pass
    return ", ".join(parts)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
