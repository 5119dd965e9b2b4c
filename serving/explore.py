"""The per-shopper repeat/explore decision: how much of a Top-5 is the shopper's own items.

A list that maximises the next interaction is mostly the shopper's own items (a viewed or
carted item comes back); a list that helps a shopper discover is mostly new ones. A fixed cap
(``STYLESTREAM_MAX_REPEATS``) gives every shopper the same split. Here each list is composed
for its shopper from the final ranker's *calibrated* chances of a hit
(:class:`models.next_event.Calibration`): the list maximises

    E[hit] + w · E[hit among new-to-shopper items]
    = [1 − Π_{i∈L} (1 − p_i)] + w · [1 − Π_{i∈L, i new} (1 − p_i)]

(items treated as independent), greedily: at each slot the candidate with the largest
marginal gain enters — ``p · Π(1 − p_taken)`` for one of the shopper's own items,
``p · [Π(1 − p_taken) + w · Π(1 − p_new taken)]`` for a new one. Both terms are submodular, so
greedy is within 1 − 1/e of the best list (Nemhauser, Wolsey and Fisher 1978). The effect: a
shopper with a long, strongly repeating history keeps repeats (a fourth strong own item still
adds more than a weak new one), while a shopper with one weak own item gets new items (the
first new item is worth its chance (1 + w)-fold). ``w = 0`` is the plain order by chance of a
hit. ``w`` (``STYLESTREAM_EXPLORE_WEIGHT``) is chosen on the replay's validation cut.

Neither expectation depends on the order inside a Top-5, so each block of ``block`` (5) items
the greedy pass chose is shown best chance first: a new item that entered the list for the
explore term does not push a likelier repeat down (NDCG@5 keeps the accuracy order).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol


class Scored(Protocol):
    item_id: str
    score: float


class BestFirst(Protocol):
    """Items best first, taken one at a time (``peek`` the next, ``pop`` it)."""

    def __bool__(self) -> bool: ...

    def peek(self) -> Scored: ...

    def pop(self) -> Scored: ...


class InOrder:
    """:class:`BestFirst` over items already in order."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[Scored]) -> None:
        self.items = deque(items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def peek(self) -> Scored:
        return self.items[0]

    def pop(self) -> Scored:
        return self.items.popleft()


class ByScore:
    """:class:`BestFirst` in the published order — score descending, then item id, then the
    order given (what a stable sort on ``(-score, item_id)`` gives) — from a heap: O(n) to
    build, O(log n) per item popped, so a Top-5 orders only the few items it looks at instead
    of every candidate."""

    __slots__ = ("heap",)

    def __init__(self, items: Iterable[Scored]) -> None:
        self.heap = [(-s.score, s.item_id, k, s) for k, s in enumerate(items)]
        heapq.heapify(self.heap)

    def __bool__(self) -> bool:
        return bool(self.heap)

    def peek(self) -> Scored:
        return self.heap[0][3]

    def pop(self) -> Scored:
        return heapq.heappop(self.heap)[3]


def chance(scored: Scored) -> float:
    """The item's probability of a hit (its calibrated score, clipped to [0, 1])."""
    return min(1.0, max(0.0, float(scored.score)))


def explore_compose(ranked: Iterable[Scored], own: set[str] | frozenset[str], k: int,
                    weight: float, offer: Callable[[Scored], bool],
                    block: int = 5) -> list[Scored]:
    """At most ``k`` items of ``ranked`` (best chance first) chosen greedily to maximise
    E[hit] + ``weight`` · E[new hit], each block of ``block`` shown best chance first;
    ``own``: the shopper's items (not new); ``offer(item)`` is asked before an item is taken
    (the diversity constraints: False holds it back or drops it)."""
    mine: deque[Scored] = deque()
    new: deque[Scored] = deque()
    for scored in ranked:
        (mine if scored.item_id in own else new).append(scored)
    return compose(InOrder(mine), InOrder(new), k, weight, offer, block)


def compose(mine: BestFirst, new: BestFirst, k: int, weight: float,
            offer: Callable[[Scored], bool], block: int = 5) -> list[Scored]:
    """:func:`explore_compose` over the shopper's own items and the new ones, each already
    best first (lazily: only the items the greedy pass reaches are ordered)."""
    if weight < 0:
        raise ValueError(f"explore weight must be >= 0, got {weight}")
    taken: list[Scored] = []
    miss_all = miss_new = 1.0
    while len(taken) < k and (mine or new):
        gain_own = chance(mine.peek()) * miss_all if mine else -1.0
        gain_new = chance(new.peek()) * (miss_all + weight * miss_new) if new else -1.0
        from_new = gain_new > gain_own
        scored = (new if from_new else mine).pop()
        if not offer(scored):
            continue
        taken.append(scored)
        p = chance(scored)
        miss_all *= 1.0 - p
        if from_new:
            miss_new *= 1.0 - p
    return [item for start in range(0, len(taken), block)
            for item in sorted(taken[start: start + block], key=lambda s: -chance(s))]
