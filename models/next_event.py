"""The learned final ranker: which of a shopper's candidates will the shopper touch next?

Paper 000's prediction layer (Eq. 19–20: an MLP 256 + ReLU → 1 over the shopper and the
candidate) is trained there on the decayed score itself (Eq. 21, MSE). What a shop needs is the
*next* interaction, and for that the strongest evidence is often the shopper's own history
(a viewed, saved or carted item comes back). Reading: we keep the paper's MLP scorer and extend
its input with pair features the stream already keeps (:mod:`serving.pair_features`: log S,
strongest behaviour, time since the last touch, co-visitation and content strength, decayed
popularity, trend fit — paper 002) plus the score of the multimodal fusion network
(Eq. 13–20) where the catalog has images and text; the network then decides between a repeat
and a new item. It is trained on next-event targets: for cut times inside the training window,
the candidates recalled at the cut are labelled 1 when the shopper touched them in the horizon
after the cut, and a listwise softmax loss (ListNet top-1, with BPR as the alternative) is
minimised per shopper. Early stopping on the NDCG@5 of a later validation cut.

Pure tensors and arrays: no Kafka, no Redis (the feature rows come from the caller).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.checkpoints import load_model, save_model

MODEL_FORMAT = "stylestream-next-event/1"
LOSSES: tuple[str, ...] = ("listwise", "bpr")


@dataclass
class RankerConfig:
    """Sizes and training settings of the final ranker."""

    n_features: int
    hidden: int = 64
    layers: int = 2
    loss: str = "listwise"
    lr: float = 3e-3
    weight_decay: float = 1e-5
    epochs: int = 40
    patience: int = 5
    batch_groups: int = 64
    seed: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RankerConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class NextEventRanker(nn.Module):
    """Standardised pair features → MLP (ReLU) → one score per candidate."""

    def __init__(self, config: RankerConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.zeros(config.n_features))
        self.register_buffer("std", torch.ones(config.n_features))
        layers: list[nn.Module] = []
        width = config.n_features
        for _ in range(config.layers):
            layers += [nn.Linear(width, config.hidden), nn.ReLU()]
            width = config.hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features [..., F]`` → scores ``[...]``."""
        return self.mlp((features - self.mean) / self.std).squeeze(-1)

    @torch.no_grad()
    def score(self, features: np.ndarray) -> np.ndarray:
        """Scores of ``[N, F]`` float rows (eval mode, CPU or the module's device)."""
        self.eval()
        device = self.mean.device
        return self(torch.as_tensor(features, dtype=torch.float32, device=device)).cpu().numpy()


@dataclass
class RankingGroups:
    """Training rows grouped by (cut, shopper): ``offsets[g]:offsets[g+1]`` are group g's rows
    of ``features [N,F]`` with binary ``labels [N]``; groups without a positive are dropped by
    :meth:`with_positives`."""

    features: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray

    @property
    def n_groups(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def concat(cls, parts: list[RankingGroups]) -> RankingGroups:
        parts = [p for p in parts if p.n_groups > 0]
        if not parts:
            return cls(np.zeros((0, 0), np.float32), np.zeros(0, np.float32),
                       np.zeros(1, np.int64))
        offsets, base = [np.zeros(1, np.int64)], 0
        for p in parts:
            offsets.append(p.offsets[1:] + base)
            base += int(p.offsets[-1])
        return cls(np.concatenate([p.features for p in parts]),
                   np.concatenate([p.labels for p in parts]), np.concatenate(offsets))

    def with_positives(self) -> RankingGroups:
        keep_rows, offsets = [], [0]
        for g in range(self.n_groups):
            lo, hi = int(self.offsets[g]), int(self.offsets[g + 1])
            if self.labels[lo:hi].any() and not self.labels[lo:hi].all():
                keep_rows.append(np.arange(lo, hi))
                offsets.append(offsets[-1] + hi - lo)
        rows = np.concatenate(keep_rows) if keep_rows else np.zeros(0, np.int64)
        return RankingGroups(self.features[rows], self.labels[rows],
                             np.asarray(offsets, np.int64))


def _padded(groups: RankingGroups, index: np.ndarray) -> tuple[torch.Tensor, ...]:
    """Groups ``index`` as padded ``[G, C, F]`` features, ``[G, C]`` labels and mask."""
    sizes = groups.offsets[index + 1] - groups.offsets[index]
    width = int(sizes.max())
    f = np.zeros((len(index), width, groups.features.shape[1]), np.float32)
    y = np.zeros((len(index), width), np.float32)
    m = np.zeros((len(index), width), bool)
    for row, g in enumerate(index):
        lo, hi = int(groups.offsets[g]), int(groups.offsets[g + 1])
        f[row, : hi - lo] = groups.features[lo:hi]
        y[row, : hi - lo] = groups.labels[lo:hi]
        m[row, : hi - lo] = True
    return torch.from_numpy(f), torch.from_numpy(y), torch.from_numpy(m)


def ranking_loss(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                 loss: str) -> torch.Tensor:
    """``listwise``: cross-entropy between softmax(scores) and the normalised labels (ListNet
    top-1); ``bpr``: −log σ(s⁺ − s⁻) over every positive × negative pair of a group."""
    neg_inf = torch.finfo(scores.dtype).min
    if loss == "listwise":
        logp = torch.log_softmax(scores.masked_fill(~mask, neg_inf), dim=-1)
        target = labels / labels.sum(dim=-1, keepdim=True).clamp_min(1.0)
        return -(target * logp.masked_fill(~mask, 0.0)).sum(dim=-1).mean()
    if loss == "bpr":
        diff = scores.unsqueeze(-1) - scores.unsqueeze(-2)              # [G, C, C]: s_i − s_j
        pairs = ((labels > 0) & mask).unsqueeze(-1) & ((labels == 0) & mask).unsqueeze(-2)
        return -(torch.nn.functional.logsigmoid(diff)[pairs]).mean()
    raise ValueError(f"unknown loss {loss!r}; expected one of {list(LOSSES)}")


def ndcg_at(scores: np.ndarray, groups: RankingGroups, k: int = 5) -> float:
    """Mean NDCG@k over groups (binary gains), ties broken by row order."""
    total, discount = 0.0, 1.0 / np.log2(np.arange(2, k + 2))
    for g in range(groups.n_groups):
        lo, hi = int(groups.offsets[g]), int(groups.offsets[g + 1])
        labels = groups.labels[lo:hi]
        order = np.argsort(-scores[lo:hi], kind="stable")[:k]
        ideal = discount[: min(k, int(labels.sum()))].sum()
        total += float((labels[order] * discount[: len(order)]).sum() / ideal) if ideal else 0.0
    return total / max(groups.n_groups, 1)


def train_ranker(train: RankingGroups, valid: RankingGroups | None,
                 config: RankerConfig) -> tuple[NextEventRanker, dict[str, Any]]:
    """Fit on ``train`` (groups with a positive and a negative), early-stopped on the
    validation NDCG@5 (patience ``config.patience``); returns the best model and a history."""
    if config.loss not in LOSSES:
        raise ValueError(f"unknown loss {config.loss!r}; expected one of {list(LOSSES)}")
    train = train.with_positives()
    if train.n_groups == 0:
        raise ValueError("no training group has both a next-event positive and a negative: "
                         "the training window is too short for the horizon")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = NextEventRanker(config)
    mean = train.features.mean(axis=0)
    std = train.features.std(axis=0)
    model.mean.copy_(torch.from_numpy(mean))
    model.std.copy_(torch.from_numpy(np.where(std > 1e-6, std, 1.0)))
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    best, best_state, stale, history = -math.inf, None, 0, []
    for epoch in range(config.epochs):
        model.train()
        order = rng.permutation(train.n_groups)
        losses = []
        for start in range(0, len(order), config.batch_groups):
            f, y, m = _padded(train, order[start: start + config.batch_groups])
            loss = ranking_loss(model(f), y, m, config.loss)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        monitored = valid if valid is not None and valid.n_groups else train
        score = ndcg_at(model.score(monitored.features), monitored)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "ndcg5": score})
        if score > best + 1e-5:
            best, stale = score, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, {"history": history, "best_ndcg5": best, "train_groups": train.n_groups}


#: inputs of the calibration, per candidate of one shopper's group
CALIBRATION_INPUTS: tuple[str, ...] = (
    "score", "log_share", "in_history", "in_history*score", "in_history*log_share",
    "log_history_size", "in_history*log_history_size",
)


def calibration_inputs(scores: np.ndarray, in_history: np.ndarray,
                       log_history_size: np.ndarray) -> np.ndarray:
    """``[N, 7]`` inputs (:data:`CALIBRATION_INPUTS`) for ONE shopper's candidates: the ranker's
    score, its log softmax share within the group (what the listwise loss trained), whether the
    item is the shopper's own, the shopper's history size, and their products (a repeat and a
    new item get their own slope and level)."""
    s = np.asarray(scores, dtype=np.float64)
    share = s - (s.max() + np.log(np.exp(s - s.max()).sum())) if len(s) else s
    h = np.asarray(in_history, dtype=np.float64)
    size = np.asarray(log_history_size, dtype=np.float64)
    return np.stack([s, share, h, h * s, h * share, size, h * size], axis=1)


@dataclass
class Calibration:
    """P(the shopper touches the candidate in the horizon) from the ranker's score.

    The listwise ranker's scores only order one shopper's candidates; deciding how many of a
    Top-5 go to the shopper's own items and how many to new ones needs the *chance* of a hit
    of each (:mod:`serving.explore`). Platt scaling (Platt 1999), extended: a logistic
    regression over :func:`calibration_inputs`, fitted on a held-out cut."""

    weights: list[float]
    bias: float

    def probabilities(self, scores: np.ndarray, in_history: np.ndarray,
                      log_history_size: np.ndarray) -> np.ndarray:
        """P(hit) of ONE shopper's candidates."""
        if len(scores) == 0:
            return np.zeros(0)
        z = calibration_inputs(scores, in_history, log_history_size) @ np.asarray(
            self.weights) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_calibration(scores: np.ndarray, groups: RankingGroups, in_history_column: int,
                    history_size_column: int, l2: float = 1e-3,
                    iterations: int = 50) -> Calibration:
    """Logistic regression of ``groups.labels`` on :func:`calibration_inputs` of every group
    (groups without a positive included: they are the shoppers whose next items were not
    recalled), by Newton's method with an L2 penalty ``l2`` per row."""
    parts = []
    for g in range(groups.n_groups):
        lo, hi = int(groups.offsets[g]), int(groups.offsets[g + 1])
        f = groups.features[lo:hi]
        parts.append(calibration_inputs(scores[lo:hi], f[:, in_history_column],
                                        f[:, history_size_column]))
    if not parts or not len(groups.labels) or groups.labels.min() == groups.labels.max():
        raise ValueError("calibration needs candidates with and without a next-event hit")
    raw = np.concatenate(parts)
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    std = np.where(std > 1e-9, std, 1.0)
    x = np.concatenate([(raw - mean) / std, np.ones((len(raw), 1))], axis=1)
    y = groups.labels.astype(np.float64)
    w = np.zeros(x.shape[1])
    w[-1] = math.log(y.mean() / (1 - y.mean()))
    penalty = l2 * len(y) * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0

    def loss(v: np.ndarray) -> float:
        z = x @ v
        return float(np.logaddexp(0.0, z).sum() - y @ z + 0.5 * v @ penalty @ v)

    current = loss(w)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -40, 40)))
        grad = x.T @ (p - y) + penalty @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + penalty + 1e-9 * np.eye(len(w))
        delta = np.linalg.solve(hess, grad)
        step = 1.0
        while step > 1e-6 and loss(w - step * delta) > current:   # damped Newton
            step /= 2
        w = w - step * delta
        previous, current = current, loss(w)
        if previous - current < 1e-9 * max(1.0, abs(previous)):
            break
    # back to the raw inputs: z = Σ (x − mean)/std · w + b
    weights = w[:-1] / std
    w = np.concatenate([weights, [w[-1] - float(weights @ mean)]])
    return Calibration([float(v) for v in w[:-1]], float(w[-1]))


def save_ranker(path: str | Path, model: NextEventRanker, *, version: str,
                feature_names: tuple[str, ...], extra: dict[str, Any] | None = None,
                calibration: Calibration | None = None) -> Path:
    """Write the checkpoint atomically (temp file + rename: a hot-reloading worker never reads
    half a file)."""
    return save_model(path, MODEL_FORMAT, model, version=version, extra=extra,
                      features=list(feature_names),
                      calibration=None if calibration is None else asdict(calibration))


@dataclass
class RankerCheckpoint:
    model: NextEventRanker
    version: str
    features: list[str]
    extra: dict[str, Any]
    calibration: Calibration | None = None


def load_ranker(path: str | Path) -> RankerCheckpoint:
    """Load with ``weights_only=True``; clear errors for a missing or foreign file."""
    model, payload = load_model(path, MODEL_FORMAT,
                                "run `stylestream evaluate --protocol replay` (it trains one)",
                                lambda config: NextEventRanker(RankerConfig.from_dict(config)))
    calibration = payload.get("calibration")
    return RankerCheckpoint(model, str(payload["version"]), list(payload["features"]),
                            dict(payload.get("extra") or {}),
                            None if calibration is None else Calibration(**calibration))
