"""VBPR: visual Bayesian personalised ranking (He & McAuley, AAAI 2016, Eq. 1–4).

``x̂_ui = β_i + ⟨γ_u, γ_i⟩ + ⟨θ_u, E f_i⟩ + ⟨β', f_i⟩``: BPR-MF plus a visual factor θ_u
matched against a learned linear projection ``E`` of the item's fixed feature vector f_i, and a
visual bias β'. Trained with the BPR loss. ``item_features`` is any ``[n_items, F]`` array (CNN
image features, colour histograms, text vectors); rows of zeros mean "no feature" (cold items
still get β'·f_i = 0 and θ_u·0). Without features the model is BPR-MF (stated in results).
Features are standardised per column before training.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.baselines.base import BaselineConfig
from models.baselines.bpr import MFModule, PairwiseTorchModel
from models.datasets import InteractionArrays


class VBPRModule(MFModule):
    def __init__(self, n_users: int, n_items: int, dim: int, features: torch.Tensor,
                 visual_dim: int) -> None:
        super().__init__(n_users, n_items, dim)
        self.register_buffer("features", features)
        self.theta = nn.Embedding(n_users, visual_dim)
        self.proj = nn.Linear(features.shape[1], visual_dim, bias=False)
        self.visual_bias = nn.Linear(features.shape[1], 1, bias=False)
        nn.init.normal_(self.theta.weight, std=0.1)
        nn.init.zeros_(self.visual_bias.weight)


class VBPR(PairwiseTorchModel):
    """BPR-MF + visual factors over a given item feature matrix."""

    name = "VBPR"

    def __init__(self, item_features: np.ndarray | None = None,
                 config: BaselineConfig | None = None, visual_dim: int | None = None,
                 progress: bool = False) -> None:
        super().__init__(config, progress)
        self.item_features = item_features
        self.visual_dim = visual_dim

    def _build(self, train: InteractionArrays) -> nn.Module:
        feats = self.item_features
        if feats is None:
            feats = np.zeros((self.n_items, 1))
        feats = np.asarray(feats, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[0] != self.n_items:
            raise ValueError(f"VBPR: item_features must be [n_items={self.n_items}, F], "
                             f"got {feats.shape}")
        std = feats.std(axis=0)
        feats = (feats - feats.mean(axis=0)) / np.where(std > 0, std, 1.0)
        dim = self.visual_dim or self.config.dim
        return VBPRModule(self.n_users, self.n_items, self.config.dim,
                          torch.from_numpy(feats.astype(np.float32)), dim)

    def _pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        m = self.module
        f = m.features[items]
        return ((m.user(users) * m.item(items)).sum(-1) + m.item_bias(items).squeeze(-1)
                + (m.theta(users) * m.proj(f)).sum(-1) + m.visual_bias(f).squeeze(-1))

    def _all_scores(self, users: torch.Tensor) -> torch.Tensor:
        m = self.module
        visual = m.proj(m.features)
        return (m.user(users) @ m.item.weight.T + m.item_bias.weight.T
                + m.theta(users) @ visual.T + m.visual_bias(m.features).T)
