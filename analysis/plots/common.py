"""What every plot shares: BatchNorm colours, resolution, and writing a PNG."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

BN_COLORS = {"none": "#7f7f7f", "pre_act": "#1f77b4", "post_act": "#d62728"}
DPI = 110
MAX_CURVE_CELLS = 8


def bn_color(bn: str, i: int) -> str:
    return BN_COLORS.get(bn, f"C{i}")


def save_png(fig: Figure, path: Path, tight: bool = True) -> Path:
    """Write a PNG. Large grids lay themselves out (`tight=False`): a tight bounding box
    renders the figure twice, which is slow for many panels."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight" if tight else None)
    return path
