"""NeuMF: neural collaborative filtering (He et al., WWW 2017, §3.4).

A GMF branch (element-wise product of user/item embeddings) and an MLP branch (concatenated
embeddings through ReLU layers) are concatenated into one logit; trained pointwise with binary
cross-entropy on each observed pair and ``negatives`` sampled unobserved items (the paper's
log loss, Eq. 7, with 4 negatives). No pre-training (the paper's optional GMF/MLP init).
"""

from __future__ import annotations

import torch
from torch import nn

from models.baselines.base import BaselineConfig
from models.baselines.bpr import PairwiseTorchModel
from models.datasets import InteractionArrays


class NeuMFModule(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, layers: tuple[int, ...]) -> None:
        super().__init__()
        self.gmf_user = nn.Embedding(n_users, dim)
        self.gmf_item = nn.Embedding(n_items, dim)
        self.mlp_user = nn.Embedding(n_users, dim)
        self.mlp_item = nn.Embedding(n_items, dim)
        blocks: list[nn.Module] = []
        width = 2 * dim
        for out in layers:
            blocks += [nn.Linear(width, out), nn.ReLU()]
            width = out
        self.mlp = nn.Sequential(*blocks)
        self.head = nn.Linear(dim + width, 1)
        for emb in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(emb.weight, std=0.01)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        gmf = self.gmf_user(users) * self.gmf_item(items)
        mlp = self.mlp(torch.cat([self.mlp_user(users), self.mlp_item(items)], dim=-1))
        return self.head(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)


class NeuMF(PairwiseTorchModel):
    """GMF + MLP with a log loss over 1 positive and ``negatives`` sampled negatives."""

    name = "NeuMF"

    def __init__(self, config: BaselineConfig | None = None, layers: tuple[int, ...] = (64, 32),
                 negatives: int = 4, progress: bool = False) -> None:
        super().__init__(config, progress)
        self.layers = layers
        self.negatives = negatives

    def _build(self, train: InteractionArrays) -> nn.Module:
        return NeuMFModule(self.n_users, self.n_items, self.config.dim, self.layers)

    def _loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        # the sampler gives one negative per positive; draw the other (negatives − 1) here
        extra = torch.randint(0, self.n_items, (users.numel(), max(self.negatives - 1, 0)))
        negs = torch.cat([neg[:, None], extra], dim=1)
        logits_pos = self.module(users, pos)
        logits_neg = self.module(users[:, None].expand_as(negs), negs)
        bce = nn.functional.binary_cross_entropy_with_logits
        return (bce(logits_pos, torch.ones_like(logits_pos), reduction="sum")
                + bce(logits_neg, torch.zeros_like(logits_neg), reduction="sum")) / users.numel()

    def _pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.module(users, items)

    def _all_scores(self, users: torch.Tensor) -> torch.Tensor:
        items = torch.arange(self.n_items)
        step = max(1, 1_000_000 // self.n_items)  # ~1M (user, item) pairs per forward pass
        rows = []
        for start in range(0, users.numel(), step):
            chunk = users[start:start + step]
            pairs_u = chunk.repeat_interleave(self.n_items)
            pairs_i = items.repeat(chunk.numel())
            rows.append(self.module(pairs_u, pairs_i).view(chunk.numel(), self.n_items))
        return torch.cat(rows)
