"""What the study could resolve: the smallest difference between two cells it would likely detect.

A test that finds nothing says little unless one knows how large a difference it
could have found. From the replicates' spread (the median over cells of the
replicate standard deviation) and the typical number of replicates per cell, the
detectable difference of a two-sided 5% Welch test with 80% power is
``(t(0.975, df) + t(0.80, df)) · sd · sqrt(2/n)`` with ``df = 2(n - 1)``, and the
Nadeau-Bengio term added to ``1/n`` for CV folds (``se_ratio``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from analysis.design import Design
from analysis.results import Resolution

POWER = 0.80
METHOD = (
    "smallest difference between two cells detected with 80% power by a two-sided 5% t-test, from the median "
    "replicate standard deviation over cells and the median number of replicates per cell"
)


def detectable_difference(design: Design, unit: str) -> Resolution | None:
    """None when no cell has two scored replicates (no spread to measure)."""
    cells = design.cells[design.cells["n"] >= 2]
    if cells.empty:
        return None
    sd = float(np.median(cells["sd"]))
    n = int(np.median(cells["n"]))
    ratio = float(np.median(cells["se2"] / cells["sd"].clip(lower=1e-12) ** 2 - 1.0 / cells["n"]))
    df = 2 * (n - 1)
    factor = sps.t.ppf(0.975, df) + sps.t.ppf(POWER, df)
    detectable = float(factor * sd * math.sqrt(2 * (1.0 / n + max(ratio, 0.0))))
    return Resolution(detectable, sd, n, unit, METHOD)


# The quick budget's seed-to-seed standard deviation of best validation accuracy on FashionMNIST
# (1,500 images, 4 epochs): 0.5-0.9 pp over the cells of earlier runs; the middle of that range.
QUICK_SEED_SD = 0.007


def claim_half_width(seeds: int, n_claims: int) -> float:
    """The half-width of a claim's simultaneous interval for a difference between two cells of `seeds`
    replicates each, in seed-to-seed standard deviations (Bonferroni over `n_claims`, Welch df 2(n - 1)).
    A claim decides an effect larger than about this; the budget's seeds are sized by it."""
    if seeds < 2:
        return math.inf
    level = 1.0 - 0.05 / max(n_claims, 1)
    return float(sps.t.ppf(1 - (1 - level) / 2, 2 * (seeds - 1)) * math.sqrt(2.0 / seeds))
