"""The learned final ranker in the serving chain (:mod:`models.next_event`).

It wraps the chain below it (the fusion network and the paper-002 rules when present, else the
decayed-score/co-visitation scorer): that chain's score becomes one pair feature
(``base_score``) beside the stream's own (:mod:`serving.pair_features`), and the ranker orders
every candidate — repeats and new items alike. Reasons come from the chain below, and for the
shopper's own items from the recall ("still in your cart", "you viewed this 2 days ago").

The checkpoint is re-read when its file changes (a retrained ranker goes live without a
restart), like the fusion scorer's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from models.next_event import load_ranker
from serving.decay_scorer import recall_reasons
from serving.pair_features import FEATURES, pair_features
from serving.scorer import RerankRequest, ScoredItem, Scorer

log = logging.getLogger(__name__)


class NextEventScorer:
    """Final stage: pair features + the base chain's score → the trained ranker's order."""

    reads_popularity = True

    def __init__(self, checkpoint: str | os.PathLike[str], base: Scorer,
                 titles: Mapping[str, str] | None = None) -> None:
        self.path = Path(checkpoint)
        self.base = base
        self.titles = titles
        self._load()

    def _load(self) -> None:
        loaded = load_ranker(self.path)
        if tuple(loaded.features) != FEATURES:
            raise ValueError(f"{self.path}: trained on features {loaded.features}, this version "
                             f"computes {list(FEATURES)}; retrain the ranker")
        self.model = loaded.model
        self._mtime = self.path.stat().st_mtime_ns
        self.ranker_version = loaded.version

    @property
    def version(self) -> str:
        """The ranker's version, then the chain's below it (it follows their reloads)."""
        return f"{self.ranker_version}+{self.base.version}"

    def maybe_reload(self) -> bool:
        """Re-read the checkpoint when its file changed; True when a new one was loaded (the
        stages below reload on their own: :meth:`serving.chain.ScorerChain.maybe_reload`)."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return False
        if mtime == self._mtime:
            return False
        try:
            self._load()
        except (OSError, ValueError) as exc:
            log.warning("ranker checkpoint %s changed but is not loadable (%s); keeping %s",
                        self.path, exc, self.version)
            return False
        log.info("reloaded ranker %s", self.version)
        return True

    def score(self, request: RerankRequest) -> list[list[ScoredItem]]:
        base = self.base.score(request)
        popularity = request.popularity.values
        top_pop = max(popularity.values(), default=0.0)
        out = []
        for shopper, cands, scored in zip(request.shoppers, request.candidates, base,
                                          strict=True):
            if not cands:
                out.append([])
                continue
            by_item = {s.item_id: s for s in scored}
            base_scores = [by_item[c.item_id].score if c.item_id in by_item else 0.0
                           for c in cands]
            rows = pair_features(shopper, cands, popularity, top_pop, base_scores)
            scores = self.model.score(rows)
            items = []
            for cand, value in zip(cands, scores.tolist(), strict=True):
                reasons = by_item[cand.item_id].reasons if cand.item_id in by_item else []
                if "history" in cand.sources or not reasons:
                    reasons = recall_reasons(shopper, cand, self.titles)
                items.append(ScoredItem(cand.item_id, float(value), reasons))
            out.append(items)
        return out
