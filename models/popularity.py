"""NormPop (paper 002 §3.5): "the min-max normalized popularity score of the candidate item".

One definition for the simulator (popularity per catalog position) and the rule stage
(decayed popularity counts per item id; items absent from the counts have popularity 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def min_max(values: Sequence[float]) -> list[float]:
    """Min-max normalisation into [0, 1]; constant (or empty) input gives all 0."""
    if not values:
        return []
    low, high = min(values), max(values)
    span = high - low
    return [(v - low) / span if span > 0 else 0.0 for v in values]


def norm_pop(popularity: Mapping[str, float]) -> dict[str, float]:
    """NormPop per item id: :func:`min_max` over the mapping's values."""
    return dict(zip(popularity, min_max(list(popularity.values())), strict=True))
