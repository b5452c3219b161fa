"""Number formatting for sentences and tables: accuracies as percentages."""

from __future__ import annotations

import math


def ok(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def pct(x, digits: int = 2) -> str:
    """0.91234 -> '91.23%'."""
    return f"{100 * x:.{digits}f}%" if ok(x) else "n/a"


def pp(x, digits: int = 2, sign: bool = True) -> str:
    """A difference of accuracies in percentage points: 0.0021 -> '+0.21 pp'."""
    if not ok(x):
        return "n/a"
    return f"{100 * x:+.{digits}f} pp" if sign else f"{100 * x:.{digits}f} pp"


def ci_pct(low, high, digits: int = 2) -> str:
    """'95% CI 91.02-91.44%'; 'no interval' when a bound is missing."""
    if not (ok(low) and ok(high)):
        return "no interval (too few replicates)"
    return f"95% CI {100 * low:.{digits}f}–{100 * high:.{digits}f}%"


def ci_pp(low, high, digits: int = 2) -> str:
    if not (ok(low) and ok(high)):
        return "no interval"
    return f"95% CI {100 * low:+.{digits}f} to {100 * high:+.{digits}f} pp"


def num(x, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if ok(x) else "n/a"


def ci_num(low, high, digits: int = 3) -> str:
    if not (ok(low) and ok(high)):
        return "no interval"
    return f"95% CI {low:.{digits}g} to {high:.{digits}g}"


def pvalue(p) -> str:
    if not ok(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


# How a search-only analysis is confirmed: one phrase for every sentence that says so.
CONFIRM = "`study run` without --search-only, or `study cv EXPERIMENT`"
SEARCH_ONLY = (
    "search trials only: nothing is tested until the selected configurations are retrained on replicates "
    f"({CONFIRM})"
)


def is_accuracy(metric: str) -> bool:
    return "acc" in metric
