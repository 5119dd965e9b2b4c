"""Closed-form decay (streams/decay.py) against brute-force Eq. 1–3."""

from __future__ import annotations

import math
import random

import pytest

from streams.config import DEFAULT_WEIGHTS
from streams.decay import DecayedScores, brute_force_score, eq1_decay, score_matrix

DAY = 86400.0


def test_paper_example_two_views_three_days_ago() -> None:
    # paper 000 §3.2.3: two browsing actions 3 days ago score 2·e^(−0.05·3) ≈ 1.7214
    s = score_matrix([("A", "P", "view", 0.0), ("A", "P", "view", 0.0)], 3 * DAY,
                     DEFAULT_WEIGHTS, 0.05)
    assert s["A"]["P"] == pytest.approx(1.7214, abs=1e-4)
    assert eq1_decay(0, 0.05) == 1.0


def random_history(rng: random.Random, n: int, span_days: float):
    """Random out-of-order events with redelivered duplicates (same event id, same content)."""
    events = []
    for k in range(n):
        user, item = f"u{rng.randrange(4)}", f"i{rng.randrange(15)}"
        events.append((f"e{k}", user, item, rng.choice(list(DEFAULT_WEIGHTS)),
                       1.5e9 + rng.uniform(0, span_days * DAY)))
    events += rng.sample(events, n // 5)  # redeliveries
    rng.shuffle(events)  # out of order
    return events


@pytest.mark.parametrize("span_days, lam, bound", [(30, 0.05, 50.0), (4000, 0.05, 50.0),
                                                   (400, 0.5, 5.0), (10, 0.0, 50.0)])
def test_closed_form_equals_brute_force(span_days: float, lam: float, bound: float) -> None:
    rng = random.Random(int(span_days * 10 + lam * 100))
    events = random_history(rng, 600, span_days)
    store = DecayedScores(DEFAULT_WEIGHTS, lam, rebase_bound=bound)
    statuses = [store.apply(*e) for e in events]
    unique = {e[0]: e for e in events}
    assert statuses.count("applied") == len(unique)
    assert statuses.count("duplicate") == len(events) - len(unique)
    at = 1.5e9 + (span_days + 1) * DAY
    per_pair: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for _, user, item, behavior, t in unique.values():
        per_pair.setdefault((user, item), []).append((behavior, t))
    for (user, item), history in per_pair.items():
        expected = brute_force_score(history, at, DEFAULT_WEIGHTS, lam)
        got = store.scores(user, at)[item]
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-300), (user, item)
    if span_days * lam > bound:  # long spans must have rebased: reference moved forward
        assert all(s.ref is not None and s.ref > 1.5e9 + DAY for s in store.users.values())


def test_order_of_accumulators_is_order_of_scores_at_any_time() -> None:
    rng = random.Random(7)
    store = DecayedScores(DEFAULT_WEIGHTS, 0.05)
    for e in random_history(rng, 300, 60):
        store.apply(*e)
    for user in store.users:
        orders = [sorted(store.scores(user, at), key=lambda i, at=at: -store.scores(user, at)[i])
                  for at in (1.5e9 + 61 * DAY, 1.5e9 + 900 * DAY)]
        assert orders[0] == orders[1]


def test_cap_keeps_strongest_items() -> None:
    store = DecayedScores(DEFAULT_WEIGHTS, 0.05, max_items=3)
    for k, (item, behavior) in enumerate([("a", "view"), ("b", "purchase"), ("c", "cart"),
                                          ("d", "favorite"), ("e", "view")]):
        store.apply(f"e{k}", "u", item, behavior, 1.6e9)
    assert set(store.scores("u", 1.6e9)) == {"b", "c", "d"}
