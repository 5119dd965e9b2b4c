"""Closed-form decay (streams/decay.py) against brute-force Eq. 1–3."""

from __future__ import annotations

import itertools
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


def test_strongest_behaviour_per_item_wins_in_any_arrival_order() -> None:
    """The behaviour kept per (user, item) is the strongest seen (view < favorite < cart <
    purchase), whatever the order events arrive in.

    Catches: a wrong rank table (e.g. favorite above cart), keeping the latest behaviour
    instead of the strongest, or a weaker late event overwriting a stronger one."""
    history = [("view", 1.0), ("cart", 2.0), ("favorite", 3.0), ("view", 4.0)]
    for order in itertools.permutations(range(len(history))):
        store = DecayedScores(DEFAULT_WEIGHTS, 0.05)
        for k in order:
            behavior, t = history[k]
            store.apply(f"e{k}", "u", "dress", behavior, 1.6e9 + t)
            store.apply(f"f{k}", "u", "scarf", "favorite" if k % 2 else "view", 1.6e9 + t)
        assert store.users["u"].best == {"dress": "cart", "scarf": "favorite"}, order
    store.apply("p", "u", "dress", "purchase", 1.6e9)
    assert store.users["u"].best["dress"] == "purchase"


def test_cap_keeps_strongest_items() -> None:
    store = DecayedScores(DEFAULT_WEIGHTS, 0.05, max_items=3)
    for k, (item, behavior) in enumerate([("a", "view"), ("b", "purchase"), ("c", "cart"),
                                          ("d", "favorite"), ("e", "view")]):
        store.apply(f"e{k}", "u", item, behavior, 1.6e9)
    assert set(store.scores("u", 1.6e9)) == {"b", "c", "d"}
