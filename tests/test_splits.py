"""Split properties: chronological per user, a clean global cut, no leakage, cold-item share."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from models.datasets import Interaction, load_hm
from models.splits import SplitError, cold_item_share, per_user_split, temporal_split

REPO = Path(__file__).resolve().parents[1]


def synthetic(seed: int = 0, users: int = 30) -> list[Interaction]:
    rng = np.random.default_rng(seed)
    events = []
    for u in range(users):
        n = int(rng.integers(1, 25))
        for t in rng.uniform(0, 1e6, size=n):
            events.append(Interaction(f"u{u}", f"i{rng.integers(0, 40)}", "view", float(t)))
    return events


def test_per_user_split_is_chronological_and_loses_nothing() -> None:
    events = synthetic()
    split = per_user_split(events, 0.8)
    assert Counter(split.train + split.test) == Counter(events)
    by_user: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"train": [], "test": []})
    for e in split.train:
        by_user[e.user]["train"].append(e.t)
    for e in split.test:
        by_user[e.user]["test"].append(e.t)
    for parts in by_user.values():
        n = len(parts["train"]) + len(parts["test"])
        assert parts["train"], "every user keeps training history"
        if parts["test"]:
            assert max(parts["train"]) <= min(parts["test"])
        if n >= 2:
            assert len(parts["train"]) == min(max(round(0.8 * n), 1), n - 1)
        else:
            assert not parts["test"]


def test_temporal_split_cuts_all_users_at_one_time() -> None:
    events = synthetic(1)
    split = temporal_split(events, quantile=0.7)
    cut = split.info["cut"]
    assert all(e.t < cut for e in split.train) and all(e.t >= cut for e in split.test)
    assert abs(len(split.train) / len(events) - 0.7) < 0.02
    fixed = temporal_split(events, at=5e5)
    assert all(e.t < 5e5 for e in fixed.train) and all(e.t >= 5e5 for e in fixed.test)


def test_bad_settings_raise() -> None:
    with pytest.raises(SplitError):
        per_user_split([])
    with pytest.raises(SplitError):
        per_user_split(synthetic(), 1.0)
    with pytest.raises(SplitError, match="empty side"):
        temporal_split(synthetic(), at=-1.0)


def test_cold_item_share_by_hand() -> None:
    train = [Interaction("a", "x", "view", 1), Interaction("b", "y", "view", 2)]
    test = [Interaction("a", "y", "view", 3), Interaction("a", "z", "view", 4),
            Interaction("b", "z", "view", 5), Interaction("b", "w", "view", 6)]
    split = temporal_split(train + test, at=3)
    share = cold_item_share(split)
    assert share["items"] == pytest.approx(2 / 3)  # z, w unseen among {y, z, w}
    assert share["events"] == pytest.approx(3 / 4)


def test_hm_temporal_split_has_cold_items(data_dir: Path) -> None:
    split = temporal_split(load_hm(data_dir, max_users=300), quantile=0.8)
    share = cold_item_share(split)
    assert 0.0 < share["items"] < 1.0
    assert split.info["cold_users"] <= split.info["test_users"]
