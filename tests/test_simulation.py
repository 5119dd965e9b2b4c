"""Trend-aware simulated shoppers (paper 002 §3.3): determinism, funnel, trendiness effect."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from models.catalog import CatalogItem
from models.demo_catalog import generate_demo_catalog, load_stores
from models.gender import gender_compatible
from models.simulation import ShopperSimulator
from streams.config import BEHAVIORS


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[CatalogItem], Path]:
    out = tmp_path_factory.mktemp("demo")
    return generate_demo_catalog(out, n_items=120, seed=2), out


def test_same_seed_same_events(demo) -> None:
    items, _ = demo
    a = list(ShopperSimulator(items, n_users=10, seed=5).events(400))
    b = list(ShopperSimulator(items, n_users=10, seed=5).events(400))
    c = list(ShopperSimulator(items, n_users=10, seed=6).events(400))
    assert a == b and a != c


def test_events_follow_the_contract_in_time_order(demo) -> None:
    items, directory = demo
    stores = {k: (s.lat, s.lon) for k, s in load_stores(directory).items()}
    sim = ShopperSimulator(items, n_users=8, seed=1, start_time=1_700_000_000, stores=stores)
    events = list(sim.events(600))
    times = [e["timestamp"] for e in events]
    assert times == sorted(times) and times[0] >= 1_700_000_000
    assert len({e["event_id"] for e in events}) == len(events)
    known = {i.item_id: i for i in items}
    users = {u.user_id: u for u in sim.users}
    for e in events:
        assert e["behavior"] in BEHAVIORS and e["item_id"] in known
        assert e["store_id"] == known[e["item_id"]].store_id
        assert isinstance(e["lat"], float) and isinstance(e["lon"], float)
        assert gender_compatible(users[e["user_id"]].gender, known[e["item_id"]].gender)
    # events_until continues where events() stopped, never goes back in time
    until = times[-1] + 3600
    more = list(sim.events_until(until))
    assert more and all(times[-1] <= e["timestamp"] <= until for e in more)


def test_funnel_many_views_few_purchases(demo) -> None:
    items, _ = demo
    counts = Counter(e["behavior"] for e in ShopperSimulator(items, n_users=20, seed=3)
                     .events(4000))
    assert counts["view"] > 3 * counts["favorite"]
    assert counts["view"] > 3 * counts["cart"]
    assert counts["cart"] > counts["purchase"] > 0


def test_purchases_are_bought_once_per_user(demo) -> None:
    items, _ = demo
    sim = ShopperSimulator(items, n_users=10, seed=4)
    bought = [(e["user_id"], e["item_id"]) for e in sim.events(3000)
              if e["behavior"] == "purchase"]
    assert bought and len(bought) == len(set(bought))


def test_trendy_users_buy_more_popular_items(demo) -> None:
    items, _ = demo
    sim = ShopperSimulator(items, n_users=40, seed=7)
    list(sim.events(6000))
    by_user: dict[str, list[float]] = defaultdict(list)
    for user_id, _, pop in sim.purchase_log:
        by_user[user_id].append(pop)
    trend = {u.user_id: u.trendiness for u in sim.users}
    pairs = np.array([(trend[u], np.mean(p)) for u, p in by_user.items()])
    assert len(pairs) >= 20
    assert np.corrcoef(pairs.T)[0, 1] > 0.5
    high = pairs[pairs[:, 0] > 0.66, 1].mean()
    low = pairs[pairs[:, 0] < 0.33, 1].mean()
    assert high > low + 0.2


def test_purchase_year_schedule(demo) -> None:
    items, _ = demo
    sim = ShopperSimulator(items, n_users=50, seed=0)
    purchases = sim.purchase_year(max_purchases=5, year=2025)
    per_user = Counter(e["user_id"] for e in purchases)
    assert len(per_user) == 50 and max(per_user.values()) <= 5 and min(per_user.values()) >= 1
    assert all(e["behavior"] == "purchase" for e in purchases)
    assert all(1735689600 <= e["timestamp"] < 1767225600 for e in purchases)  # inside 2025
    first = {}
    for e in purchases:
        first.setdefault(e["user_id"], e["item_id"])
    assert all(first[u.user_id] == u.first_item for u in sim.users)


def test_bad_arguments_are_clear(demo) -> None:
    with pytest.raises(ValueError, match="non-empty catalog"):
        ShopperSimulator([], n_users=3)
    with pytest.raises(ValueError, match="n_users"):
        ShopperSimulator(demo[0], n_users=0)


def test_history_log_holds_the_events_in_order(demo, tmp_path: Path) -> None:
    """The simulated history the demo and ``prepare`` train on is the simulator's own event
    stream, every field, in order, and no partial file stays behind.

    Catches: a column dropped or reordered, events skipped or duplicated while writing, and a
    ``.part`` file left beside (or instead of) the log."""
    import csv

    items, _ = demo
    path = ShopperSimulator(items, n_users=6, seed=9).write_history(tmp_path / "h.csv", 150)
    expected = list(ShopperSimulator(items, n_users=6, seed=9).events(150))
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [list(r) for r in rows[:1]] == [["event_id", "user_id", "item_id", "behavior",
                                             "timestamp"]]
    assert [(r["event_id"], r["user_id"], r["item_id"], r["behavior"], float(r["timestamp"]))
            for r in rows] == [(e["event_id"], e["user_id"], e["item_id"], e["behavior"],
                                e["timestamp"]) for e in expected]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv"]
