"""The fusion network as a :class:`serving.scorer.Scorer` (paper 000 §3.3.5, "online phase").

Per micro-batch of shoppers × recalled candidates: each shopper's profile is the
score-weighted mean of the fused vectors of the items in ``ShopperContext.scores`` (the decayed
S of Eq. 3), the user ID embedding is looked up (unknown shoppers get the "unknown" row), and
the split MLP of Eq. 19–20 scores every candidate. Everything item-side is computed once per
model/store load and cached: fused vectors (Eq. 13–18), the item part of the first MLP layer,
and the L2-normalised visual and text tokens (Eq. 9, 12) used for reasons. Runs on the GPU when
one is available.

Reasons name what drove a pick: the item of the shopper's history most similar to the
candidate by visual token ("looks like 123 you carted") or by text token ("described like 456
you viewed"), whichever is closer. :meth:`FusionScorer.maybe_reload` swaps in a newer checkpoint
(or feature store version) without a restart; a broken new file keeps the old model serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from models.behaviors import BEHAVIOR_PAST
from models.feature_store import FeatureStore, resolve_store
from models.fusion import FusionRanker, ItemFeatures, load_checkpoint
from serving.fused_rerank import FusedRerank
from serving.scorer import Candidate, NewItems, RerankRequest, ScoredItem, ShopperContext

log = logging.getLogger(__name__)



@dataclass
class _State:
    """One consistent (model, items) snapshot; replaced as a whole on reload."""

    model: FusionRanker
    version: str
    users: dict[str, int]
    rows: dict[str, int]          # item id → row; row ``len(rows)`` is the "no features" row
    fused: torch.Tensor           # [N+1, 600]
    cache: torch.Tensor           # [N+1, H+r]  (item_cache)
    visual: torch.Tensor          # [N+1, 300] normalised visual tokens
    text: torch.Tensor            # [N+1, 300] normalised text tokens
    present: torch.Tensor         # [N+1] bool
    checkpoint_stamp: tuple[int, int]
    store_path: Path


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class FusionScorer:
    """Scores shoppers × candidates with a trained fusion checkpoint over a feature store.

    ``features`` may be a store directory or the folder of versions (the newest is used, and
    :meth:`maybe_reload` follows newer versions too).
    """

    reads_popularity = False

    def __init__(self, checkpoint: str | Path, features: str | Path,
                 device: str | torch.device | None = None, fused: bool | None = None,
                 compile: bool = False) -> None:
        self.checkpoint_path = Path(checkpoint)
        self.features_path = Path(features)
        self.device = torch.device(device) if device is not None else default_device()
        # the fixed-shape fused kernel (serving.fused_rerank); default: on CUDA only. compile:
        # torch.compile it too (reloads refill its buffers in place; a change of network size
        # or >1024 new items or users rebuilds and recompiles it on the serving thread)
        self.fused = self.device.type == "cuda" if fused is None else fused
        self.compile = compile
        self._fast: tuple[_State, FusedRerank] | None = None
        self._lock = threading.Lock()
        self._state = self._load()

    # ---- loading ---------------------------------------------------------------------------
    @property
    def version(self) -> str:
        return self._state.version

    @property
    def state(self) -> _State:
        """The current (model, cached item side) snapshot, for :meth:`score_rows` callers."""
        return self._state

    @torch.no_grad()
    def _load(self) -> _State:
        stamp = _stamp(self.checkpoint_path) if self.checkpoint_path.exists() else (0, 0)
        checkpoint = load_checkpoint(self.checkpoint_path, map_location=self.device)
        store = FeatureStore.load(self.features_path)
        features = store.features()
        model = checkpoint.model.to(self.device).eval()
        c = model.config
        if (features.visual.shape[1], features.text.shape[1]) != (c.visual_in, c.text_in):
            raise ValueError(f"feature store {store.version} has visual/text dims "
                             f"{features.visual.shape[1]}/{features.text.shape[1]}, the "
                             f"checkpoint expects {c.visual_in}/{c.text_in}")
        state = _State(model=model, version=f"{checkpoint.version}@{store.version}",
                       users=checkpoint.user_index(), rows={}, fused=torch.zeros(0),
                       cache=torch.zeros(0), visual=torch.zeros(0), text=torch.zeros(0),
                       present=torch.zeros(0, dtype=torch.bool), checkpoint_stamp=stamp,
                       store_path=store.path)
        self._fill_items(state, features)
        return state

    @torch.no_grad()
    def _fill_items(self, state: _State, features: ItemFeatures) -> None:
        model, dev = state.model, self.device
        visual, text = features.visual.to(dev), features.text.to(dev)
        present = features.present.to(dev)
        tokens = model.tokens(visual, text, present)
        fused = model.fuse_tokens(tokens, present)
        zero = torch.zeros(1, fused.shape[1], device=dev)
        state.rows = features.index()
        state.fused = torch.cat([fused, zero])
        state.cache = model.item_cache(state.fused)
        state.cache[-1] = 0.0  # the "no features" row contributes nothing
        state.visual = torch.cat([F.normalize(tokens[:, 0], dim=-1), zero[:, :tokens.shape[2]]])
        state.text = torch.cat([F.normalize(tokens[:, 1], dim=-1), zero[:, :tokens.shape[2]]])
        state.present = torch.cat([present.bool(), torch.zeros(1, dtype=torch.bool, device=dev)])

    def maybe_reload(self) -> bool:
        """Load a newer checkpoint file or feature store version if one appeared; True when the
        model in use changed. Errors in the new files are logged and the old model kept."""
        state = self._state
        try:
            changed = (_stamp(self.checkpoint_path) != state.checkpoint_stamp
                       or resolve_store(self.features_path) != state.store_path)
        except FileNotFoundError:
            return False
        if not changed:
            return False
        try:
            new_state = self._load()
        except (FileNotFoundError, ValueError, RuntimeError, KeyError) as exc:
            log.warning("keeping model %s: reload failed: %s", state.version, exc)
            return False
        with self._lock:
            self._state = new_state
        log.info("fusion scorer reloaded: %s → %s", state.version, new_state.version)
        return True

    @torch.no_grad()
    def add_items(self, features: ItemFeatures) -> None:
        """Cold start: make new items (per-modality vectors, e.g. from
        :func:`models.feature_store.encode_items`) scorable without a reload."""
        state = self._state
        old = state.rows
        new_ids = set(features.ids)
        keep = [i for i in old if i not in new_ids]
        rows = torch.tensor([old[i] for i in keep], dtype=torch.long)
        extra = _State(**{**state.__dict__})
        # rebuild the item tensors: kept rows, then the new ones, then the zero row
        self._fill_items(extra, features)
        for name in ("fused", "cache", "visual", "text", "present"):
            kept = getattr(state, name)[rows.to(self.device)]
            setattr(extra, name, torch.cat([kept, getattr(extra, name)]))
        extra.rows = {item: k for k, item in enumerate(keep + list(features.ids))}
        with self._lock:
            self._state = extra

    def prepare_items(self, new: NewItems) -> Callable[[], None]:
        """Onboarding: :meth:`add_items` of the new items' features (on the event loop);
        nothing when they were not encoded."""
        if new.features is None:
            return lambda: None
        return partial(self.add_items, new.features)

    def item_fuser(self) -> FusionRanker:
        """The served network: new items must be fused by it to join the feature store."""
        return self._state.model

    # ---- scoring ---------------------------------------------------------------------------
    def _history(self, state: _State, shoppers: Sequence[ShopperContext]
                 ) -> tuple[torch.Tensor, torch.Tensor, list[list[str]]]:
        """Padded history rows ``[B,L]`` and weights ``[B,L]`` (0 = padding)."""
        blank = len(state.rows)
        items = [[i for i in s.scores if i in state.rows and s.scores[i] > 0] for s in shoppers]
        width = max(1, max((len(h) for h in items), default=0))
        rows = torch.full((len(shoppers), width), blank, dtype=torch.long)
        weights = torch.zeros(len(shoppers), width)
        for b, (shopper, history) in enumerate(zip(shoppers, items, strict=True)):
            if history:
                rows[b, :len(history)] = torch.tensor([state.rows[i] for i in history])
                weights[b, :len(history)] = torch.tensor([float(shopper.scores[i])
                                                          for i in history])
        return rows.to(self.device), weights.to(self.device), items

    @torch.no_grad()
    def score_rows(self, state: _State, user_index: torch.Tensor, history_rows: torch.Tensor,
                   history_weights: torch.Tensor, candidate_rows: torch.Tensor) -> torch.Tensor:
        """Tensor path: profiles from history rows/weights ``[B,L]``, candidates ``[B,C]`` →
        scores ``[B,C]`` through the cached item side (Eq. 19–20)."""
        total = history_weights.sum(dim=1, keepdim=True)
        profile = torch.einsum("bl,bld->bd", history_weights, state.fused[history_rows])
        profile = profile / total.clamp_min(1e-12)
        user = state.model.user_repr(user_index, profile)
        return state.model.score_pairs(user, None, state.cache[candidate_rows])

    def fast_path(self, state: _State) -> FusedRerank:
        """The fused kernel over ``state``'s item side (rebuilt after a reload/add_items)."""
        fast = self._fast
        if fast is None or fast[0] is not state:
            if fast is not None and fast[1].refresh(state.model, state.fused, state.cache):
                fast = (state, fast[1])  # same buffers: no recompile
            else:
                fast = (state, FusedRerank(state.model, state.fused, state.cache, self.device,
                                           compile=self.compile))
            self._fast = fast
        return fast[1]

    def score(self, request: RerankRequest) -> list[list[ScoredItem]]:
        shoppers, candidates = request.shoppers, request.candidates
        if not shoppers:
            return []
        state = self._state
        blank = len(state.rows)
        width = max(1, max(len(c) for c in candidates))
        cand_rows = torch.full((len(shoppers), width), blank, dtype=torch.long)
        for b, cands in enumerate(candidates):
            if cands:
                cand_rows[b, :len(cands)] = torch.tensor([state.rows.get(c.item_id, blank)
                                                          for c in cands])
        cand_rows = cand_rows.to(self.device)
        users = torch.tensor([state.users.get(s.user_id, 0) for s in shoppers],
                             device=self.device)
        hist_rows, hist_weights, histories = self._history(state, shoppers)
        if self.fused:
            scores = self.fast_path(state).scores(users, hist_rows, hist_weights,
                                                  cand_rows).tolist()
        else:
            scores = self.score_rows(state, users, hist_rows, hist_weights,
                                     cand_rows).cpu().tolist()
        reasons = self._reasons(state, shoppers, candidates, cand_rows, hist_rows, histories)
        return [[ScoredItem(c.item_id, score, reason)
                 for c, score, reason in zip(cands, scores[b], reasons[b], strict=False)]
                for b, cands in enumerate(candidates)]

    @torch.no_grad()
    def _reasons(self, state: _State, shoppers: Sequence[ShopperContext],
                 candidates: Sequence[Sequence[Candidate]], cand_rows: torch.Tensor,
                 hist_rows: torch.Tensor, histories: list[list[str]]) -> list[list[list[str]]]:
        """The closest history item per candidate by visual and by text token."""
        blank = len(state.rows)
        valid = (hist_rows != blank).unsqueeze(1)                              # [B,1,L]
        visual_sim = torch.bmm(state.visual[cand_rows], state.visual[hist_rows].transpose(1, 2))
        visual_ok = valid & state.present[cand_rows].unsqueeze(-1) & \
            state.present[hist_rows].unsqueeze(1)
        visual_sim = visual_sim.masked_fill(~visual_ok, -2.0)
        text_sim = torch.bmm(state.text[cand_rows], state.text[hist_rows].transpose(1, 2))
        text_sim = text_sim.masked_fill(~valid, -2.0)
        best_v, arg_v = visual_sim.max(dim=-1)
        best_t, arg_t = text_sim.max(dim=-1)
        use_visual_all = (best_v >= best_t).cpu().tolist()
        arg_v, arg_t = arg_v.cpu().tolist(), arg_t.cpu().tolist()
        out: list[list[list[str]]] = []
        for b, (shopper, cands) in enumerate(zip(shoppers, candidates, strict=True)):
            history = histories[b]
            row_reasons = []
            for k, cand in enumerate(cands):
                if cand.item_id not in state.rows:
                    row_reasons.append(["no item features yet"])
                elif not history:
                    row_reasons.append(["ranked by item features (no history yet)"])
                else:
                    use_visual = use_visual_all[b][k]
                    driver = history[arg_v[b][k] if use_visual else arg_t[b][k]]
                    verb = BEHAVIOR_PAST.get(shopper.behaviors.get(driver, "view"), "viewed")
                    how = "looks like" if use_visual else "described like"
                    row_reasons.append([f"{how} {driver} you {verb}"])
            out.append(row_reasons)
        return out
