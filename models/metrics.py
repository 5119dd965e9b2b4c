"""Ranking metrics of paper 000 §4.2 (Eq. 22–25), vectorised over users, and both protocols.

- HR@N (Eq. 22): per user 1 if at least one relevant item is in the top N, else 0; averaged
  over users.
- NDCG@N (Eq. 23–25): DCG@N = Σ_{i≤N} rel(i) / log2(i + 1) with binary relevance; IDCG@N is the
  DCG of the ideal list, i.e. ``min(#relevant, N)`` hits at the top; NDCG = DCG / IDCG.
- Recall@N (not in the paper; the usual full-ranking companion): hits in the top N divided by the
  user's number of relevant items.

Protocols (``full_ranking`` and ``sampled_ranking``):

- **full**: every item is ranked; the user's training items are masked (never recommended
  again, never counted), relevance = the user's test items not in training.
- **sampled** (NCF's protocol): each relevant item is ranked against ``n_neg`` = 99 items the
  user never interacted with, sampled uniformly; HR and NDCG of the one relevant item among the
  100 (IDCG = 1), averaged over the user's relevant items and then over users, so every user
  weighs the same as in Eq. 22.

Ties are broken uniformly at random (``rng``), so a constant scorer scores like chance rather
than like the item order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

KS: tuple[int, ...] = (3, 5, 10)
FULL_EXTRA: tuple[str, ...] = ("Recall@20", "NDCG@20")


def metric_names(ranking: str) -> list[str]:
    """Column order of the result tables for a protocol."""
    names = [f"{m}@{k}" for k in KS for m in ("HR", "NDCG")]
    return names + list(FULL_EXTRA) if ranking == "full" else names


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def topk(scores: np.ndarray, k: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Column indices of the ``k`` best scores per row, best first.

    With ``rng``, ties are broken uniformly at random and independently per row: each row's
    columns are shuffled by their own permutation before the (stable) selection.
    """
    b, n = scores.shape
    k = min(k, n)
    if rng is None:
        perm = np.broadcast_to(np.arange(n), (b, n))
    else:
        perm = rng.permuted(np.tile(np.arange(n, dtype=np.int32), (b, 1)), axis=1)
    shuffled = np.take_along_axis(scores, perm, axis=1)
    part = np.argpartition(-shuffled, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(shuffled, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(perm, np.take_along_axis(part, order, axis=1), axis=1)


def metrics_from_hits(hits: np.ndarray, n_relevant: np.ndarray,
                      ks: Sequence[int] = KS) -> dict[str, np.ndarray]:
    """HR@k, NDCG@k (Eq. 22–25) and Recall@k per user from a ``[users, K]`` 0/1 hit matrix.

    ``hits[u, r]`` is 1 when the item at rank ``r`` of user ``u``'s list is relevant;
    ``n_relevant[u]`` is the number of relevant items the user has (≥ 1).
    """
    hits = np.asarray(hits, dtype=np.float64)
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    if np.any(n_relevant < 1):
        raise ValueError("every evaluated user needs at least one relevant item")
    out: dict[str, np.ndarray] = {}
    for k in ks:
        if k > hits.shape[1]:
            raise ValueError(f"k={k} exceeds the list length {hits.shape[1]}")
        h = hits[:, :k]
        disc = _discounts(k)
        dcg = h @ disc
        ideal = np.minimum(n_relevant, k).astype(np.int64)
        idcg = np.cumsum(disc)[ideal - 1]
        out[f"HR@{k}"] = (h.sum(axis=1) > 0).astype(np.float64)
        out[f"NDCG@{k}"] = dcg / idcg
        out[f"Recall@{k}"] = h.sum(axis=1) / n_relevant
    return out


def full_ranking(scores: np.ndarray, relevant: Sequence[np.ndarray], seen: Sequence[np.ndarray],
                 ks: Sequence[int] = (*KS, 20), rng: np.random.Generator | None = None,
                 ) -> dict[str, np.ndarray]:
    """Full-ranking metrics per user.

    ``scores``: ``[B, n_items]``; ``relevant[b]`` / ``seen[b]``: item indices of user b's test
    positives / training items (masked to −inf before ranking).
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    b, n = scores.shape
    if len(relevant) != b or len(seen) != b:
        raise ValueError("scores, relevant and seen must describe the same users")
    rows_seen = np.repeat(np.arange(b), [len(s) for s in seen])
    if rows_seen.size:
        scores[rows_seen, np.concatenate(seen)] = -np.inf
    rel = np.zeros((b, n), dtype=bool)
    rows_rel = np.repeat(np.arange(b), [len(r) for r in relevant])
    if rows_rel.size:
        rel[rows_rel, np.concatenate(relevant)] = True
    kmax = max(ks)
    top = topk(scores, kmax, rng)
    hits = np.take_along_axis(rel, top, axis=1)
    # a masked item never counts even if the list is shorter than kmax on finite scores
    hits &= np.isfinite(np.take_along_axis(scores, top, axis=1))
    return metrics_from_hits(hits, rel.sum(axis=1), ks)


def sampled_ranks(pos_scores: np.ndarray, neg_scores: np.ndarray,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """0-based rank of each positive among its negatives (``[P]`` vs ``[P, n_neg]``).

    Rank = number of negatives scored higher, plus a uniform share of the tied ones.
    """
    pos = np.asarray(pos_scores, dtype=np.float64)[:, None]
    neg = np.asarray(neg_scores, dtype=np.float64)
    greater = (neg > pos).sum(axis=1)
    ties = (neg == pos).sum(axis=1)
    if rng is None:
        return greater
    return greater + rng.integers(0, ties + 1)


def sampled_ranking(ranks: np.ndarray, owners: np.ndarray, ks: Sequence[int] = KS,
                    ) -> dict[str, np.ndarray]:
    """HR@k and NDCG@k per user from each positive's rank (``owners[p]`` = its user row).

    One relevant item among 100: hit iff rank < k, DCG = 1 / log2(rank + 2), IDCG = 1; each
    user's value is the mean over their positives.
    """
    ranks = np.asarray(ranks)
    owners = np.asarray(owners)
    uniq, inverse = np.unique(owners, return_inverse=True)
    counts = np.bincount(inverse).astype(np.float64)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hit = (ranks < k).astype(np.float64)
        out[f"HR@{k}"] = np.bincount(inverse, hit) / counts
        out[f"NDCG@{k}"] = np.bincount(inverse, hit / np.log2(ranks + 2.0)) / counts
    return out


def sample_negatives(n_items: int, excluded: np.ndarray, n: int, rng: np.random.Generator,
                     ) -> np.ndarray:
    """``n`` distinct item indices in ``[0, n_items)`` outside ``excluded`` (rejection + top-up)."""
    allowed = n_items - len(np.unique(excluded))
    if allowed < n:
        raise ValueError(f"only {allowed} items are free to sample {n} negatives from")
    mask = np.zeros(n_items, dtype=bool)
    mask[excluded] = True
    if allowed < 4 * n:  # dense user: sample from the explicit free list
        return rng.choice(np.flatnonzero(~mask), size=n, replace=False)
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        draw = rng.integers(0, n_items, size=2 * n)
        draw = draw[~mask[draw]]
        out = np.unique(np.concatenate([out, draw]))
    return rng.permutation(out)[:n]


def mean_over_users(per_user: dict[str, np.ndarray],
                    reduce: Callable[[np.ndarray], float] = np.mean) -> dict[str, float]:
    """Eq. 22's 1/|U| Σ_u (and the same for every other metric)."""
    return {name: float(reduce(values)) for name, values in per_user.items()}
