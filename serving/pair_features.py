"""Pair features of (shopper, candidate): what the stream already keeps, for the final ranker.

The learned final ranker (:mod:`models.next_event`, served by
:class:`serving.next_event_scorer.NextEventScorer`) decides between a repeat and a new item from
these columns (the repeat-versus-explore signals of RepeatNet / TIFU-KNN / ReCANet: how strong,
how recent and how committed the shopper's own touch was, beside the co-visitation, content and
popularity evidence for new items):

==================  =====================================================================
column              meaning
==================  =====================================================================
in_history          1 when the item is one of the shopper's own (recall source ``history``)
log_rel_score       log S(u,i,T) − log max_j S(u,j,T) (Eq. 3; 0 for the strongest item,
                    −20 when the item is not the shopper's)
beh_view …          one-hot strongest behaviour on the item (view, favorite, cart; purchase
beh_cart            is excluded by default)
log_hours_since     log1p(hours between the item's last touch and the shopper's newest event)
                    (history only; a week for other items)
log_covisit         log1p(co-visitation gain / the shopper's strongest S)
log_content         log1p(content-similarity gain / the shopper's strongest S)
norm_pop            decayed popularity / the most popular item's (paper 002's NormPop)
log_norm_pop        log(norm_pop + 1e-6)
trend_fit           1 − |trendiness(u) − norm_pop|² (paper 002 Eq. popularity modulation, p=2)
is_trending         1 when the trending source recalled the item
log_history_size    log1p(number of the shopper's items): a repeat/explore switch input
log_recall_rank     log1p(position in the recall order)
base_score          the score of the chain below the ranker (fusion network + rules when
                    present, else the recall strength), z-scored within the shopper
log_own_rank        log1p(the item's rank among the shopper's items by S; past the end for
                    other items)
log_recency_rank    log1p(the item's rank among the shopper's items by last touch)
==================  =====================================================================

Every column is invariant to the read time T: scores enter relative to the shopper's
strongest, popularity relative to the most popular item, and recency relative to the
shopper's own newest event. So a replayed log (events years old) and a live stream give the
same features, and a list does not drift between two refreshes without new events.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from serving.scorer import Candidate, ShopperContext

FEATURES: tuple[str, ...] = (
    "in_history", "log_rel_score", "beh_view", "beh_favorite", "beh_cart", "log_hours_since",
    "log_covisit", "log_content", "norm_pop", "log_norm_pop", "trend_fit", "is_trending",
    "log_history_size", "log_recall_rank", "base_score", "log_own_rank", "log_recency_rank",
)
N_FEATURES = len(FEATURES)
#: the columns the ranker's calibration reads (:class:`models.next_event.Calibration`)
IN_HISTORY = FEATURES.index("in_history")
LOG_HISTORY_SIZE = FEATURES.index("log_history_size")
NOT_OWN_LOG_SCORE = -20.0
NOT_OWN_HOURS = math.log1p(7 * 24.0)
_BEHAVIOR_COLUMN = {"view": 2, "favorite": 3, "cart": 4}


def trendiness(scores: Mapping[str, float], popularity: Mapping[str, float],
               top_popularity: float) -> float:
    """The shopper's trendiness: S-weighted mean NormPop of the shopper's items (paper 002 §3.3,
    read from the stream's decayed state instead of a simulated attribute)."""
    total = sum(scores.values())
    if total <= 0 or top_popularity <= 0:
        return 0.0
    return sum(s * popularity.get(i, 0.0) for i, s in scores.items()) / (total * top_popularity)


def pair_features(shopper: ShopperContext, candidates: Sequence[Candidate],
                  popularity: Mapping[str, float], top_popularity: float,
                  base_scores: Sequence[float] | None = None) -> np.ndarray:
    """``[len(candidates), N_FEATURES]`` float32 rows in :data:`FEATURES` order."""
    out = np.zeros((len(candidates), N_FEATURES), dtype=np.float32)
    if not candidates:
        return out
    scores = shopper.scores
    top_user = max(scores.values(), default=0.0)
    log_top = math.log(top_user) if top_user > 0 else 0.0
    newest = shopper.last_event_time
    if newest is None:
        newest = max(shopper.last_touch.values(), default=0.0)
    top_pop = top_popularity if top_popularity > 0 else 1.0
    fit_of = trendiness(scores, popularity, top_pop)
    history_size = math.log1p(len(scores))
    scale = top_user if top_user > 0 else 1.0
    for row, cand in enumerate(candidates):
        item = cand.item_id
        f = out[row]
        own = scores.get(item, 0.0)
        if own > 0:
            f[0] = 1.0
            f[1] = math.log(own) - log_top
            column = _BEHAVIOR_COLUMN.get(shopper.behaviors.get(item, "view"))
            if column is not None:
                f[column] = 1.0
            touched = shopper.last_touch.get(item)
            hours = max(0.0, (newest - touched) / 3600.0) if touched is not None else 7 * 24.0
            f[5] = math.log1p(hours)
        else:
            f[1] = NOT_OWN_LOG_SCORE
            f[5] = NOT_OWN_HOURS
        sources = cand.sources
        if "covisit" in sources:
            f[6] = math.log1p(sources["covisit"][0] / scale)
        if "content" in sources:
            f[7] = math.log1p(sources["content"][0] / scale)
        norm_pop = min(1.0, popularity.get(item, 0.0) / top_pop)
        f[8] = norm_pop
        f[9] = math.log(norm_pop + 1e-6)
        f[10] = 1.0 - (fit_of - norm_pop) ** 2
        f[11] = 1.0 if "trending" in sources else 0.0
        f[12] = history_size
        f[13] = math.log1p(row)
    by_score = {i: r for r, (i, _) in enumerate(
        sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])))}
    by_recency = {i: r for r, (i, _) in enumerate(
        sorted(((i, shopper.last_touch.get(i, 0.0)) for i in scores),
               key=lambda kv: (-kv[1], kv[0])))}
    unranked = math.log1p(len(scores) + 1)
    for row, cand in enumerate(candidates):
        own_rank = by_score.get(cand.item_id)
        out[row, 15] = math.log1p(own_rank) if own_rank is not None else unranked
        recent_rank = by_recency.get(cand.item_id)
        out[row, 16] = math.log1p(recent_rank) if recent_rank is not None else unranked
    if base_scores is not None and len(base_scores) == len(candidates):
        base = np.asarray(base_scores, dtype=np.float64)
        spread = base.std()
        out[:, 14] = (base - base.mean()) / spread if spread > 0 else 0.0
    return out
