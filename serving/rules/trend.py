"""Popularity and trendiness (paper 002 §3.3, §3.5).

- ``NormPop`` (:func:`models.popularity.norm_pop`, shared with the simulator): min-max over the
  decayed popularity counts the stream keeps (docs/design.md: global counters use the same
  closed-form decay as user scores).
- Shopper trendiness τ_u: the paper assigns it to simulated users (§3.3). Online we must *estimate*
  it; our reading: the score-weighted mean NormPop of the items the shopper engaged with,
  ``τ_u = Σ_i S(u,i)·NormPop_i / Σ_i S(u,i)`` — a shopper who keeps choosing popular items is
  trendy, and τ moves as their choices move.
- Popularity modulation (§3.5): ``1 − |τ_u − NormPop_i|^p`` with an even exponent ``p``
  (default 2, §4.2). Raising p tolerates small differences between τ and NormPop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import numpy as np

Value = TypeVar("Value", float, np.ndarray)


def shopper_trendiness(scores: Mapping[str, float], normpop: Mapping[str, float],
                       default: float = 0.5) -> float:
    """Score-weighted mean NormPop of the shopper's items (our reading of §3.3 for live users).

    Items with non-positive score are ignored; a shopper with no history gets ``default``."""
    total = sum(s for s in scores.values() if s > 0)
    if total <= 0:
        return default
    return sum(s * normpop.get(item, 0.0) for item, s in scores.items() if s > 0) / total


def popularity_modulation(trendiness: float, normpop: Value, p: int = 2) -> Value:
    """§3.5: ``1 − |τ − NormPop|^p`` (``p`` a positive even integer); in [0, 1] for inputs in
    [0, 1], 1 when the item's popularity matches the shopper's trendiness. ``normpop`` may be
    an array (one value per candidate: the rule stage's call)."""
    if p <= 0 or p % 2:
        raise ValueError(f"popularity exponent p must be a positive even integer, got {p}")
    return 1.0 - abs(trendiness - normpop) ** p
