"""Small statistics helpers: medians and spreads of repeated runs."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any


def summary(values: Iterable[float]) -> dict[str, float]:
    """Median, min, max and the interquartile range of ``values``."""
    data = sorted(float(v) for v in values)
    if not data:
        return {}
    out = {"median": statistics.median(data), "min": data[0], "max": data[-1], "n": len(data)}
    if len(data) >= 2:
        q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
        out["q1"], out["q3"] = q1, q3
    else:
        out["q1"] = out["q3"] = data[0]
    return out


def summarize_runs(runs: Sequence[dict[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """``{metric: summary}`` over the runs that report each metric."""
    return {m: summary(r[m] for r in runs if m in r) for m in metrics if any(m in r for r in runs)}


def median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else float("nan")


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator
