"""Metrics against hand-computed values (Eq. 22–25) and protocol mechanics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.harness import confidence_interval
from models import metrics


def test_full_ranking_hand_computed() -> None:
    # user 0: ranking 4,3,2,1,0 after masking item 4 -> list 3,2,1,0; relevant {2, 0}
    # user 1: list 0,1,2,3,4; relevant {4}
    scores = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.9, 0.8, 0.7, 0.6, 0.5]])
    out = metrics.full_ranking(scores, [np.array([2, 0]), np.array([4])],
                               [np.array([4]), np.array([], dtype=np.int64)], ks=(1, 3, 5))
    assert out["HR@1"].tolist() == [0.0, 0.0]
    assert out["HR@3"].tolist() == [1.0, 0.0]
    assert out["HR@5"].tolist() == [1.0, 1.0]
    dcg3 = 1 / math.log2(3)  # item 2 at rank 2
    idcg = 1 + 1 / math.log2(3)
    assert out["NDCG@3"][0] == pytest.approx(dcg3 / idcg)
    # masked item 4 leaves 4 ranked items: item 0 at rank 4
    assert out["NDCG@5"][0] == pytest.approx((dcg3 + 1 / math.log2(5)) / idcg)
    assert out["NDCG@5"][1] == pytest.approx(1 / math.log2(6))
    assert out["Recall@3"].tolist() == [0.5, 0.0]


def test_masked_items_never_count_and_metrics_bounded() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((50, 30))
    relevant = [rng.choice(30, 3, replace=False) for _ in range(50)]
    seen = [np.setdiff1d(rng.choice(30, 5, replace=False), r) for r in relevant]
    for s, r in zip(seen, relevant, strict=True):
        assert not np.intersect1d(s, r).size
    out = metrics.full_ranking(scores, relevant, seen, rng=rng)
    for k in (3, 5, 10, 20):
        assert np.all((0 <= out[f"NDCG@{k}"]) & (out[f"NDCG@{k}"] <= 1))
    assert np.all(out["HR@10"] >= out["HR@5"]) and np.all(out["HR@5"] >= out["HR@3"])
    top = metrics.topk(np.where(np.eye(1, 30, 7, dtype=bool), -np.inf, 1.0), 29)
    assert 7 not in top


def test_constant_scores_rank_like_chance_with_random_ties() -> None:
    rng = np.random.default_rng(1)
    n_users, n_items = 2000, 20
    scores = np.zeros((n_users, n_items))
    relevant = [np.array([0])] * n_users
    seen = [np.array([], dtype=np.int64)] * n_users
    hr5 = metrics.full_ranking(scores, relevant, seen, ks=(5,), rng=rng)["HR@5"].mean()
    assert hr5 == pytest.approx(5 / 20, abs=0.03)
    ranks = metrics.sampled_ranks(np.zeros(4000), np.zeros((4000, 99)), rng)
    assert ranks.mean() == pytest.approx(49.5, abs=2.0)


def test_sampled_ranking_hand_computed() -> None:
    ranks = metrics.sampled_ranks(np.array([0.5, 0.9, 0.1]),
                                  np.array([[0.6, 0.7, 0.1], [0.1, 0.2, 0.3], [0.2, 0.3, 0.4]]))
    assert ranks.tolist() == [2, 0, 3]
    out = metrics.sampled_ranking(ranks, np.array([0, 0, 1]), ks=(1, 3))
    assert out["HR@1"].tolist() == [0.5, 0.0]
    assert out["HR@3"].tolist() == [1.0, 0.0]
    assert out["NDCG@3"][0] == pytest.approx((1 / math.log2(4) + 1.0) / 2)


def test_sample_negatives_avoids_excluded_items() -> None:
    rng = np.random.default_rng(2)
    excluded = np.arange(0, 1000, 2)
    neg = metrics.sample_negatives(1000, excluded, 99, rng)
    assert neg.size == 99 == np.unique(neg).size and np.all(neg % 2 == 1)
    dense = metrics.sample_negatives(120, np.arange(20), 99, rng)
    assert np.all(dense >= 20) and np.unique(dense).size == 99
    with pytest.raises(ValueError, match="free"):
        metrics.sample_negatives(100, np.arange(10), 99, rng)


def test_confidence_interval_matches_t_table() -> None:
    mean, hw = confidence_interval([0.1, 0.2, 0.3, 0.4, 0.5])
    assert mean == pytest.approx(0.3)
    # t_{0.975,4} = 2.776; s = 0.1581; s/sqrt(5) = 0.0707
    assert hw == pytest.approx(2.776 * 0.158114 / math.sqrt(5), rel=1e-3)
    assert math.isnan(confidence_interval([0.4])[1])


def test_metric_names_per_protocol() -> None:
    assert metrics.metric_names("sampled") == ["HR@3", "NDCG@3", "HR@5", "NDCG@5", "HR@10",
                                               "NDCG@10"]
    assert metrics.metric_names("full")[-2:] == ["Recall@20", "NDCG@20"]


def test_paired_bootstrap_by_hand() -> None:
    from evaluation.harness import paired_bootstrap

    a = np.array([1.0, 0.0, 1.0, 1.0])
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0)
    mean, lo, hi = paired_bootstrap(a + 1.0, a)
    assert mean == lo == hi == pytest.approx(1.0)
    mean, lo, hi = paired_bootstrap(np.r_[np.ones(50), np.zeros(50)], np.zeros(100))
    assert mean == pytest.approx(0.5) and lo < 0.5 < hi and lo > 0.3
