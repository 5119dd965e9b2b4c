"""The proposed system offline: decayed multi-behaviour recall, and the hook for the fusion ranker.

Recall stage (implemented): paper 000 §3.2 builds the time-sensitive user × item matrix
``S(u,i,T) = Σ_k w_k · exp(−λ · daysAgo_k)`` (Eq. 1–3; weights 1/3/5/10, λ = 0.05/day), and §3.5
recalls candidates by "simple collaborative filtering based on user historical behavior". Our
reading, the serving design's co-visitation recall: item-item cosine similarity of
co-visitation (which users touched both items), and a user's score for item i is
``Σ_j S(u,j) · sim(j, i)`` over the user's strongest ``profile_items`` items by S. S comes from
``streams.decay.score_matrix`` — the same closed form the online Redis store applies — read at
the end of the training period T.

Why binary co-visitation for the similarity: on an inner validation split (Taobao category
level, the training part split again 80/20 per user; the test part never looked at), cosine over
the columns of S itself scored HR@5 0.13 against 0.26 for binary co-visitation with S-weighted
profiles: heavy repeat viewers dominate S's columns. ``similarity="decayed"`` keeps that variant.

Rerank stage (hook): the fusion network (Eq. 13–21; ``models/fusion.py`` with
``serving/fusion_scorer.py``, another engineer's) plugs in through :data:`RERANKER_FACTORY`: a
callable ``(EvalData) -> Reranker`` that scores each user's top ``n_candidates`` recalled items.
While it is None the proposed system is the recall stage alone, and the ablations "w/o textual
features" / "w/o visual features" (Table 3) cannot be measured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np
from scipy import sparse

from models.baselines.base import Recommender
from models.baselines.itemcf import ItemCF, cosine_item_similarity, strongest
from models.datasets import InteractionArrays
from scripts.evaluation.protocols import EvalData
from streams.config import DEFAULT_WEIGHTS
from streams.decay import score_matrix

DEFAULT_DECAY_PER_DAY = 0.05


class Reranker(Protocol):
    """Second stage: ``rerank(users, candidates)[b, j]`` scores ``candidates[b, j]``."""

    def fit(self, data: EvalData, seed: int) -> None: ...

    def rerank(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray: ...


#: Set by the fusion engineer (or a test) to enable the rerank stage of the proposed system.
RERANKER_FACTORY: Callable[[EvalData], Reranker] | None = None


class DecayItemCF(ItemCF):
    """Decay-weighted ItemCF: :class:`ItemCF` over the Eq. 1–3 score matrix of the train log."""

    name = "Proposed (decay-ItemCF)"

    def __init__(self, data: EvalData, weights: Mapping[str, float] | None = None,
                 decay_per_day: float = DEFAULT_DECAY_PER_DAY, profile_items: int = 50,
                 neighbors: int = 0, similarity: str = "binary") -> None:
        super().__init__(neighbors=neighbors, profile_items=profile_items)
        if similarity not in ("binary", "decayed"):
            raise ValueError(f"similarity must be 'binary' or 'decayed', got {similarity!r}")
        self.similarity = similarity
        self.data = data
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.decay_per_day = decay_per_day

    def user_item_matrix(self, train: InteractionArrays) -> sparse.csr_matrix:
        events = ((e.user, e.item, e.behavior, e.t) for e in self.data.split.train)
        scores = score_matrix(events, self.data.train_end, self.weights, self.decay_per_day)
        uix, iix = self.data.vocab.user_index(), self.data.vocab.item_index()
        rows, cols, vals = [], [], []
        for user, items in scores.items():
            for item, s in items.items():
                rows.append(uix[user])
                cols.append(iix[item])
                vals.append(s)
        return sparse.csr_matrix((vals, (rows, cols)), shape=(self.n_users, self.n_items))

    def _fit(self, train: InteractionArrays, seed: int) -> None:
        self.matrix = self.user_item_matrix(train)
        covisit = self.matrix.copy()
        if self.similarity == "binary":
            covisit.data[:] = 1.0
        self.sim = cosine_item_similarity(covisit, self.neighbors)
        self.profile = strongest(self.matrix, self.profile_items)


class ProposedSystem(Recommender):
    """Recall (decay-ItemCF) then, when a reranker is plugged in, rerank the top candidates.

    Reranked candidates are placed above every other item (their rerank scores offset past the
    largest recall score), so the list a shopper sees is the reranker's order of the recall.
    """

    def __init__(self, data: EvalData, recall: DecayItemCF,
                 reranker: Reranker | None = None, n_candidates: int = 200) -> None:
        super().__init__()
        self.data = data
        self.recall = recall
        self.reranker = reranker
        self.n_candidates = n_candidates
        self.name = recall.name if reranker is None else "Proposed (recall + fusion)"

    def _fit(self, train: InteractionArrays, seed: int) -> None:
        self.recall.fit(train, self.n_users, self.n_items, seed=seed)
        if self.reranker is not None:
            self.reranker.fit(self.data, seed)

    def _score(self, users: np.ndarray) -> np.ndarray:
        scores = self.recall.score(users)
        if self.reranker is None:
            return scores
        k = min(self.n_candidates, self.n_items)
        cand = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        reranked = np.asarray(self.reranker.rerank(users, cand), dtype=np.float64)
        offset = scores.max() - reranked.min() + 1.0
        np.put_along_axis(scores, cand, reranked + offset, axis=1)
        return scores


def proposed_scorer(data: EvalData, *, weights: Mapping[str, float] | None = None,
                    decay_per_day: float = DEFAULT_DECAY_PER_DAY,
                    profile_items: int = 50) -> Recommender:
    """The proposed system for ``data``: decay-ItemCF recall, plus the reranker if one is set."""
    recall = DecayItemCF(data, weights, decay_per_day, profile_items)
    reranker = RERANKER_FACTORY(data) if RERANKER_FACTORY is not None else None
    return ProposedSystem(data, recall, reranker)
