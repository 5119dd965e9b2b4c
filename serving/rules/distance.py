"""Store distance (paper 002 §3.6): Haversine distance and a distance filter/penalty.

    d = 2 R · asin( sqrt( sin²(Δφ/2) + cos φ₁ · cos φ₂ · sin²(Δλ/2) ) ),   R ≈ 6371 km

The paper computes the distance between the shopper and an item's store but does not rank by it
("available for downstream filtering"); we offer both a hard filter (``max_km``) and an optional
linear penalty, saturating at ``scale_km``: ``penalty = min(d / scale_km, 1)``.
"""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float,
                 radius_km: float = EARTH_RADIUS_KM) -> float:
    """Great-circle distance in km between two (lat, lon) points in degrees (§3.6)."""
    for name, value, bound in (("lat1", lat1, 90), ("lat2", lat2, 90), ("lon1", lon1, 180),
                               ("lon2", lon2, 180)):
        if not -bound <= value <= bound or math.isnan(value):
            raise ValueError(f"{name}={value} is outside [-{bound}, {bound}] degrees")
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlam = phi2 - phi1, math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * radius_km * math.asin(min(1.0, math.sqrt(h)))


def within_distance(distance_km: float | None, max_km: float | None) -> bool:
    """The filter: keep when no limit is set, the distance is unknown, or it is within it."""
    return max_km is None or distance_km is None or distance_km <= max_km


def distance_penalty(distance_km: float | None, scale_km: float = 20.0) -> float:
    """Penalty in [0, 1]: 0 at the store door, 1 at ``scale_km`` and beyond; 0 when unknown."""
    if distance_km is None:
        return 0.0
    if scale_km <= 0:
        raise ValueError("scale_km must be > 0")
    return min(distance_km / scale_km, 1.0)
