"""Cross-modal fusion and preference prediction (paper 000 §3.3.1, §3.3.4–3.3.5, Eq. 4, 13–20).

Item side (Eq. 13–18): the visual token ``E1`` (Eq. 9, 300-d) and the text token ``E2``
(Eq. 12, 300-d) form a sequence of two modality tokens; 8-head scaled dot-product
self-attention with an output projection ``W_O`` (Eq. 14–17) lets each token attend to the
other; the attended tokens ``E1', E2'`` are concatenated into the 600-d fused vector (Eq. 18).

Reading of the paper: Eq. 13 concatenates ``E = [E1; E2]`` ∈ R^600 and Eq. 14 projects "E" with
``W_Q ∈ R^{600×d_k}``; self-attention over that single vector would be a softmax over one key
(always 1), and Eq. 18 concatenates two attended tokens ``E1', E2'``. So we read the input as
the two-token sequence ``[E1, E2]`` whose concatenation is E. ``d_k`` per head is not given; we
use 64 (8 heads → 512 projected, mapped back to 300 by ``W_O``). A residual connection
``E' = E + MultiHead(E)`` (the Transformer's; not in the text) keeps each token's own modality,
and an item without an image has its visual token zeroed and masked out as a key.

Prediction (Eq. 19–20): the paper feeds "the user profile and the multi-modal features of
candidate items" to an MLP 256 + ReLU → 1. The shopper is ``u = [e_u ; p_u]``: ``e_u`` the user
ID embedding (Eq. 4; row 0 is the "unknown user", used for new shoppers and trained by randomly
hiding IDs) and ``p_u`` the profile, the score-weighted mean of the fused vectors of the
shopper's items (600-d; new shoppers without history get zeros). The MLP input is
``[u ; f_i ; (A·p_u) ⊙ (B·f_i)]``: besides the concatenation, a rank-``r`` elementwise pair term
(our addition, ``pair_rank``; 0 turns it off) lets a one-hidden-layer MLP express "candidate
resembles the profile" cheaply. The first layer splits as
``W1·x = W_u·u + W_f·f_i + W_r·((A·p_u) ⊙ (B·f_i))``: a per-shopper term, a per-item term
``[W_f·f_i ; B·f_i]`` that is cached, and one small batched matmul
``(B·f_i) · diag(A·p_u) · W_r`` — which :meth:`FusionRanker.score_pairs` exploits.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.checkpoints import load_model, save_model
from models.text import TextHead
from models.visual import VisualHead

MODEL_FORMAT = "stylestream-fusion/1"


@dataclass
class ItemFeatures:
    """Stored per-item inputs of the network, row-aligned with ``ids``: pooled backbone vectors
    ``visual [N,Dv]`` (GAP of Eq. 7), BERT ``T`` vectors ``text [N,Dt]`` (Eq. 11) and
    ``present [N]`` (False = no image; its visual row is zeros)."""

    ids: list[str]
    visual: torch.Tensor
    text: torch.Tensor
    present: torch.Tensor

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not (self.visual.shape[0] == self.text.shape[0] == self.present.shape[0] == n):
            raise ValueError(f"item features disagree: {n} ids, visual {tuple(self.visual.shape)}"
                             f", text {tuple(self.text.shape)}, present "
                             f"{tuple(self.present.shape)}")

    def index(self) -> dict[str, int]:
        return {item: row for row, item in enumerate(self.ids)}


@dataclass
class FusionConfig:
    """Sizes of the fusion ranker. ``visual_in``/``text_in``: dims of the stored backbone (GAP)
    and BERT (``T``) vectors; ``n_users``: known user IDs (row 0 = unknown is extra)."""

    visual_in: int = 2048
    text_in: int = 384
    n_users: int = 0
    token_dim: int = 300
    visual_hidden: int = 512
    heads: int = 8
    head_dim: int = 64
    user_dim: int = 32
    hidden: int = 256
    pair_rank: int = 64
    residual: bool = True
    dropout: float = 0.0

    @property
    def fused_dim(self) -> int:
        return 2 * self.token_dim

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FusionConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class ModalityAttention(nn.Module):
    """Eq. 14–17: multi-head scaled dot-product self-attention over modality tokens."""

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(dim, 3 * heads * head_dim)          # W_Q, W_K, W_V (Eq. 14)
        self.out = nn.Linear(heads * head_dim, dim)                # W_O (Eq. 17)
        self.dropout = dropout

    def forward(self, tokens: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``tokens [N,T,dim]``, ``key_mask [N,T]`` (True = may be attended) → ``[N,T,dim]``."""
        n, t, _ = tokens.shape
        q, k, v = self.qkv(tokens).view(n, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        heads = F.scaled_dot_product_attention(  # softmax(QK^T/√d_k)V per head (Eq. 15–16)
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(heads.transpose(1, 2).reshape(n, t, self.heads * self.head_dim))


class FusionRanker(nn.Module):
    """Heads (Eq. 9, 12) + fusion (Eq. 13–18) + shopper/candidate MLP (Eq. 4, 19–20)."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.visual_head = VisualHead(c.visual_in, c.visual_hidden, c.token_dim)
        self.text_head = TextHead(c.text_in, c.token_dim)
        self.attention = ModalityAttention(c.token_dim, c.heads, c.head_dim, c.dropout)
        self.user_embedding = nn.Embedding(c.n_users + 1, c.user_dim)  # row 0: unknown user
        nn.init.normal_(self.user_embedding.weight, std=0.01)
        self.w_user = nn.Linear(c.user_dim + c.fused_dim, c.hidden)   # user term (+ b1)
        self.w_item = nn.Linear(c.fused_dim, c.hidden, bias=False)    # item term (cacheable)
        if c.pair_rank > 0:
            self.pair_user = nn.Linear(c.fused_dim, c.pair_rank, bias=False)   # A
            self.pair_item = nn.Linear(c.fused_dim, c.pair_rank, bias=False)   # B
            self.w_pair = nn.Linear(c.pair_rank, c.hidden, bias=False)         # W_r
        self.w_out = nn.Linear(c.hidden, 1)                           # Eq. 20

    # ---- item side -------------------------------------------------------------------------
    def tokens(self, visual: torch.Tensor, text: torch.Tensor,
               present: torch.Tensor | None = None) -> torch.Tensor:
        """Modality tokens ``[N,2,300]`` from stored vectors; a missing image → zero token."""
        v = self.visual_head(visual)
        if present is not None:
            v = v * present.to(v.dtype).unsqueeze(-1)
        return torch.stack([v, self.text_head(text)], dim=1)

    def fuse_tokens(self, tokens: torch.Tensor,
                    present: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 13–18: ``[N,2,300]`` → attended, concatenated ``[N,600]``."""
        key_mask = None
        if present is not None:
            key_mask = torch.stack([present.bool(), torch.ones_like(present, dtype=torch.bool)], 1)
        attended = self.attention(tokens, key_mask)
        if self.config.residual:
            attended = tokens + attended
        return attended.flatten(1)

    def fuse(self, visual: torch.Tensor, text: torch.Tensor,
             present: torch.Tensor | None = None) -> torch.Tensor:
        """Stored visual ``[N,Dv]`` + text ``[N,Dt]`` vectors → fused item vectors ``[N,600]``."""
        return self.fuse_tokens(self.tokens(visual, text, present), present)

    # ---- shopper side ----------------------------------------------------------------------
    def user_repr(self, user_index: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
        """``u = [e_u ; p_u]``: ID embedding (Eq. 4; index 0 = unknown) and 600-d profile."""
        return torch.cat([self.user_embedding(user_index), profile], dim=-1)

    # ---- prediction ------------------------------------------------------------------------
    def item_cache(self, item_fused: torch.Tensor) -> torch.Tensor:
        """Everything of the first layer that depends on the item alone:
        ``[W_f·f_i ; B·f_i]`` (``[..., hidden + pair_rank]``), cached per item by the scorer."""
        term = self.w_item(item_fused)
        if self.config.pair_rank > 0:
            term = torch.cat([term, self.pair_item(item_fused)], dim=-1)
        return term

    def score_pairs(self, user: torch.Tensor, item_fused: torch.Tensor | None,
                    cache: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 19–20 for every shopper × its candidates: ``user [B,U]`` and ``item_fused
        [B,C,600]`` (or the cached ``item_cache [B,C,H+r]``) → scores ``[B,C]``."""
        if cache is None:
            if item_fused is None:
                raise ValueError("score_pairs needs item_fused or cache")
            cache = self.item_cache(item_fused)
        h = self.config.hidden
        hidden = self.w_user(user).unsqueeze(1) + cache[..., :h]              # [B,C,H]
        if self.config.pair_rank > 0:
            profile = user[:, self.config.user_dim:]                          # [B,600]
            scaled = self.pair_user(profile).unsqueeze(-1) * self.w_pair.weight.t()  # [B,r,H]
            hidden = hidden + torch.bmm(cache[..., h:], scaled)               # [B,C,H]
        return self.w_out(torch.relu(hidden)).squeeze(-1)

    def forward(self, user_index: torch.Tensor, profile: torch.Tensor,
                item_fused: torch.Tensor) -> torch.Tensor:
        """One candidate per shopper: ``[B]``, ``[B,600]``, ``[B,600]`` → ``[B]``."""
        return self.score_pairs(self.user_repr(user_index, profile),
                                item_fused.unsqueeze(1)).squeeze(1)

    def naive_scores(self, user: torch.Tensor, item_fused: torch.Tensor) -> torch.Tensor:
        """The same function without the split: build ``x = [u ; f ; (A·p) ⊙ (B·f)]`` for every
        pair and run the full MLP (the reference ``score_pairs`` must equal; benchmarks)."""
        b, c, _ = item_fused.shape
        users = user.unsqueeze(1).expand(b, c, user.shape[-1])
        parts = [users, item_fused]
        weight = [self.w_user.weight, self.w_item.weight]
        if self.config.pair_rank > 0:
            profile = users[..., self.config.user_dim:]
            parts.append(self.pair_user(profile) * self.pair_item(item_fused))
            weight.append(self.w_pair.weight)
        x = torch.cat(parts, dim=-1)
        hidden = torch.relu(F.linear(x, torch.cat(weight, dim=1), self.w_user.bias))
        return self.w_out(hidden).squeeze(-1)


def weighted_profile(item_fused: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Profile = score-weighted mean of item vectors: ``weights [B,N]`` (decayed scores,
    0 for items outside the history) × ``item_fused [N,600]`` → ``[B,600]`` (zeros when a row
    has no weight)."""
    total = weights.sum(dim=-1, keepdim=True)
    return (weights @ item_fused) / total.clamp_min(1e-12) * (total > 0).to(item_fused.dtype)


def save_checkpoint(path: str | Path, model: FusionRanker, *, version: str,
                    users: list[str], extra: dict[str, Any] | None = None) -> Path:
    """Write ``{format, version, config, users, state_dict, extra}`` (atomically: temp file +
    rename, so a reloading scorer never reads half a file). ``users[k]`` has embedding row k+1."""
    return save_model(path, MODEL_FORMAT, model, version=version, extra=extra,
                      users=list(users))


@dataclass
class Checkpoint:
    model: FusionRanker
    version: str
    users: list[str]
    extra: dict[str, Any]

    def user_index(self) -> dict[str, int]:
        """user id → embedding row (unknown users map to 0 by the caller)."""
        return {user: row + 1 for row, user in enumerate(self.users)}


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load with ``torch.load(weights_only=True)``; clear errors for missing/foreign files."""
    model, payload = load_model(path, MODEL_FORMAT, "run `stylestream train` first",
                                lambda config: FusionRanker(FusionConfig.from_dict(config)),
                                map_location)
    return Checkpoint(model=model, version=str(payload["version"]),
                      users=list(payload["users"]), extra=dict(payload.get("extra") or {}))
