"""Non-personalised reference models: random scores and item popularity.

``Random`` is the floor every learned model must clear; ``Popularity`` ranks items by how many
distinct training users touched them (RecBole's ``Pop``), the usual strong floor of sparse data.
"""

from __future__ import annotations

import numpy as np

from models.baselines.base import Recommender, interaction_matrix
from models.datasets import InteractionArrays


class RandomScores(Recommender):
    """Uniform random scores, redrawn at each call from the fit seed's generator."""

    name = "Random"

    def _fit(self, train: InteractionArrays, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._rng.random((users.size, self.n_items))


class Popularity(Recommender):
    """Score of item i = number of distinct training users who interacted with i."""

    name = "Pop"

    def _fit(self, train: InteractionArrays, seed: int) -> None:
        m = interaction_matrix(train, self.n_users, self.n_items)
        self.counts = np.asarray(m.sum(axis=0)).ravel()

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (users.size, self.n_items)).copy()
