"""The learned final ranker in the serving chain (:mod:`models.next_event`).

It wraps the chain below it (the fusion network and the paper-002 rules when present, else the
decayed-score/co-visitation scorer): that chain's score becomes one pair feature
(``base_score``) beside the stream's own (:mod:`serving.pair_features`), and the ranker orders
every candidate — repeats and new items alike. Reasons come from the chain below, and for the
shopper's own items from the recall ("still in your cart", "you viewed this 2 days ago").

When the checkpoint carries a calibration (:class:`models.next_event.Calibration`, fitted by
the replay on its validation cut), the published scores are the candidates' chances of a hit
and :attr:`NextEventScorer.calibrated` is True: the final list then composes repeats and new
items per shopper (:mod:`serving.explore`).

The checkpoint is re-read when its file changes (a retrained ranker goes live without a
restart), like the fusion scorer's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from models.next_event import load_ranker
from serving.decay_scorer import recall_reasons
from serving.pair_features import FEATURES, IN_HISTORY, LOG_HISTORY_SIZE, pair_features
from serving.scorer import (
    Candidate,
    LazyReasonsItem,
    RerankRequest,
    ScoredItem,
    Scorer,
    ShopperContext,
)

log = logging.getLogger(__name__)


#: rows per forward pass of the ranker's MLP. Every pass has exactly this shape (the last one
#: padded with zero rows) and runs on one thread, so a row's score never depends on which other
#: shoppers share its micro-batch or where its rows land: a matrix product picks its kernel and
#: its split over threads by shape, and another kernel may round the last bit differently, which
#: would reorder near-ties from one run of the live system to the next.
RANKER_ROWS = 256


class RowScorer(Protocol):
    def score(self, features: np.ndarray) -> np.ndarray: ...


def score_rows(model: RowScorer, rows: np.ndarray, chunk: int = RANKER_ROWS) -> np.ndarray:
    """``model.score`` of ``rows`` ``[N, F]`` in fixed-shape passes of ``chunk`` rows on one
    torch thread: a micro-batch's ~25,000 rows in ~100 passes instead of one call per shopper
    (a small MLP per shopper costs more in dispatch and thread wake-ups than in arithmetic)."""
    n = len(rows)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    pad = (-n) % chunk
    if pad:
        rows = np.concatenate([rows, np.zeros((pad, rows.shape[1]), dtype=rows.dtype)])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = np.concatenate([model.score(rows[k: k + chunk])
                              for k in range(0, len(rows), chunk)])
    finally:
        torch.set_num_threads(threads)
    return out[:n]


def kept_by_chain(candidates: Sequence[Candidate], scored: Sequence[ScoredItem],
                  ) -> tuple[list[Candidate], dict[str, ScoredItem]]:
    """The candidates the final ranker orders — those the stages below kept (they decide what
    may be shown: bought items, the rule stage's gender and distance filters) — and the chain's
    scored item for each; the replay's training groups use it too, so the ranker learns on
    what it serves."""
    by_item = {s.item_id: s for s in scored}
    return [c for c in candidates if c.item_id in by_item], by_item


class RankedItem(LazyReasonsItem):
    """The final ranker's scored item; its reasons — the chain's below, or the recall's for
    the shopper's own items and for items the chain gave none — are written when first read
    (only the published few are). ``source``: (shopper, candidate, the chain's scored item,
    titles)."""

    _source: tuple[ShopperContext, Candidate, ScoredItem, Mapping[str, str] | None]

    def _write_reasons(self) -> list[str]:
        shopper, candidate, below, titles = self._source
        reasons = below.reasons
        if "history" in candidate.sources or not reasons:
            reasons = recall_reasons(shopper, candidate, titles)
        return reasons


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
        self.calibration = loaded.calibration
        self._mtime = self.path.stat().st_mtime_ns
        self.ranker_version = loaded.version

    @property
    def version(self) -> str:
        """The ranker's version, then the chain's below it (it follows their reloads)."""
        return f"{self.ranker_version}+{self.base.version}"

    @property
    def calibrated(self) -> bool:
        """True when :meth:`score` returns chances of a hit (the checkpoint is calibrated)."""
        return self.calibration is not None

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
        """Every shopper's kept candidates through the ranker, the rows of all shoppers stacked
        (:func:`score_rows`), calibrated per shopper."""
        base = self.base.score(request)
        popularity = request.popularity.values
        top_pop = max(popularity.values(), default=0.0)
        kept = []
        blocks = []
        for shopper, cands, scored in zip(request.shoppers, request.candidates, base,
                                          strict=True):
            cands, by_item = kept_by_chain(cands, scored)
            kept.append((shopper, cands, by_item))
            if cands:
                blocks.append(pair_features(shopper, cands, popularity, top_pop,
                                            [by_item[c.item_id].score for c in cands]))
        all_scores = score_rows(self.model, np.concatenate(blocks)) if blocks else None
        out: list[list[ScoredItem]] = []
        start = 0
        rows_of = iter(blocks)
        titles = self.titles
        for shopper, cands, by_item in kept:
            if not cands:
                out.append([])
                continue
            rows = next(rows_of)
            scores = all_scores[start: start + len(cands)]
            start += len(cands)
            if self.calibration is not None:
                scores = self.calibration.probabilities(
                    scores, rows[:, IN_HISTORY], rows[:, LOG_HISTORY_SIZE])
            out.append([RankedItem(cand.item_id, value, (shopper, cand, by_item[cand.item_id],
                                                         titles))
                        for cand, value in zip(cands, scores.tolist(), strict=True)])
        return out
