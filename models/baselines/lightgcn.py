"""LightGCN (He et al., SIGIR 2020): linear propagation on the normalised user-item graph.

``E^(k+1) = D^{-1/2} A D^{-1/2} E^(k)`` over the bipartite graph A (Eq. 7 in matrix form), final
embedding the layer mean ``Σ_k E^(k) / (K + 1)`` (Eq. 8, α_k = 1/(K+1)), prediction the inner
product (Eq. 9), BPR loss with L2 on the layer-0 embeddings of the batch (Eq. 15). Full-graph
propagation each step: fine for the CI- and sample-sized graphs used here.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse
from torch import nn

from models.baselines.base import BaselineConfig, bpr_loss
from models.baselines.bpr import PairwiseTorchModel
from models.datasets import InteractionArrays


def normalized_adjacency(matrix: sparse.csr_matrix) -> torch.Tensor:
    """``D^{-1/2} A D^{-1/2}`` of the (users + items) bipartite graph as a sparse tensor."""
    n_users, n_items = matrix.shape
    adj = sparse.bmat([[None, matrix], [matrix.T, None]], format="coo")
    deg = np.asarray(adj.sum(axis=1)).ravel()
    inv = np.power(deg, -0.5, out=np.zeros_like(deg), where=deg > 0)
    norm = sparse.diags(inv) @ adj @ sparse.diags(inv)
    norm = norm.tocoo()
    idx = torch.from_numpy(np.vstack([norm.row, norm.col]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(norm.data.astype(np.float32)),
                                   (n_users + n_items, n_users + n_items),
                                   check_invariants=True).coalesce()


class LightGCNModule(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, layers: int,
                 graph: torch.Tensor) -> None:
        super().__init__()
        self.n_users = n_users
        self.layers = layers
        self.embedding = nn.Embedding(n_users + n_items, dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.graph = graph

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.embedding.weight
        total = e
        for _ in range(self.layers):
            e = torch.sparse.mm(self.graph, e)
            total = total + e
        final = total / (self.layers + 1)
        return final[: self.n_users], final[self.n_users:]


class LightGCN(PairwiseTorchModel):
    """LightGCN with ``layers`` propagation steps (default 2)."""

    name = "LightGCN"

    def __init__(self, config: BaselineConfig | None = None, layers: int = 2,
                 reg: float = 1e-4, progress: bool = False) -> None:
        cfg = config or BaselineConfig(weight_decay=0.0)
        super().__init__(cfg, progress)
        self.layers = layers
        self.reg = reg

    def _build(self, train: InteractionArrays) -> nn.Module:
        graph = normalized_adjacency(self.matrix)
        return LightGCNModule(self.n_users, self.n_items, self.config.dim, self.layers, graph)

    def _loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_emb, item_emb = self.module()
        u, i, j = user_emb[users], item_emb[pos], item_emb[neg]
        loss = bpr_loss((u * i).sum(-1), (u * j).sum(-1))
        e0 = self.module.embedding.weight
        l2 = (e0[users].pow(2).sum() + e0[self.n_users + pos].pow(2).sum()
              + e0[self.n_users + neg].pow(2).sum()) / (2 * users.numel())
        return loss + self.reg * l2

    def _fit(self, train: InteractionArrays, seed: int) -> None:
        super()._fit(train, seed)
        with torch.no_grad():
            self._users, self._items = self.module()

    def _all_scores(self, users: torch.Tensor) -> torch.Tensor:
        return self._users[users] @ self._items.T

    def _pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self._users[users] * self._items[items]).sum(-1)
