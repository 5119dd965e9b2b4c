"""The decayed-score / co-visitation scorer: the ranker before (or without) the fusion network.

Score = the recall strength (``Σ_j S(u,j)·C̃(j,i)`` for co-visitation and content, plus the
trend term), i.e. paper 000's dynamic weighted collaborative filtering (§3.2) used as an
item-to-item ranker. Reasons name the history item and behaviour that drove each pick.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import attrgetter

from models.behaviors import BEHAVIOR_PAST
from serving.scorer import (
    Candidate,
    LazyReasonsItem,
    RerankRequest,
    ScoredItem,
    ShopperContext,
)

_recall_score = attrgetter("recall_score")


def describe(item_id: str, titles: Mapping[str, str] | None) -> str:
    title = (titles or {}).get(item_id)
    return f"{title} ({item_id})" if title else item_id


def ago(seconds: float) -> str:
    """``"today"``, ``"yesterday"``, ``"3 days ago"``, ``"2 weeks ago"`` (coarse, for reasons)."""
    days = seconds / 86400.0
    if days < 1:
        return "today"
    if days < 2:
        return "yesterday"
    if days < 14:
        return f"{int(days)} days ago"
    return f"{int(days // 7)} weeks ago"


def history_reason(shopper: ShopperContext, item_id: str) -> str:
    """The repeat source's reason: "still in your cart", "you saved this 2 days ago"."""
    behavior = shopper.behaviors.get(item_id, "view")
    if behavior == "cart":
        return "still in your cart"
    touched = shopper.last_touch.get(item_id)
    when = f" {ago(max(0.0, shopper.now - touched))}" if touched is not None else ""
    verb = BEHAVIOR_PAST.get(behavior, "viewed")
    return f"you {verb} this{when}"


def recall_reasons(shopper: ShopperContext, candidate: Candidate,
                   titles: Mapping[str, str] | None = None) -> list[str]:
    """Human-readable reasons from the candidate's recall sources, strongest source first."""
    reasons = []
    for source, (_, driver) in sorted(candidate.sources.items(), key=lambda kv: -kv[1][0]):
        if source == "history":
            reasons.append(history_reason(shopper, candidate.item_id))
            continue
        if source == "trending":
            reasons.append("trending")
            continue
        did = BEHAVIOR_PAST.get(shopper.behaviors.get(driver or "", "view"), "viewed")
        if source == "covisit":
            reasons.append(f"often seen with {describe(driver or '?', titles)} you {did}")
        elif source == "content":
            reasons.append(f"similar to {describe(driver or '?', titles)} you {did}")
        else:
            reasons.append(source)
    return reasons


class RecallScored(LazyReasonsItem):
    """A scored candidate whose reasons are :func:`recall_reasons`, written when first read.
    ``source``: (shopper, candidate, titles) — :func:`recall_reasons`' arguments."""

    _source: tuple[ShopperContext, Candidate, Mapping[str, str] | None]

    def _write_reasons(self) -> list[str]:
        return recall_reasons(*self._source)


class DecayCovisScorer:
    """Ranks by recall strength; the default scorer of the streaming core.

    Reasons are written for the ``reasons_top`` strongest candidates of each shopper only (the
    published list is a Top-5; wrapping stages that reorder still find reasons near the top)."""

    version = "decay-covis-1"
    reads_popularity = False

    def __init__(self, titles: Mapping[str, str] | None = None, reasons_top: int = 20) -> None:
        self.titles = titles
        self.reasons_top = reasons_top

    def score(self, request: RerankRequest) -> list[list[ScoredItem]]:
        out = []
        top, titles = max(self.reasons_top, 0), self.titles
        for shopper, cands in zip(request.shoppers, request.candidates, strict=True):
            # strongest first (stable: recall's order among equals); reasons near the top only
            ranked = sorted(cands, key=_recall_score, reverse=True)
            scored: list[ScoredItem] = [RecallScored(c.item_id, c.recall_score,
                                                     (shopper, c, titles))
                                        for c in ranked[:top]]
            scored.extend([ScoredItem(c.item_id, c.recall_score, []) for c in ranked[top:]])
            out.append(scored)
        return out
