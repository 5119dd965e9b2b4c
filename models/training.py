"""Training the fusion ranker on decayed scores (paper 000 §3.3.5 Eq. 21, §4.1.3).

Inputs are the user × item matrix ``{user: {item: S}}`` of Eq. 3 (the caller builds it with
``streams.decay.score_matrix``; ``models`` never imports ``streams``) and the stored item
features (:class:`models.fusion.ItemFeatures`).

Samples: every observed pair (u, i) with target ``S(u,i)``, each with ``negatives`` items the
user never touched (target 0; resampled every epoch). Loss: MSE (Eq. 21) by default; ``bpr``
(−log σ(ŷ_pos − ŷ_neg)) and ``bce`` (observed = 1) are available. Adam, lr 1e-4, batch 128,
early stopping when the validation loss has not improved for 5 epochs (§4.1.3); the best
epoch's weights are kept.

Readings and choices the paper leaves open:
- validation: per user, a ``val_fraction`` of the observed items is held out (users with one
  item keep it for training); held-out items never enter that user's profile.
- the profile of a training pair (u, i) leaves i out (the score-weighted mean of u's *other*
  items), otherwise the network could read the target item off the profile; at serving time the
  candidates are items outside the profile, which is what this imitates.
- profiles are recomputed from the current network once per epoch without gradient; the
  candidate items carry the gradient into the heads and the attention (one full pass over all
  items per batch would be too slow on CPU).
- user IDs are replaced by the "unknown" row with probability ``user_dropout`` so that row is
  trained for new shoppers.
"""

from __future__ import annotations

import copy
import json
import logging
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.fusion import FusionConfig, FusionRanker, ItemFeatures, save_checkpoint
from models.progress import progress

log = logging.getLogger(__name__)
LOSSES = ("mse", "bpr", "bce")


@dataclass
class TrainConfig:
    """Paper defaults (§4.1.3) except where noted."""

    lr: float = 1e-4
    batch_size: int = 128
    epochs: int = 50
    patience: int = 5
    negatives: int = 4
    val_fraction: float = 0.2
    loss: str = "mse"
    user_dropout: float = 0.1
    weight_decay: float = 0.0
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.batch_size < 1 or self.epochs < 1 or self.negatives < 1 or self.patience < 1:
            raise ValueError("batch_size, epochs, negatives and patience must be >= 1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction must lie in [0, 1)")


@dataclass
class TrainResult:
    model: FusionRanker
    users: list[str]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float = float("inf")
    dropped_pairs: int = 0


@dataclass
class _Pairs:
    """Observed (user row, item row, S) with the pair's own weight in the user's profile."""

    users: torch.Tensor
    items: torch.Tensor
    scores: torch.Tensor
    self_weight: torch.Tensor

    def __len__(self) -> int:
        return len(self.users)


def _split(matrix: Mapping[str, Mapping[str, float]], index: dict[str, int],
           user_rows: dict[str, int], val_fraction: float, rng: random.Random,
           ) -> tuple[list[tuple[int, int, float]], list[tuple[int, int, float]], int]:
    train, val, dropped = [], [], 0
    for user in sorted(matrix):
        known = [(index[i], float(s)) for i, s in sorted(matrix[user].items()) if i in index]
        dropped += len(matrix[user]) - len(known)
        rng.shuffle(known)
        n_val = min(len(known) - 1, round(len(known) * val_fraction)) if len(known) > 1 else 0
        row = user_rows[user]
        val += [(row, i, s) for i, s in known[:n_val]]
        train += [(row, i, s) for i, s in known[n_val:]]
    return train, val, dropped


def _profile_weights(train: list[tuple[int, int, float]], n_users: int,
                     n_items: int) -> torch.Tensor:
    """Sparse ``[n_users+1, N]`` matrix of training scores (row 0, the unknown user, empty)."""
    if not train:
        return torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0),
                                       (n_users + 1, n_items), check_invariants=True).coalesce()
    rows, cols, vals = zip(*train, strict=True)
    return torch.sparse_coo_tensor(torch.tensor([rows, cols]), torch.tensor(vals),
                                   (n_users + 1, n_items), check_invariants=True).coalesce()


def _pairs(samples: list[tuple[int, int, float]], own_weight: bool) -> _Pairs:
    if not samples:
        empty = torch.zeros(0)
        return _Pairs(empty.long(), empty.long(), empty, empty)
    users, items, scores = zip(*samples, strict=True)
    s = torch.tensor(scores, dtype=torch.float32)
    return _Pairs(torch.tensor(users), torch.tensor(items), s,
                  s.clone() if own_weight else torch.zeros_like(s))


def _negatives(pairs: _Pairs, k: int, n_items: int, seen: dict[int, set[int]],
               generator: torch.Generator) -> torch.Tensor:
    """``[len(pairs), k]`` random items the user has not interacted with (best effort)."""
    neg = torch.randint(n_items, (len(pairs), k), generator=generator)
    for row in range(len(pairs)):  # resample collisions with the user's history
        history = seen.get(int(pairs.users[row]), ())
        for col in range(k):
            for _ in range(10):
                if int(neg[row, col]) not in history:
                    break
                neg[row, col] = int(torch.randint(n_items, (1,), generator=generator))
    return neg


def _loss(kind: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``pred``/``target`` ``[B, 1+k]``: column 0 the observed item, the rest negatives."""
    if kind == "mse":
        return F.mse_loss(pred, target)  # Eq. 21
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(pred, (target > 0).to(pred.dtype))
    return -F.logsigmoid(pred[:, :1] - pred[:, 1:]).mean()  # BPR


class Trainer:
    """Holds the split, the sampled negatives and the model; :meth:`fit` runs the epochs."""

    def __init__(self, matrix: Mapping[str, Mapping[str, float]], features: ItemFeatures,
                 config: TrainConfig | None = None,
                 model_config: FusionConfig | None = None) -> None:
        self.config = config or TrainConfig()
        c = self.config
        torch.manual_seed(c.seed)  # the network's initial weights
        self.features = features
        self.users = sorted(matrix)
        user_rows = {user: k + 1 for k, user in enumerate(self.users)}
        index = features.index()
        train, val, self.dropped = _split(matrix, index, user_rows, c.val_fraction,
                                          random.Random(c.seed))
        if not train:
            raise ValueError("no (user, item) pair has item features: check that the feature "
                             "store was built from the same catalog as the events")
        if self.dropped:
            log.warning("%d scored pairs name items without features; they are left out",
                        self.dropped)
        n_items = len(features.ids)
        self.profile_weights = _profile_weights(train, len(self.users), n_items)
        self.train_pairs = _pairs(train, own_weight=True)
        self.val_pairs = _pairs(val, own_weight=False)
        self.seen: dict[int, set[int]] = {}
        for u, i, _ in train + val:
            self.seen.setdefault(u, set()).add(i)
        self.generator = torch.Generator().manual_seed(c.seed)
        self.val_negatives = _negatives(self.val_pairs, c.negatives, n_items, self.seen,
                                        self.generator)
        base = model_config or FusionConfig()
        self.model = FusionRanker(FusionConfig(**{
            **asdict(base), "visual_in": features.visual.shape[1],
            "text_in": features.text.shape[1], "n_users": len(self.users)}))
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=c.lr,
                                          weight_decay=c.weight_decay)

    # ---- pieces ----------------------------------------------------------------------------
    @torch.no_grad()
    def _profile_state(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Detached fused vectors ``[N,600]``, weighted sums ``[U+1,600]``, weight totals."""
        f = self.features
        fused = self.model.fuse(f.visual, f.text, f.present)
        sums = torch.sparse.mm(self.profile_weights, fused)
        totals = torch.sparse.sum(self.profile_weights, dim=1).to_dense()
        return fused, sums, totals

    def _batch_loss(self, pairs: _Pairs, rows: torch.Tensor, negatives: torch.Tensor,
                    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                    train: bool) -> torch.Tensor:
        fused_all, sums, totals = state
        users, items = pairs.users[rows], pairs.items[rows]
        own = pairs.self_weight[rows]
        remaining = totals[users] - own
        profile = (sums[users] - own[:, None] * fused_all[items]) / remaining.clamp_min(1e-12)[
            :, None]
        profile = profile * (remaining > 1e-12).to(profile.dtype)[:, None]  # leave-one-out
        ids = users
        if train and self.config.user_dropout > 0:
            hide = torch.rand(len(ids), generator=self.generator) < self.config.user_dropout
            ids = torch.where(hide, torch.zeros_like(ids), ids)
        candidates = torch.cat([items[:, None], negatives], dim=1)          # [B, 1+k]
        f = self.features
        flat = candidates.reshape(-1)
        fused = self.model.fuse(f.visual[flat], f.text[flat], f.present[flat])
        fused = fused.view(*candidates.shape, -1)
        pred = self.model.score_pairs(self.model.user_repr(ids, profile), fused)
        target = torch.zeros_like(pred)
        target[:, 0] = pairs.scores[rows]
        return _loss(self.config.loss, pred, target)

    @torch.no_grad()
    def validation_loss(self) -> float:
        """Mean loss over the held-out pairs (and their fixed negatives)."""
        if len(self.val_pairs) == 0:
            return float("nan")
        self.model.eval()
        state = self._profile_state()
        total = 0.0
        for start in range(0, len(self.val_pairs), 1024):
            rows = torch.arange(start, min(start + 1024, len(self.val_pairs)))
            loss = self._batch_loss(self.val_pairs, rows, self.val_negatives[rows], state, False)
            total += float(loss) * len(rows)
        return total / len(self.val_pairs)

    def train_epoch(self) -> float:
        c = self.config
        state = self._profile_state()
        self.model.train()
        order = torch.randperm(len(self.train_pairs), generator=self.generator)
        negatives = _negatives(self.train_pairs, c.negatives, len(self.features.ids), self.seen,
                               self.generator)
        total = 0.0
        for start in range(0, len(order), c.batch_size):
            rows = order[start:start + c.batch_size]
            loss = self._batch_loss(self.train_pairs, rows, negatives[rows], state, True)
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
            total += float(loss.detach()) * len(rows)
        self.model.eval()
        return total / len(order)

    # ---- the loop --------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Epochs with early stopping on the validation loss (training loss when there is no
        validation split); restores the best epoch's weights."""
        c = self.config
        result = TrainResult(model=self.model, users=self.users, dropped_pairs=self.dropped)
        best_state = copy.deepcopy(self.model.state_dict())
        stale = 0
        bar = progress(range(1, c.epochs + 1), desc=f"train ({c.loss})", disable=not c.progress,
                   unit="epoch")
        for epoch in bar:
            train_loss = self.train_epoch()
            val_loss = self.validation_loss()
            watched = train_loss if np.isnan(val_loss) else val_loss
            result.history.append({"epoch": epoch, "train": train_loss, "val": val_loss})
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
            if watched < result.best_val:
                result.best_val, result.best_epoch, stale = watched, epoch, 0
                best_state = copy.deepcopy(self.model.state_dict())
            else:
                stale += 1
                if stale >= c.patience:
                    log.info("early stop after epoch %d (best %d)", epoch, result.best_epoch)
                    break
        self.model.load_state_dict(best_state)
        self.model.eval()
        return result


def train(matrix: Mapping[str, Mapping[str, float]], features: ItemFeatures,
          config: TrainConfig | None = None,
          model_config: FusionConfig | None = None) -> TrainResult:
    """Build a :class:`Trainer` and run it (see the module docstring)."""
    return Trainer(matrix, features, config, model_config).fit()


def plot_history(history: list[dict[str, float]], path: str | Path,
                 title: str = "fusion ranker") -> Path:
    """Training and validation loss per epoch as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h["train"] for h in history], marker="o", label="train")
    if any(not np.isnan(h["val"]) for h in history):
        ax.plot(epochs, [h["val"] for h in history], marker="o", label="validation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_result(result: TrainResult, out_dir: str | Path, *, version: str,
                extra: dict | None = None) -> Path:
    """``<out>/model.pt`` (checkpoint), ``loss.png`` and ``history.json``; returns the
    checkpoint path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_history(result.history, out / "loss.png")
    (out / "history.json").write_text(json.dumps(
        {"best_epoch": result.best_epoch, "best_val": result.best_val,
         "dropped_pairs": result.dropped_pairs, "history": result.history}, indent=1))
    return save_checkpoint(out / "model.pt", result.model, version=version, users=result.users,
                           extra={"best_epoch": result.best_epoch,
                                  "best_val": float(result.best_val), **(extra or {})})
