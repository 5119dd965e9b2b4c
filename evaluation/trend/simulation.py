"""Simulated years of shoppers (paper 002 §3.3, §4.1) for the study."""

from __future__ import annotations

from dataclasses import dataclass

from evaluation.trend.config import TrendStudyConfig


@dataclass
class World:
    """One simulated year: users, their purchases, end-of-year popularity."""

    seed: int
    sim: object
    purchases: list[dict]
    popularity: dict[str, float]


def simulate(items: list, cfg: TrendStudyConfig, seed: int) -> World:
    from models.simulation import ShopperSimulator

    sim = ShopperSimulator(items, n_users=cfg.users, seed=seed, drift=cfg.drift)
    purchases = sim.purchase_year(max_purchases=cfg.max_purchases, year=2025)
    popularity = dict(zip((i.item_id for i in items), sim.popularity, strict=True))
    return World(seed, sim, purchases, popularity)
