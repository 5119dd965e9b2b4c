"""Trend-aware simulated shoppers (paper 002 §3.3), pure Python, no Kafka.

The paper simulates one year of purchases: each user has a trendiness score (affinity for
popular items); item popularity starts random and is updated as purchases occur; a random item
fixes the user's gender preference; later purchases are "sampled with a probability proportional
to user trendiness and item popularity"; each transaction falls on a random day of 2025.

Our reading, written down because the paper gives no formula:

- *Trendiness* τ_u ~ U(0, 1). *Popularity* ``pop_i = base_i + boost_i``: ``base_i`` starts
  U(0, 10) ("initialized randomly"), ``boost_i`` is the decayed count of behaviour on the item;
  ``NormPop_i`` is the min-max normalisation of ``pop`` over the catalog (the NormPop of §3.5).
- "Proportional to trendiness and popularity" is read as *closeness* of the item's NormPop to the
  user's τ: ``P(i | u) ∝ pref_u(category_i) · gender_ok(u, i) · exp(−(τ_u − NormPop_i)² / 2σ²)``
  (σ = ``trend_width``), so a trendy user (τ → 1) buys popular items, a niche user (τ → 0)
  unpopular ones, and the Table 3 groups of §4.6 exist by construction.
- Users also carry category preferences (Dirichlet over the catalog's categories) and a home
  location near the stores, so that the same shoppers drive the online demo (gender filter,
  category similarity, store distance).
- Popularity is *dynamic*: each event adds its behaviour weight × ``feedback`` to ``boost_i``
  ("updated dynamically as purchases occur"), which decays by ``exp(−pop_decay)`` per simulated
  day (the decayed global counter of docs/design.md), and once per day every ``base_i`` is
  multiplied by ``exp(N(0, drift))`` (a random walk in log space: trends come and go).

Two outputs:

- :meth:`ShopperSimulator.events` / :meth:`ShopperSimulator.events_until`: a time-ordered stream
  of behaviour events of the contract (docs/design.md), produced by browsing *sessions*: a session
  views a few items, some are favorited or carted, few bought — a funnel.
- :meth:`ShopperSimulator.purchase_year`: the study schedule of §4.1 (one year, 50 users, up to 5
  purchases each), purchases only.

Everything is drawn from ``random.Random(seed)``: the same seed gives the same events.
"""

from __future__ import annotations

import csv
import heapq
import itertools
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from models.behaviors import DEFAULT_WEIGHTS
from models.catalog import CatalogItem
from models.gender import gender_compatible, gender_family
from models.popularity import min_max

SECONDS_PER_DAY = 86400.0
#: Columns of a simulated history log (:meth:`ShopperSimulator.write_history`).
HISTORY_COLUMNS: tuple[str, ...] = ("event_id", "user_id", "item_id", "behavior", "timestamp")


@dataclass
class SimUser:
    """A simulated shopper: trendiness τ ∈ [0, 1], gender, category preferences, home."""

    user_id: str
    trendiness: float
    gender: str
    category_pref: dict[str, float]
    lat: float | None = None
    lon: float | None = None
    first_item: str | None = None
    purchased: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FunnelRates:
    """Session shape: views per session ~ 1 + Poisson(``views_mean − 1``); each view is
    favorited with ``favorite``, carted with ``cart``; a carted item is bought with ``buy``."""

    views_mean: float = 5.0
    favorite: float = 0.15
    cart: float = 0.12
    buy: float = 0.4


class ShopperSimulator:
    """Trend-aware shoppers over a catalog (see the module docstring for the model).

    ``stores``: optional ``{store_id: (lat, lon)}``; users then live near a random store and
    events carry ``lat``/``lon``/``store_id``. ``session_rate_per_day``: sessions per user per
    day (Poisson process). ``trend_width``: σ of the trend kernel. ``drift``: daily log-space
    noise of the base popularity. ``feedback``: popularity added per unit of behaviour weight;
    ``pop_decay``: daily decay rate of that feedback. ``weights``: behaviour weights of that
    feedback (default paper 000's 1/3/5/10; pass ``Settings.decay.weights`` to mirror the
    stream's popularity counters). ``purchase_log`` records
    ``(user_id, item_id, NormPop at the time)`` of every purchase.
    """

    def __init__(self, catalog: list[CatalogItem], n_users: int = 50, seed: int = 0,
                 start_time: float | None = None,
                 stores: dict[str, tuple[float, float]] | None = None,
                 session_rate_per_day: float = 24.0, trend_width: float = 0.15,
                 drift: float = 0.05, feedback: float = 0.2, pop_decay: float = 0.05,
                 funnel: FunnelRates | None = None,
                 weights: Mapping[str, float] | None = None) -> None:
        if not catalog:
            raise ValueError("ShopperSimulator needs a non-empty catalog")
        if n_users < 1:
            raise ValueError("n_users must be >= 1")
        if session_rate_per_day <= 0 or trend_width <= 0:
            raise ValueError("session_rate_per_day and trend_width must be > 0")
        self.catalog = list(catalog)
        self.rng = random.Random(seed)
        self.trend_width = trend_width
        self.drift = drift
        self.feedback = feedback
        self.pop_decay = pop_decay
        self.funnel = funnel or FunnelRates()
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.stores = dict(stores or {})
        self.session_rate = session_rate_per_day / SECONDS_PER_DAY
        self.now = float(start_time if start_time is not None
                         else datetime(2025, 1, 1, tzinfo=UTC).timestamp())
        self.base = [self.rng.uniform(0.0, 10.0) for _ in self.catalog]
        self.boost = [0.0] * len(self.catalog)
        self.purchase_log: list[tuple[str, str, float]] = []
        self._index = {item.item_id: k for k, item in enumerate(self.catalog)}
        self.categories = sorted({item.category for item in self.catalog})
        self.users = [self._make_user(f"u{k:04d}") for k in range(n_users)]
        self._day = math.floor(self.now / SECONDS_PER_DAY)
        self._counter = itertools.count()
        self._pending: list[tuple[float, int, dict]] = []
        self._sessions = [(self.now + self._gap(), k) for k in range(n_users)]
        heapq.heapify(self._sessions)

    # ---- users and choice -------------------------------------------------------------
    def _make_user(self, user_id: str) -> SimUser:
        """§3.3: "a random item initiates the user's gender preference" (Unisex → coin)."""
        first = self.rng.choice(self.catalog)
        gender = gender_family(first.gender)
        if gender not in ("Men", "Women"):
            gender = self.rng.choice(("Men", "Women"))
        weights = [self.rng.gammavariate(0.5, 1.0) for _ in self.categories]
        total = sum(weights) or 1.0
        pref = {c: w / total for c, w in zip(self.categories, weights, strict=True)}
        lat = lon = None
        if self.stores:
            s_lat, s_lon = self.stores[self.rng.choice(sorted(self.stores))]
            lat, lon = s_lat + self.rng.gauss(0, 0.03), s_lon + self.rng.gauss(0, 0.03)
        return SimUser(user_id, self.rng.random(), gender, pref, lat, lon, first.item_id)

    def choice_weights(self, user: SimUser) -> list[float]:
        """Unnormalised ``P(i | u)``: category preference × gender × trend kernel (§3.3)."""
        pop = min_max(self.popularity)
        two_s2 = 2 * self.trend_width ** 2
        bought = set(user.purchased)
        return [0.0 if item.item_id in bought or not gender_compatible(user.gender, item.gender)
                else (0.05 + user.category_pref.get(item.category, 0.0))
                * math.exp(-((user.trendiness - p) ** 2) / two_s2)
                for item, p in zip(self.catalog, pop, strict=True)]

    def _pick(self, user: SimUser, k: int) -> list[CatalogItem]:
        weights = self.choice_weights(user)
        if not any(weights):
            weights = [0.0 if item.item_id in user.purchased else 1.0 for item in self.catalog]
            if not any(weights):
                weights = [1.0] * len(self.catalog)
        return [self.catalog[i] for i in
                self.rng.choices(range(len(self.catalog)), weights=weights, k=k)]

    # ---- popularity dynamics ------------------------------------------------------------
    def _advance_to(self, t: float) -> None:
        day = math.floor(t / SECONDS_PER_DAY)
        while self._day < day:
            self._day += 1
            if self.drift > 0:
                self.base = [b * math.exp(self.rng.gauss(0.0, self.drift)) for b in self.base]
            if self.pop_decay > 0:
                keep = math.exp(-self.pop_decay)
                self.boost = [b * keep for b in self.boost]
        self.now = max(self.now, t)

    @property
    def popularity(self) -> list[float]:
        """Current raw popularity ``base + boost`` per catalog position."""
        return [b + f for b, f in zip(self.base, self.boost, strict=True)]

    def _feedback(self, user_id: str, item_id: str, behavior: str) -> None:
        k = self._index[item_id]
        if behavior == "purchase":
            self.purchase_log.append((user_id, item_id,
                                      min_max(self.popularity)[k]))
        self.boost[k] += self.feedback * self.weights[behavior]

    # ---- event stream -------------------------------------------------------------------
    def _gap(self) -> float:
        return self.rng.expovariate(self.session_rate)

    def _event(self, user: SimUser, item: CatalogItem, behavior: str, t: float) -> dict:
        event = {"event_id": f"sim-{next(self._counter)}", "user_id": user.user_id,
                 "item_id": item.item_id, "behavior": behavior, "timestamp": round(t, 3)}
        if user.lat is not None and user.lon is not None:
            event["lat"], event["lon"] = round(user.lat, 6), round(user.lon, 6)
        if item.store_id is not None:
            event["store_id"] = item.store_id
        return event

    def _session(self, user: SimUser, start: float) -> None:
        """One browsing session: views, then favorites/carts of some, purchases of carts."""
        f = self.funnel
        n_views = 1 + _poisson(self.rng, max(f.views_mean - 1.0, 0.0))
        t = start
        for item in self._pick(user, n_views):
            t += self.rng.uniform(5, 90)
            self._push(self._event(user, item, "view", t))
            if self.rng.random() < f.favorite:
                t += self.rng.uniform(2, 30)
                self._push(self._event(user, item, "favorite", t))
            if item.item_id not in user.purchased and self.rng.random() < f.cart:
                t += self.rng.uniform(2, 30)
                self._push(self._event(user, item, "cart", t))
                if self.rng.random() < f.buy:
                    t += self.rng.uniform(10, 120)
                    self._push(self._event(user, item, "purchase", t))
                    user.purchased.append(item.item_id)

    def _push(self, event: dict) -> None:
        heapq.heappush(self._pending, (event["timestamp"], next(self._counter), event))

    def _peek(self) -> float:
        """Time of the next event: run sessions until none can start before the head."""
        while not self._pending or self._sessions[0][0] < self._pending[0][0]:
            start, k = heapq.heappop(self._sessions)
            self._advance_to(start)
            self._session(self.users[k], start)
            heapq.heappush(self._sessions, (start + self._gap(), k))
        return self._pending[0][0]

    def _pop(self) -> dict:
        _, _, event = heapq.heappop(self._pending)
        self._advance_to(event["timestamp"])
        self._feedback(event["user_id"], event["item_id"], event["behavior"])
        return event

    def events(self, n: int) -> Iterator[dict]:
        """The next ``n`` events, in timestamp order."""
        for _ in range(n):
            self._peek()
            yield self._pop()

    def events_until(self, t: float) -> Iterator[dict]:
        """Events with ``timestamp <= t``, in order (the simulator keeps its place)."""
        while self._peek() <= t:
            yield self._pop()

    def write_history(self, path: str | Path, n: int) -> Path:
        """The next ``n`` events as a CSV log (``event_id,user_id,item_id,behavior,timestamp``,
        the layout ``stylestream train --events`` reads), written whole or not at all."""
        path = Path(path)
        partial = path.with_suffix(path.suffix + ".part")
        with partial.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(HISTORY_COLUMNS)
            for event in self.events(n):
                writer.writerow([event[c] for c in HISTORY_COLUMNS])
        partial.replace(path)
        return path

    # ---- the study schedule (§4.1) --------------------------------------------------------
    def purchase_year(self, max_purchases: int = 5, year: int = 2025) -> list[dict]:
        """One year of purchases (§3.3, §4.1): each user makes 1..``max_purchases`` purchases
        on random days of ``year``; processed in time order so popularity moves as purchases
        occur. The first purchase of a user is the random item that "initiates the gender
        preference" (drawn when the user was made), later ones follow the trend kernel.
        Returns purchase events (contract dicts) sorted by time."""
        if max_purchases < 1:
            raise ValueError("max_purchases must be >= 1")
        start = datetime(year, 1, 1, tzinfo=UTC).timestamp()
        days = (datetime(year + 1, 1, 1, tzinfo=UTC).timestamp() - start) / SECONDS_PER_DAY
        slots = [(start + self.rng.randrange(int(days)) * SECONDS_PER_DAY
                  + self.rng.uniform(8, 22) * 3600, k)
                 for k, _ in enumerate(self.users)
                 for _ in range(self.rng.randint(1, max_purchases))]
        slots.sort()
        out = []
        for t, k in slots:
            user = self.users[k]
            self._advance_to(t)
            if not user.purchased and user.first_item is not None:
                item = self.catalog[self._index[user.first_item]]
            else:
                item = self._pick(user, 1)[0]
            user.purchased.append(item.item_id)
            self._feedback(user.user_id, item.item_id, "purchase")
            out.append(self._event(user, item, "purchase", t))
        return out


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's Poisson sampler (means here are small)."""
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
