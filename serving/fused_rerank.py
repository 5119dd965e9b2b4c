"""The accelerated rerank path: one fused scoring kernel per micro-batch over fixed shapes.

Same function as :meth:`serving.fusion_scorer.FusionScorer.score_rows` (profile = score-weighted
mean of the history's fused vectors, Eq. 19–20 split into a per-shopper term, the cached item
term and one batched pair matmul), arranged for a GPU:

- **item cache in the compute dtype**: the fused vectors ``[N+1,600]`` and the item part of the
  first layer ``[N+1,H+r]`` are held once in bfloat16 on a device that supports it (fp32
  elsewhere; CPUs get fp32 unless asked otherwise), with the weights the kernel needs;
- **one kernel per micro-batch**: :class:`FusedKernel` is a single ``forward`` (gathers, profile,
  user term, pair term, ReLU, output) that ``torch.compile`` turns into a few fused kernels —
  with ``mode="reduce-overhead"`` (CUDA graphs) on CUDA, so a batch is one graph replay;
- **fixed shapes**: every micro-batch is padded to ``batch × candidates`` (history to
  ``history``) so the compiled graph never recompiles; padding uses the all-zero "no features"
  row and weight 0, and the padded outputs are cut away. Larger inputs round up to the next
  multiple of the fixed size (one more compiled shape each);
- **pinned host buffers**: the padded index/weight tensors are written into page-locked host
  memory and copied to preallocated device buffers without blocking; the scores come back
  through a pinned output buffer.

A hot reload or cold-start item refills the kernel's buffers in place (:meth:`FusedRerank.refresh`;
item and user tables have spare rows), so a compiled kernel keeps its graphs.

On CPU the same code runs (pinning and CUDA graphs skipped; compile only when asked), which is
what CI checks against the naive reference.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.fusion import FusionRanker

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def pick_dtype(device: torch.device, name: str = "auto") -> torch.dtype:
    """``auto``: bfloat16 on a CUDA device that supports it, float32 otherwise (CPU)."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be auto, fp32 or bf16, not {name!r}")
    return DTYPES[name]


class FusedKernel(nn.Module):
    """Eq. 19–20 for ``[B]`` users, ``[B,L]`` history rows/weights and ``[B,C]`` candidate rows
    over a cached item side; returns fp32 scores ``[B,C]``. Row ``N`` (the last) of ``fused`` and
    ``cache`` must be zeros: padding points there."""

    def __init__(self, model: FusionRanker, fused: torch.Tensor, cache: torch.Tensor,
                 dtype: torch.dtype) -> None:
        super().__init__()
        c = model.config
        self.hidden, self.pair = c.hidden, c.pair_rank > 0
        for name, value in _tables(model, fused, cache).items():
            rows = _capacity(value.shape[0]) if name in PADDED else value.shape[0]
            table = torch.zeros(rows, *value.shape[1:], dtype=dtype, device=value.device)
            table[:value.shape[0]] = value.detach()
            self.register_buffer(name, table, persistent=False)

    @torch.no_grad()
    def load(self, model: FusionRanker, fused: torch.Tensor, cache: torch.Tensor) -> bool:
        """Copy a new model/item side into the existing buffers (same addresses, so a compiled
        kernel and its CUDA graphs stay valid); False when it does not fit them (other sizes,
        or more items/users than the row capacity) and the kernel must be rebuilt."""
        tables = _tables(model, fused, cache)
        buffers = dict(self.named_buffers())
        if set(tables) != set(buffers) or model.config.hidden != self.hidden:
            return False
        for name, value in tables.items():
            target = buffers[name]
            if value.shape[1:] != target.shape[1:] or value.shape[0] > target.shape[0]:
                return False
        for name, value in tables.items():
            target = buffers[name]
            target[:value.shape[0]].copy_(value)
            target[value.shape[0]:].zero_()
        return True

    def forward(self, users: torch.Tensor, hist_rows: torch.Tensor, hist_weights: torch.Tensor,
                cand_rows: torch.Tensor) -> torch.Tensor:
        dtype = self.fused.dtype
        total = hist_weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
        weights = (hist_weights / total).to(dtype)                              # [B,L]
        profile = torch.bmm(weights.unsqueeze(1), self.fused[hist_rows]).squeeze(1)  # [B,600]
        user = torch.cat([self.user_embedding[users], profile], dim=-1)
        cached = self.cache[cand_rows]                                          # [B,C,H+r]
        hidden = F.linear(user, self.w_user, self.b_user).unsqueeze(1) + cached[..., :self.hidden]
        if self.pair:
            scaled = F.linear(profile, self.pair_user).unsqueeze(-1) * self.w_pair_t  # [B,r,H]
            hidden = hidden + torch.bmm(cached[..., self.hidden:], scaled)
        return F.linear(torch.relu(hidden), self.w_out, self.b_out).squeeze(-1).float()


ROW_STEP = 1024  # item/user tables are padded to a multiple: cold-start items fit in place
PADDED = ("fused", "cache", "user_embedding")


def _capacity(rows: int) -> int:
    return -(-rows // ROW_STEP) * ROW_STEP


def _tables(model: FusionRanker, fused: torch.Tensor,
            cache: torch.Tensor) -> dict[str, torch.Tensor]:
    """What :class:`FusedKernel` holds: the item side and the weights of Eq. 19–20."""
    tables = {"fused": fused, "cache": cache, "user_embedding": model.user_embedding.weight,
              "w_user": model.w_user.weight, "b_user": model.w_user.bias,
              "w_out": model.w_out.weight, "b_out": model.w_out.bias}
    if model.config.pair_rank > 0:
        tables["pair_user"] = model.pair_user.weight
        tables["w_pair_t"] = model.w_pair.weight.t()                         # [r,H]
    return {name: value.detach() for name, value in tables.items()}


@dataclass(frozen=True)
class Shape:
    """Fixed micro-batch shape: shoppers, candidates per shopper, history items per shopper."""

    batch: int = 64
    candidates: int = 500
    history: int = 32

    def fit(self, b: int, c: int, length: int) -> Shape:
        """The smallest multiple of this shape holding ``b × c`` with ``length`` history."""
        def up(n: int, step: int) -> int:
            return max(step, -(-n // step) * step)
        return Shape(up(b, self.batch), up(c, self.candidates), up(length, self.history))


class _Buffers:
    """Preallocated (pinned on CUDA) host and device tensors for one padded shape."""

    def __init__(self, shape: Shape, device: torch.device) -> None:
        pin = device.type == "cuda"

        def host(*size: int, dtype: torch.dtype) -> torch.Tensor:
            return torch.empty(*size, dtype=dtype, pin_memory=pin)

        b, c, length = shape.batch, shape.candidates, shape.history
        self.host = [host(b, dtype=torch.long), host(b, length, dtype=torch.long),
                     host(b, length, dtype=torch.float32), host(b, c, dtype=torch.long)]
        self.device = [t.to(device) for t in self.host] if pin else self.host
        self.out = host(b, c, dtype=torch.float32)


class FusedRerank:
    """Scores micro-batches through :class:`FusedKernel` at fixed shapes.

    ``compile``: wrap the kernel in ``torch.compile`` (default: only when the device is CUDA;
    compiling on a small CPU takes tens of seconds). A compile failure at the first call is
    logged and the eager kernel used from then on.
    """

    def __init__(self, model: FusionRanker, fused: torch.Tensor, cache: torch.Tensor,
                 device: str | torch.device, *, dtype: str = "auto", compile: bool | None = None,
                 shape: Shape | None = None) -> None:
        self.device = torch.device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.shape = shape or Shape()
        self.blank = fused.shape[0] - 1
        self.kernel = FusedKernel(model, fused, cache, self.dtype).to(self.device).eval()
        self.compiled = self.device.type == "cuda" if compile is None else compile
        self._run = self.kernel
        if self.compiled:
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            self._run = torch.compile(self.kernel, mode=mode, dynamic=False, fullgraph=True)
        self._buffers: dict[Shape, _Buffers] = {}
        self._lock = threading.Lock()

    def refresh(self, model: FusionRanker, fused: torch.Tensor, cache: torch.Tensor) -> bool:
        """Serve a reloaded model / grown item side in place (no recompile); False when it does
        not fit the kernel's buffers — build a new :class:`FusedRerank` then."""
        with self._lock:
            if not self.kernel.load(model, fused.to(self.device), cache.to(self.device)):
                return False
            self.blank = fused.shape[0] - 1
            return True

    def _padded(self, b: int, c: int, length: int) -> tuple[Shape, _Buffers]:
        shape = self.shape.fit(b, c, length)
        if shape not in self._buffers:
            self._buffers[shape] = _Buffers(shape, self.device)
        return shape, self._buffers[shape]

    @torch.no_grad()
    def scores(self, users: torch.Tensor, hist_rows: torch.Tensor, hist_weights: torch.Tensor,
               cand_rows: torch.Tensor) -> torch.Tensor:
        """``users [B]``, ``hist_rows/hist_weights [B,L]``, ``cand_rows [B,C]`` (host tensors,
        or tensors already on the device; rows index the cached items, the last row = no
        features) → fp32 scores ``[B,C]`` on the host."""
        b, c = cand_rows.shape
        length = hist_rows.shape[1]
        if users.shape != (b,) or hist_rows.shape != hist_weights.shape or \
                hist_rows.shape[0] != b:
            raise ValueError(f"shapes disagree: users {tuple(users.shape)}, history "
                             f"{tuple(hist_rows.shape)}/{tuple(hist_weights.shape)}, "
                             f"candidates {tuple(cand_rows.shape)}")
        with self._lock:
            _, buffers = self._padded(b, c, length)
            # host inputs are padded in the pinned buffers and copied over without blocking;
            # inputs already on the device are padded in place there
            on_host = cand_rows.device.type == "cpu"
            target = buffers.host if on_host else buffers.device
            p_users, p_hist, p_weights, p_cands = target
            p_users.zero_()
            p_users[:b] = users
            p_hist.fill_(self.blank)
            p_hist[:b, :length] = hist_rows
            p_weights.zero_()
            p_weights[:b, :length] = hist_weights
            p_cands.fill_(self.blank)
            p_cands[:b, :c] = cand_rows
            if on_host and buffers.device is not buffers.host:
                for dst, src in zip(buffers.device, buffers.host, strict=True):
                    dst.copy_(src, non_blocking=True)
            out = self._call(*buffers.device)
            buffers.out.copy_(out, non_blocking=True)
            if self.device.type == "cuda":
                torch.cuda.current_stream(self.device).synchronize()
            return buffers.out[:b, :c].clone()

    def _call(self, *inputs: torch.Tensor) -> torch.Tensor:
        try:
            return self._run(*inputs)
        except Exception as exc:  # noqa: BLE001 — any compiler failure falls back to eager
            if self._run is self.kernel:
                raise
            log.warning("torch.compile of the fused rerank kernel failed (%s); running eager",
                        exc)
            self._run, self.compiled = self.kernel, False
            return self.kernel(*inputs)
