"""The fusion network (paper 000 §3.3, Eq. 4, 13–21) as the offline rerank stage.

:class:`FusionReranker` trains the product's :class:`models.fusion.FusionRanker` with the
product's trainer (:mod:`models.training`: MSE on the decayed scores S of Eq. 1–3 with sampled
negatives, Adam 1e-4, batch 128, early stopping with patience 5 on a validation split of the
*training* pairs) on the evaluation's training events, then scores a shopper's candidates the way
``serving/fusion_scorer.py`` does online: the shopper is ``[e_u ; p_u]`` (ID embedding + the
S-weighted mean of the fused vectors of the shopper's training items) and the item side comes
from the cached first-layer terms (:meth:`FusionRanker.item_cache`, :meth:`score_pairs`).

It also serves the *content* source of recall: the nearest neighbours of an item by cosine of
the trained network's fused vectors, as the FAISS index of the re-fused feature store answers
online (``stylestream train`` re-fuses the store with the trained network). Only items with
content (an ``articles.csv`` row) are in that index, as online only items with features are.

Ablations of Table 3 (our reading: remove the modality's *input*, keep the architecture):

- ``ablate="text"`` — "w/o textual features": every text vector is zero, so the text token is
  the text head's constant bias and carries no item information;
- ``ablate="visual"`` — "w/o visual features": every item is marked image-less
  (``present = False``), so the visual token is zeroed and masked out as an attention key, the
  path the product takes for an item without a picture.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from evaluation.content import ItemContent
from evaluation.protocols import EvalData
from models.fusion import FusionRanker, ItemFeatures, weighted_profile
from models.training import TrainConfig, Trainer
from streams.decay import score_matrix

ABLATIONS: tuple[str | None, ...] = (None, "text", "visual")


@dataclass(frozen=True)
class FusionEvalConfig:
    """Training settings of the offline fusion runs (paper §4.1.3 except ``epochs``, capped so
    a seed trains in minutes on two CPU cores; early stopping usually ends sooner)."""

    epochs: int = 20
    patience: int = 5
    negatives: int = 4
    lr: float = 1e-4
    batch_size: int = 128
    ablate: str | None = None
    loss: str = "mse"

    def __post_init__(self) -> None:
        if self.ablate not in ABLATIONS:
            raise ValueError(f"ablate must be one of {ABLATIONS}, got {self.ablate!r}")


def ablated(features: ItemFeatures, ablate: str | None) -> ItemFeatures:
    """The inputs with one modality removed (see the module docstring)."""
    if ablate == "text":
        return replace(features, text=torch.zeros_like(features.text))
    if ablate == "visual":
        return replace(features, visual=torch.zeros_like(features.visual),
                       present=torch.zeros_like(features.present))
    return features


class FusionReranker:
    """Trained fusion network over the evaluation vocabulary: rerank, score all, neighbours."""

    def __init__(self, content: ItemContent, weights: Mapping[str, float], decay_per_day: float,
                 config: FusionEvalConfig = FusionEvalConfig()) -> None:
        self.content = content
        self.weights = dict(weights)
        self.decay_per_day = decay_per_day
        self.config = config
        self.best_epoch = 0

    def fit(self, data: EvalData, seed: int) -> None:
        c = self.config
        events = ((e.user, e.item, e.behavior, e.t) for e in data.split.train)
        matrix = score_matrix(events, data.train_end, self.weights, self.decay_per_day)
        features = ablated(self.content.features, c.ablate)
        trainer = Trainer(matrix, features, TrainConfig(
            lr=c.lr, batch_size=c.batch_size, epochs=c.epochs, patience=c.patience,
            negatives=c.negatives, loss=c.loss, seed=seed, progress=False))
        result = trainer.fit()
        self.best_epoch = result.best_epoch
        model: FusionRanker = result.model.eval()
        rows = {user: k + 1 for k, user in enumerate(result.users)}
        item_index = data.vocab.item_index()
        n_users, n_items = data.vocab.n_users, data.vocab.n_items
        history = torch.zeros(n_users, n_items)
        for u, user in enumerate(data.vocab.users):
            for item, s in matrix.get(user, {}).items():
                history[u, item_index[item]] = s
        with torch.no_grad():
            fused = model.fuse(features.visual, features.text, features.present)
            self.cache = model.item_cache(fused)
            profiles = weighted_profile(fused, history)
            ids = torch.tensor([rows.get(user, 0) for user in data.vocab.users])
            self.users = model.user_repr(ids, profiles)           # [n_users, 32 + 600]
        self.model = model
        known = self.content.known
        self.index_rows = torch.nonzero(known).squeeze(1)
        unit = torch.nn.functional.normalize(fused, dim=1)
        self.unit = unit
        self.index_unit = unit[self.index_rows]

    @torch.no_grad()
    def rerank(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """``out[b, j]`` = the network's score of ``candidates[b, j]`` for ``users[b]``."""
        u = self.users[torch.as_tensor(users)]
        cache = self.cache[torch.as_tensor(candidates)]
        return self.model.score_pairs(u, None, cache=cache).numpy()

    @torch.no_grad()
    def score_all(self, users: np.ndarray, chunk: int = 16) -> np.ndarray:
        """Every item for every user (the network alone, no recall): ``[B, n_items]``."""
        out = []
        every = torch.arange(self.cache.shape[0])
        for start in range(0, len(users), chunk):
            part = users[start:start + chunk]
            cand = every.expand(len(part), -1)
            out.append(self.rerank(part, cand.numpy()))
        return np.concatenate(out)

    @torch.no_grad()
    def neighbours(self, items: np.ndarray, k: int) -> dict[int, list[tuple[int, float]]]:
        """Cosine top-``k`` content neighbours (items with content only) of each item in
        ``items``; an item without content has none, as online."""
        out: dict[int, list[tuple[int, float]]] = {}
        known = self.content.known
        with_content = [int(i) for i in items if bool(known[int(i)])]
        for i in items:
            out[int(i)] = []
        if not with_content or self.index_rows.numel() == 0:
            return out
        k1 = min(k + 1, self.index_rows.numel())
        for start in range(0, len(with_content), 1024):
            part = with_content[start:start + 1024]
            sims = self.unit[torch.tensor(part)] @ self.index_unit.T
            top = torch.topk(sims, k1, dim=1)
            for row, item in enumerate(part):
                found = [(int(self.index_rows[c]), float(s))
                         for s, c in zip(top.values[row], top.indices[row], strict=True)
                         if int(self.index_rows[c]) != item]
                out[item] = found[:k]
        return out


class SharedFits:
    """Trains each (settings, seed) fusion network once per study run: the comparison's
    two-stage system, the network-alone row and the ablation's full system share one fit."""

    def __init__(self) -> None:
        self._fits: dict[tuple, FusionReranker] = {}

    def reranker(self, content: ItemContent, weights: Mapping[str, float], decay_per_day: float,
                 config: FusionEvalConfig = FusionEvalConfig()) -> SharedReranker:
        key = (tuple(sorted(weights.items())), decay_per_day, config)
        return SharedReranker(self._fits, key,
                              lambda: FusionReranker(content, weights, decay_per_day, config))


class SharedReranker:
    """A :class:`FusionReranker` fitted at most once per key and seed (see :class:`SharedFits`)."""

    def __init__(self, fits: dict[tuple, FusionReranker], key: tuple, make) -> None:
        self._fits, self._key, self._make = fits, key, make
        self.inner: FusionReranker | None = None

    def fit(self, data: EvalData, seed: int) -> None:
        key = (*self._key, data.label, seed)
        if key not in self._fits:
            fitted = self._make()
            fitted.fit(data, seed)
            self._fits[key] = fitted
        self.inner = self._fits[key]

    def _fitted(self) -> FusionReranker:
        if self.inner is None:
            raise RuntimeError("fit() the reranker before using it")
        return self.inner

    def rerank(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return self._fitted().rerank(users, candidates)

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return self._fitted().score_all(users)

    def neighbours(self, items: np.ndarray, k: int) -> dict[int, list[tuple[int, float]]]:
        return self._fitted().neighbours(items, k)
