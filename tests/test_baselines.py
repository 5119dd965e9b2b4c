"""Every baseline (and the proposed recall) beats random on a reduced Taobao category-level run.

One shared fit per model (module fixture) on the first 120 users, one seed, small epochs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.harness import evaluate
from evaluation.proposed import proposed_scorer
from evaluation.protocols import EvalData, prepare
from models.baselines import BASELINES, VBPR, BaselineConfig, NotFittedError, Popularity
from models.datasets import InteractionArrays, Vocabulary

REPO = Path(__file__).resolve().parents[1]
CONFIG = BaselineConfig(dim=32, epochs=12, lr=1e-2)


@pytest.fixture(scope="module")
def data(data_dir: Path) -> EvalData:
    torch.set_num_threads(1)
    return prepare("taobao", "peruser", level="category", max_users=120, root=data_dir)


@pytest.fixture(scope="module")
def results(data: EvalData) -> dict[str, dict[str, float]]:
    out = {}
    for name, factory in BASELINES.items():
        model = factory(CONFIG, None).fit(data.train, data.vocab.n_users, data.vocab.n_items,
                                          seed=0)
        out[name] = evaluate(model, data, "full", seed=0)
    model = proposed_scorer(data).fit(data.train, data.vocab.n_users, data.vocab.n_items)
    out["Proposed"] = evaluate(model, data, "full", seed=0)
    return out


@pytest.mark.parametrize("name", [n for n in BASELINES if n != "Random"] + ["Proposed"])
def test_beats_random(results: dict[str, dict[str, float]], name: str) -> None:
    assert results[name]["HR@10"] > 2 * results["Random"]["HR@10"]
    assert results[name]["NDCG@10"] > results["Random"]["NDCG@10"]


class PlantedRanks:
    """Scores that put one relevant item of each evaluated user at a known rank ``r_u`` among
    the items the user may be recommended, with every training item scored highest of all."""

    def __init__(self, data: EvalData) -> None:
        n_items = data.vocab.n_items
        self.rows: dict[int, np.ndarray] = {}
        self.ranks: list[int] = []
        for b, user in enumerate(data.users):
            rank = 1 + b % 12
            scores = -np.arange(n_items, dtype=np.float64) - 10.0  # everything else: low
            seen, relevant = set(data.seen[b].tolist()), data.relevant[b]
            fillers = [i for i in range(n_items) if i not in seen and i not in set(relevant)]
            scores[fillers[: rank - 1]] = 1000.0 - np.arange(rank - 1)  # ranks 1 … r−1
            scores[relevant] = -1e6                                     # other positives last
            scores[relevant[0]] = 1000.0 - rank                         # rank r
            scores[list(seen)] = 1e6                                    # must be masked
            self.rows[int(user)] = scores
            self.ranks.append(rank)

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.stack([self.rows[int(u)] for u in users])


def test_harness_finds_planted_ranks(data: EvalData) -> None:
    """HR@k and NDCG@10 of the harness equal the values of known ranks, computed by hand.

    Catches: training items not masked before ranking (they are scored highest here), user
    rows misaligned across scoring batches (odd batch size), and HR/NDCG taken at the wrong
    cut-off or with the wrong discount / ideal DCG."""
    model = PlantedRanks(data)
    got = evaluate(model, data, "full", seed=0, batch_users=7)  # type: ignore[arg-type]
    ranks = np.array(model.ranks)
    for k in (3, 5, 10):
        assert got[f"HR@{k}"] == pytest.approx(float(np.mean(ranks <= k)))
    ideal = [sum(1 / np.log2(i + 2) for i in range(min(len(rel), 10))) for rel in data.relevant]
    ndcg = [(1 / np.log2(r + 1) if r <= 10 else 0.0) / idcg
            for r, idcg in zip(ranks, ideal, strict=True)]
    assert got["NDCG@10"] == pytest.approx(float(np.mean(ndcg)))


def test_same_seed_same_scores_other_seed_differs(data: EvalData) -> None:
    users = data.users[:5]

    def scores(seed: int) -> np.ndarray:
        model = BASELINES["BPR-MF"](BaselineConfig(epochs=2), None)
        return model.fit(data.train, data.vocab.n_users, data.vocab.n_items, seed=seed).score(users)

    assert np.array_equal(scores(3), scores(3))
    assert not np.allclose(scores(3), scores(4))


def test_vbpr_uses_item_features_and_checks_their_shape(data: EvalData) -> None:
    n_users, n_items = data.vocab.n_users, data.vocab.n_items
    feats = np.random.default_rng(0).normal(size=(n_items, 8))
    cfg = BaselineConfig(epochs=2)
    plain = VBPR(None, cfg).fit(data.train, n_users, n_items, seed=0).score(data.users[:3])
    visual = VBPR(feats, cfg).fit(data.train, n_users, n_items, seed=0).score(data.users[:3])
    assert plain.shape == visual.shape == (3, n_items)
    assert not np.allclose(plain, visual)
    with pytest.raises(ValueError, match="n_items"):
        VBPR(feats[:-1], cfg).fit(data.train, n_users, n_items)


def test_interface_errors() -> None:
    with pytest.raises(NotFittedError):
        Popularity().score(np.array([0]))
    events = InteractionArrays(np.array([0, 5]), np.array([0, 1]), np.zeros(2, np.int8),
                               np.zeros(2))
    with pytest.raises(ValueError, match="exceed"):
        Popularity().fit(events, n_users=2, n_items=2)
    assert Vocabulary.build([]).n_items == 0
