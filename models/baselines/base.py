"""One small interface for every offline model (the RecBole habit).

``fit(train, n_users, n_items, seed=...)`` learns from integer-coded training interactions
(:class:`models.datasets.InteractionArrays`); ``score(users)`` returns a dense
``[len(users), n_items]`` array (higher = better) for full ranking; ``score_items(users, items)``
scores one candidate list per user (``items[b]`` for ``users[b]``) for the sampled protocol.
The evaluation harness never branches on the model.

Shared helpers for the PyTorch models live here too: a seeded generator, the binary user-item
matrix, and uniform negative sampling for pairwise (BPR) training.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse

from models.datasets import InteractionArrays


class NotFittedError(RuntimeError):
    """``score`` was called before ``fit``."""


class Recommender(ABC):
    """Base class: subclasses implement :meth:`_fit` and :meth:`score`."""

    #: label used in result tables
    name: str = "model"

    def __init__(self) -> None:
        self.n_users = 0
        self.n_items = 0
        self._fitted = False

    def fit(self, train: InteractionArrays, n_users: int, n_items: int, *,
            seed: int = 0) -> Recommender:
        """Learn from ``train`` (indices below ``n_users`` / ``n_items``); returns ``self``."""
        if len(train) == 0:
            raise ValueError(f"{self.name}: no training interactions")
        if train.users.max() >= n_users or train.items.max() >= n_items:
            raise ValueError(f"{self.name}: interaction indices exceed n_users/n_items")
        self.n_users, self.n_items = n_users, n_items
        self._fit(train, seed)
        self._fitted = True
        return self

    @abstractmethod
    def _fit(self, train: InteractionArrays, seed: int) -> None: ...

    @abstractmethod
    def _score(self, users: np.ndarray) -> np.ndarray: ...

    def score(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for each user in ``users``: ``[len(users), n_items]``."""
        if not self._fitted:
            raise NotFittedError(f"{self.name}: call fit() before score()")
        return np.asarray(self._score(np.asarray(users, dtype=np.int64)), dtype=np.float64)

    def score_items(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``out[b, j]`` = score of ``items[b, j]`` for ``users[b]`` (default: gather)."""
        return np.take_along_axis(self.score(users), np.asarray(items, dtype=np.int64), axis=1)


def interaction_matrix(train: InteractionArrays, n_users: int, n_items: int,
                       values: np.ndarray | None = None) -> sparse.csr_matrix:
    """User × item CSR matrix; duplicates summed, or binary (1) when ``values`` is None."""
    data = np.ones(len(train)) if values is None else np.asarray(values, dtype=np.float64)
    m = sparse.csr_matrix((data, (train.users, train.items)), shape=(n_users, n_items))
    m.sum_duplicates()
    if values is None:
        m.data[:] = 1.0
    return m


@dataclass
class BaselineConfig:
    """Hyper-parameters shared by the PyTorch baselines (small defaults for CPU)."""

    dim: int = 32
    epochs: int = 20
    batch_size: int = 1024
    lr: float = 5e-3
    weight_decay: float = 1e-5
    threads: int = 1


class PairSampler:
    """Uniform BPR triples (u, i⁺, j⁻) with j⁻ not in u's training items (Rendle et al. 2009)."""

    def __init__(self, matrix: sparse.csr_matrix, rng: np.random.Generator) -> None:
        self.matrix = matrix
        self.rng = rng
        coo = matrix.tocoo()
        self.users = coo.row.astype(np.int64)
        self.items = coo.col.astype(np.int64)

    def epoch(self, batch_size: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        order = self.rng.permutation(self.users.size)
        users, pos = self.users[order], self.items[order]
        neg = self.negatives(users)
        return [(users[s:s + batch_size], pos[s:s + batch_size], neg[s:s + batch_size])
                for s in range(0, users.size, batch_size)]

    def negatives(self, users: np.ndarray) -> np.ndarray:
        n_items = self.matrix.shape[1]
        neg = self.rng.integers(0, n_items, size=users.size)
        for _ in range(10):  # resample the few collisions with the user's own items
            bad = np.asarray(self.matrix[users, neg]).ravel() > 0
            if not bad.any():
                break
            neg[bad] = self.rng.integers(0, n_items, size=int(bad.sum()))
        return neg


def seeded(seed: int, threads: int = 1) -> tuple[np.random.Generator, torch.Generator]:
    """Seed torch globally (module init) and return numpy/torch generators for sampling."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    return np.random.default_rng(seed), torch.Generator().manual_seed(seed)


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """−log σ(x̂_ui − x̂_uj), the BPR-Opt criterion (Rendle et al. 2009, Eq. 6)."""
    return -torch.nn.functional.logsigmoid(pos - neg).mean()
