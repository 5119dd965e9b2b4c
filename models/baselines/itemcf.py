"""Item-based collaborative filtering with cosine similarity (Sarwar et al., WWW 2001).

``sim(i, j) = cos(r_i, r_j)`` over the item columns of the user × item matrix;
``score(u, i) = Σ_j r_uj · sim(j, i)`` over the user's training items. The matrix is binary by
default (the paper 000 baseline, "co-occurrence similarity"); the proposed system's recall
stage reuses this class with decayed multi-behaviour scores as ``r`` (see
``evaluation/proposed.py``). ``neighbors`` keeps each item's top-k similar items
(0 = keep all); ``profile_items`` keeps each user's strongest N items (0 = all).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from models.baselines.base import Recommender, interaction_matrix
from models.datasets import InteractionArrays


def cosine_item_similarity(matrix: sparse.csr_matrix, neighbors: int = 0) -> sparse.csr_matrix:
    """Item × item cosine similarity of the columns of ``matrix``, diagonal removed."""
    cols = normalize_columns(matrix)
    sim = (cols.T @ cols).tocsr()
    sim.setdiag(0.0)
    sim.eliminate_zeros()
    if neighbors > 0:
        sim = _keep_top(sim, neighbors)
    return sim


def normalize_columns(matrix: sparse.spmatrix) -> sparse.csc_matrix:
    """Scale every column to unit L2 norm (all-zero columns stay zero); keeps a float dtype."""
    dtype = matrix.dtype if np.issubdtype(matrix.dtype, np.floating) else np.float64
    cols = sparse.csc_matrix(matrix, dtype=dtype)
    norms = np.sqrt(np.asarray(cols.multiply(cols).sum(axis=0)).ravel())
    scale = (1.0 / np.where(norms > 0, norms, 1.0)).astype(dtype)
    return (cols @ sparse.diags(scale)).tocsc()


def _keep_top(sim: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    rows, cols, vals = [], [], []
    for r in range(sim.shape[0]):
        start, end = sim.indptr[r], sim.indptr[r + 1]
        if end - start == 0:
            continue
        data, idx = sim.data[start:end], sim.indices[start:end]
        keep = np.argsort(-data, kind="stable")[:k]
        rows.append(np.full(keep.size, r))
        cols.append(idx[keep])
        vals.append(data[keep])
    if not rows:
        return sim
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=sim.shape)


def strongest(profile: sparse.csr_matrix, n: int) -> sparse.csr_matrix:
    """Keep each row's ``n`` largest entries (a user's strongest items)."""
    if n <= 0:
        return profile
    return _keep_top(profile, n)


class ItemCF(Recommender):
    """Cosine item-item CF over a (binary by default) user × item matrix."""

    name = "ItemCF"

    def __init__(self, neighbors: int = 0, profile_items: int = 0) -> None:
        super().__init__()
        self.neighbors = neighbors
        self.profile_items = profile_items

    def user_item_matrix(self, train: InteractionArrays) -> sparse.csr_matrix:
        """The matrix similarity and profiles are built from (override to weight it)."""
        return interaction_matrix(train, self.n_users, self.n_items)

    def _fit(self, train: InteractionArrays, seed: int) -> None:
        self.matrix = self.user_item_matrix(train)
        self.sim = cosine_item_similarity(self.matrix, self.neighbors)
        self.profile = strongest(self.matrix, self.profile_items)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.profile[users] @ self.sim).todense())
