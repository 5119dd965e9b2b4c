"""BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking (Rendle et al.,
UAI 2009). ``x̂_ui = ⟨p_u, q_i⟩ + b_i``, loss −log σ(x̂_ui − x̂_uj) over uniform (u, i⁺, j⁻)
triples, Adam with L2 (``weight_decay``).

:class:`PairwiseTorchModel` is the shared training loop of every pairwise PyTorch model here
(BPR-MF, VBPR, LightGCN): subclasses build ``self.module`` and implement ``_pair_scores`` and
``_all_scores``; NeuMF overrides ``_loss`` with its pointwise log loss.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.baselines.base import (
    BaselineConfig,
    PairSampler,
    Recommender,
    bpr_loss,
    interaction_matrix,
    seeded,
)
from models.datasets import InteractionArrays
from models.progress import progress


class PairwiseTorchModel(Recommender):
    """Mini-batch Adam over BPR triples; ``progress`` shows a tqdm bar over epochs."""

    def __init__(self, config: BaselineConfig | None = None, progress: bool = False) -> None:
        super().__init__()
        self.config = config or BaselineConfig()
        self.progress = progress

    def _build(self, train: InteractionArrays) -> nn.Module:
        raise NotImplementedError

    def _pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _all_scores(self, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        return bpr_loss(self._pair_scores(users, pos), self._pair_scores(users, neg))

    def _fit(self, train: InteractionArrays, seed: int) -> None:
        rng, _ = seeded(seed, self.config.threads)
        self.matrix = interaction_matrix(train, self.n_users, self.n_items)
        self.module = self._build(train)
        sampler = PairSampler(self.matrix, rng)
        opt = torch.optim.Adam(self.module.parameters(), lr=self.config.lr,
                               weight_decay=self.config.weight_decay)
        self.module.train()
        epochs = progress(range(self.config.epochs), desc=self.name, disable=not self.progress,
                      leave=False)
        for _ in epochs:
            total = 0.0
            for u, i, j in sampler.epoch(self.config.batch_size):
                opt.zero_grad()
                loss = self._loss(torch.from_numpy(u), torch.from_numpy(i), torch.from_numpy(j))
                loss.backward()
                opt.step()
                total += float(loss.detach()) * u.size
            epochs.set_postfix(loss=total / max(sampler.users.size, 1))
        self.module.eval()

    def _score(self, users: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._all_scores(torch.from_numpy(users)).numpy()


class MFModule(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)


class BPRMF(PairwiseTorchModel):
    """Matrix factorisation with item bias, trained by BPR."""

    name = "BPR-MF"

    def _build(self, train: InteractionArrays) -> nn.Module:
        return MFModule(self.n_users, self.n_items, self.config.dim)

    def _pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        m = self.module
        return (m.user(users) * m.item(items)).sum(-1) + m.item_bias(items).squeeze(-1)

    def _all_scores(self, users: torch.Tensor) -> torch.Tensor:
        m = self.module
        return m.user(users) @ m.item.weight.T + m.item_bias.weight.T
