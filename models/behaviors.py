"""The behaviour vocabulary of paper 000 §3.2.1, defined once for every layer.

Behaviours from weakest to strongest (browsing, favoriting, adding to cart, purchasing), their
default weights (1/3/5/10), their rank (the strongest behaviour a shopper showed on an item
wins) and the past-tense verb that reasons use ("similar to X you saved"). ``streams`` (the
contract, the score store), ``models`` (datasets, simulator) and ``serving`` (reasons) import
these tables; the weights actually used come from ``Settings`` (``STYLESTREAM_WEIGHTS``).
"""

from __future__ import annotations

#: Behaviours of the event contract, weakest first.
BEHAVIORS: tuple[str, ...] = ("view", "favorite", "cart", "purchase")

#: Paper 000 §3.2.1: browsing 1, favoriting 3, adding to cart 5, purchasing 10.
DEFAULT_WEIGHTS: dict[str, float] = {"view": 1.0, "favorite": 3.0, "cart": 5.0, "purchase": 10.0}

#: Strength order (0 = weakest): the behaviour kept per (user, item) is the highest rank seen.
BEHAVIOR_RANK: dict[str, int] = {behavior: rank for rank, behavior in enumerate(BEHAVIORS)}

#: Past tense used in reasons shown to shoppers.
BEHAVIOR_PAST: dict[str, str] = {"view": "viewed", "favorite": "saved", "cart": "carted",
                                 "purchase": "bought"}
