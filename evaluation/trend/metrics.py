"""The study's metrics (paper 002 §4.3) over recommendation rows, mean ± 95% CI over seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

from evaluation.harness import confidence_interval
from evaluation.trend.ranking import RecRow

METRICS: dict[str, Callable[[list[RecRow]], float]] = {
    "Category similarity (%)": lambda rows: 100 * statistics.fmean(
        r.category_similarity for r in rows),
    "Same category (%)": lambda rows: 100 * statistics.fmean(r.same_category for r in rows),
    "Gender alignment (%)": lambda rows: 100 * statistics.fmean(r.gender_ok for r in rows),
    "Popularity MAE (×100)": lambda rows: 100 * statistics.fmean(
        r.popularity_error for r in rows),
}


def summarise(runs: list[list[RecRow]]) -> dict[str, tuple[float, float]]:
    """Metric → (mean over seeds, 95% CI half-width, t-distribution: NaN for one seed) — seeds
    with no rows are skipped."""
    out = {}
    for name, metric in METRICS.items():
        values = [metric(rows) for rows in runs if rows]
        if not values:
            out[name] = (math.nan, math.nan)
            continue
        out[name] = (statistics.fmean(values), confidence_interval(values)[1])
    return out


def trend_group(tau: float) -> str:
    return "Low" if tau < 1 / 3 else ("Medium" if tau < 2 / 3 else "High")
