"""Popularity and trendiness (paper 002 §3.3, §3.5).

- ``NormPop``: "the min-max normalized popularity score of the candidate item", here over the
  decayed popularity counts the stream keeps (docs/design.md: global counters use the same
  closed-form decay as user scores). Items absent from the counts have popularity 0.
- Shopper trendiness τ_u: the paper assigns it to simulated users (§3.3). Online we must *estimate*
  it; our reading: the score-weighted mean NormPop of the items the shopper engaged with,
  ``τ_u = Σ_i S(u,i)·NormPop_i / Σ_i S(u,i)`` — a shopper who keeps choosing popular items is
  trendy, and τ moves as their choices move.
- Popularity modulation (§3.5): ``1 − |τ_u − NormPop_i|^p`` with an even exponent ``p``
  (default 2, §4.2). Raising p tolerates small differences between τ and NormPop.
"""

from __future__ import annotations

from collections.abc import Mapping


def norm_pop(popularity: Mapping[str, float]) -> dict[str, float]:
    """Min-max normalised popularity in [0, 1]; a constant (or empty) mapping gives all 0."""
    if not popularity:
        return {}
    low, high = min(popularity.values()), max(popularity.values())
    span = high - low
    if span <= 0:
        return {item: 0.0 for item in popularity}
    return {item: (value - low) / span for item, value in popularity.items()}


def shopper_trendiness(scores: Mapping[str, float], normpop: Mapping[str, float],
                       default: float = 0.5) -> float:
    """Score-weighted mean NormPop of the shopper's items (our reading of §3.3 for live users).

    Items with non-positive score are ignored; a shopper with no history gets ``default``."""
    total = sum(s for s in scores.values() if s > 0)
    if total <= 0:
        return default
    return sum(s * normpop.get(item, 0.0) for item, s in scores.items() if s > 0) / total


def popularity_modulation(trendiness: float, normpop: float, p: int = 2) -> float:
    """§3.5: ``1 − |τ − NormPop|^p`` (``p`` a positive even integer); in [0, 1] for inputs in
    [0, 1], 1 when the item's popularity matches the shopper's trendiness."""
    if p <= 0 or p % 2:
        raise ValueError(f"popularity exponent p must be a positive even integer, got {p}")
    return 1.0 - abs(trendiness - normpop) ** p
