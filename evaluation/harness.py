"""Train each model on a split, rank, and summarise over seeds (paper 000 §4.3–4.5).

One loop for every model (they share :class:`models.baselines.base.Recommender`): fit on the
training interactions, score the evaluated users in batches, and compute per-user metrics under
the ``full`` or ``sampled`` protocol (:mod:`models.metrics`). A seed drives model init, BPR
negative sampling, the 99 sampled negatives and tie-breaking. §4.3 reports "95% confidence
intervals" over 5 repetitions; we read that as mean ± t_{0.975, n−1} · s / √n over seeds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from evaluation.protocols import EvalData
from models import metrics
from models.baselines import BASELINES, BaselineConfig, Recommender
from models.progress import progress as tqdm

ModelFactory = Callable[[EvalData, int], Recommender]


@dataclass
class Summary:
    """Mean and 95% CI half-width per metric over seeds (half-width NaN for one seed)."""

    mean: dict[str, float]
    half_width: dict[str, float]
    per_seed: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    #: per-user values (mean over seeds), aligned with ``EvalData.users``: paired tests
    per_user: dict[str, np.ndarray] = field(default_factory=dict)


def confidence_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and t-distribution half-width ``t_{(1+level)/2, n−1} · s / √n``."""
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    if arr.size < 2:
        return mean, math.nan
    sem = float(arr.std(ddof=1)) / math.sqrt(arr.size)
    return mean, float(stats.t.ppf((1 + level) / 2, arr.size - 1)) * sem


def summarize(per_seed: list[dict[str, float]], seconds: float = 0.0,
              per_user: dict[str, np.ndarray] | None = None) -> Summary:
    names = list(per_seed[0])
    pairs = {n: confidence_interval([r[n] for r in per_seed]) for n in names}
    return Summary({n: p[0] for n, p in pairs.items()}, {n: p[1] for n, p in pairs.items()},
                   per_seed, seconds, per_user or {})


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 1000,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a − b`` over users and its 95% percentile interval, users resampled.

    The seed-CI of a deterministic model (Pop, ItemCF, the proposed recall) only reflects
    tie-breaking; this paired interval says whether two models differ on these users.
    """
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(resamples, diff.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(lo), float(hi)


def evaluate(model: Recommender, data: EvalData, ranking: str, seed: int,
             n_neg: int = 99, batch_users: int = 256) -> dict[str, float]:
    """Per-user metrics of a fitted ``model`` averaged over users (Eq. 22)."""
    per_user = evaluate_per_user(model, data, ranking, seed, n_neg, batch_users)
    return metrics.mean_over_users(per_user, np.nanmean)


def evaluate_per_user(model: Recommender, data: EvalData, ranking: str, seed: int,
                      n_neg: int = 99, batch_users: int = 256) -> dict[str, np.ndarray]:
    """Each metric of :func:`models.metrics.metric_names` per evaluated user."""
    rng = np.random.default_rng(10_000 + seed)
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, data.users.size, batch_users):
        rows = slice(start, start + batch_users)
        users = data.users[rows]
        scores = model.score(users)
        if ranking == "full":
            parts.append(metrics.full_ranking(scores, data.relevant[rows], data.seen[rows],
                                              rng=rng))
            if data.cold is not None:
                parts[-1].update(_cold_metrics(scores, data, rows, rng))
        elif ranking == "sampled":
            parts.append(_sampled(scores, data.relevant[rows], data.interacted[rows], n_neg, rng))
        else:
            raise ValueError(f"unknown ranking {ranking!r}; expected 'full' or 'sampled'")
    per_user = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    wanted = metrics.metric_names(ranking) + list(COLD_METRICS)
    return {k: v for k, v in per_user.items() if k in wanted}


#: full ranking, positives restricted to *cold* items (never in training); NaN for users
#: without a cold positive, averaged over the users that have one
COLD_METRICS: dict[str, str] = {"HR@10 cold": "HR@10", "Recall@20 cold": "Recall@20"}


def _cold_metrics(scores: np.ndarray, data: EvalData, rows: slice,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    assert data.cold is not None
    cold_rel = [rel[data.cold[rel]] for rel in data.relevant[rows]]
    has = np.array([c.size > 0 for c in cold_rel], dtype=bool)
    out = {name: np.full(len(cold_rel), np.nan) for name in COLD_METRICS}
    if has.any():
        picked = metrics.full_ranking(scores[has], [c for c in cold_rel if c.size],
                                      [s for s, h in zip(data.seen[rows], has, strict=True) if h],
                                      ks=(10, 20), rng=rng)
        for name, source in COLD_METRICS.items():
            out[name][has] = picked[source]
    return out


def _sampled(scores: np.ndarray, relevant: Sequence[np.ndarray],
             interacted: Sequence[np.ndarray], n_neg: int,
             rng: np.random.Generator) -> dict[str, np.ndarray]:
    n_items = scores.shape[1]
    owners, pos_scores, neg_scores = [], [], []
    for b, (rel, touched) in enumerate(zip(relevant, interacted, strict=True)):
        for item in rel:
            neg = metrics.sample_negatives(n_items, touched, n_neg, rng)
            owners.append(b)
            pos_scores.append(scores[b, item])
            neg_scores.append(scores[b, neg])
    ranks = metrics.sampled_ranks(np.array(pos_scores), np.vstack(neg_scores), rng)
    return metrics.sampled_ranking(ranks, np.array(owners))


def baseline_factories(config: BaselineConfig, item_features: np.ndarray | None = None,
                       names: Sequence[str] | None = None) -> dict[str, ModelFactory]:
    """Factories of the named baselines (all of :data:`BASELINES` by default)."""
    chosen = list(BASELINES) if names is None else list(names)
    unknown = [n for n in chosen if n not in BASELINES]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; known: {list(BASELINES)}")
    return {n: (lambda data, seed, n=n: BASELINES[n](config, item_features)) for n in chosen}


def run_models(factories: dict[str, ModelFactory], data: EvalData, ranking: str,
               seeds: Sequence[int], *, n_neg: int = 99, progress: bool = True,
               ) -> dict[str, Summary]:
    """Fit and evaluate every model for every seed; returns a :class:`Summary` per model."""
    results: dict[str, Summary] = {}
    bar = tqdm(total=len(factories) * len(seeds), desc=f"{data.label}/{ranking}",
               disable=not progress)
    for name, factory in factories.items():
        per_seed = []
        users_sum: dict[str, np.ndarray] = {}
        start = time.perf_counter()
        for seed in seeds:
            bar.set_postfix(model=name, seed=seed)
            model = factory(data, seed)
            model.fit(data.train, data.vocab.n_users, data.vocab.n_items, seed=seed)
            per_user = evaluate_per_user(model, data, ranking, seed, n_neg=n_neg)
            per_seed.append(metrics.mean_over_users(per_user, np.nanmean))
            for k, v in per_user.items():
                users_sum[k] = users_sum.get(k, 0.0) + v
            bar.update()
        results[name] = summarize(per_seed, time.perf_counter() - start,
                                  {k: v / len(seeds) for k, v in users_sum.items()})
    bar.close()
    return results
