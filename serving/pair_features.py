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


def _log1p_table(n: int) -> np.ndarray:
    """``log1p(0 … n-1)`` as float32 (the recall-rank column), grown on demand."""
    global _LOG1P
    if len(_LOG1P) < n:
        _LOG1P = np.array([math.log1p(k) for k in range(max(n, 2 * len(_LOG1P)))],
                          dtype=np.float32)
    return _LOG1P[:n]


_LOG1P = np.zeros(0, dtype=np.float32)


def pair_features(shopper: ShopperContext, candidates: Sequence[Candidate],
                  popularity: Mapping[str, float], top_popularity: float,
                  base_scores: Sequence[float] | None = None) -> np.ndarray:
    """``[len(candidates), N_FEATURES]`` float32 rows in :data:`FEATURES` order.

    Built column by column (one list per column, one float64 → float32 cast each) with the same
    arithmetic per value as a row-by-row loop, so the rows are bit for bit the same; the
    shopper's own items (a few dozen) are the only per-item Python work beyond a dict read."""
    n = len(candidates)
    out = np.zeros((n, N_FEATURES), dtype=np.float32)
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
    scale = top_user if top_user > 0 else 1.0
    items = [c.item_id for c in candidates]
    sources = [c.sources for c in candidates]
    scores_get = scores.get
    own = [scores_get(i, 0.0) for i in items]
    log_rel = [NOT_OWN_LOG_SCORE] * n
    hours = [NOT_OWN_HOURS] * n
    behaviors, last_touch = shopper.behaviors, shopper.last_touch
    for row, (item, value) in enumerate(zip(items, own, strict=True)):
        if value > 0:
            out[row, 0] = 1.0
            log_rel[row] = math.log(value) - log_top
            column = _BEHAVIOR_COLUMN.get(behaviors.get(item, "view"))
            if column is not None:
                out[row, column] = 1.0
            touched = last_touch.get(item)
            hours[row] = math.log1p(max(0.0, (newest - touched) / 3600.0)
                                    if touched is not None else 7 * 24.0)
    out[:, 1] = log_rel
    out[:, 5] = hours
    log1p = math.log1p
    out[:, 6] = [log1p(src["covisit"][0] / scale) if "covisit" in src else 0.0
                 for src in sources]
    out[:, 7] = [log1p(src["content"][0] / scale) if "content" in src else 0.0
                 for src in sources]
    pop_get = popularity.get
    norm_pop = [min(1.0, pop_get(i, 0.0) / top_pop) for i in items]
    out[:, 8] = norm_pop
    log = math.log
    out[:, 9] = [log(p + 1e-6) for p in norm_pop]
    out[:, 10] = [1.0 - (fit_of - p) ** 2 for p in norm_pop]
    out[:, 11] = [1.0 if "trending" in src else 0.0 for src in sources]
    out[:, 12] = math.log1p(len(scores))
    out[:, 13] = _log1p_table(n)
    unranked = math.log1p(len(scores) + 1)
    if scores:
        by_score = {i: log1p(r) for r, (i, _) in enumerate(
            sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])))}
        by_recency = {i: log1p(r) for r, (i, _) in enumerate(
            sorted(((i, last_touch.get(i, 0.0)) for i in scores),
                   key=lambda kv: (-kv[1], kv[0])))}
        out[:, 15] = [by_score.get(i, unranked) for i in items]
        out[:, 16] = [by_recency.get(i, unranked) for i in items]
    else:
        out[:, 15:17] = unranked
    if base_scores is not None and len(base_scores) == len(candidates):
        base = np.asarray(base_scores, dtype=np.float64)
        spread = base.std()
        out[:, 14] = (base - base.mean()) / spread if spread > 0 else 0.0
    return out
