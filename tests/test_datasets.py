"""Loaders on the real shared data (small ``max_users``) and their error messages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from models.datasets import (
    BEHAVIORS,
    TAOBAO_WINDOW,
    DatasetError,
    InteractionArrays,
    Vocabulary,
    hm_image_path,
    load,
    load_hm,
    load_taobao,
)


@pytest.fixture(scope="module")
def root(data_dir: Path) -> Path:
    """The shared data directory (conftest's ``data_dir``)."""
    return data_dir


def test_taobao_category_level_maps_behaviours_and_limits_users(root: Path) -> None:
    events = load_taobao(root, level="category", max_users=20)
    users = {e.user for e in events}
    assert len(users) == 20
    assert users == {str(u) for u in sorted(int(u) for u in users)}  # first 20 ids kept
    assert {e.behavior for e in events} <= set(BEHAVIORS)
    assert {e.behavior for e in events} >= {"view", "purchase"}
    times = [e.t for e in events]
    assert times == sorted(times)
    lo, hi = TAOBAO_WINDOW
    assert all(lo <= t < hi for t in times)


def test_taobao_item_level_has_more_distinct_items_than_categories(root: Path) -> None:
    cats = load_taobao(root, level="category", max_users=30)
    items = load_taobao(root, level="item", max_users=30)
    assert len(items) >= len(cats)  # same-second events on one category collapse as duplicates
    assert {e.user for e in items} == {e.user for e in cats}
    assert len({e.item for e in items}) > 2 * len({e.item for e in cats})


def test_hm_rows_are_dated_purchases_with_image_ids(root: Path) -> None:
    events = load_hm(root, max_users=40)
    assert len({e.user for e in events}) == 40
    assert {e.behavior for e in events} == {"purchase"}
    for e in events:
        assert len(e.item) == 10 and e.item.isdigit()
        stamp = datetime.fromtimestamp(e.t, UTC)
        assert (stamp.hour, stamp.minute, stamp.second) == (0, 0, 0)
    assert datetime(2018, 9, 20, tzinfo=UTC).timestamp() <= events[0].t
    assert any(hm_image_path(root, e.item).is_file() for e in events)


def test_dispatch_and_unknown_names(root: Path) -> None:
    assert load("hm", root, max_users=3) == load_hm(root, max_users=3)
    with pytest.raises(DatasetError, match="unknown dataset"):
        load("movielens", root)
    with pytest.raises(DatasetError, match="level"):
        load_taobao(root, level="shop")
    with pytest.raises(DatasetError, match="max_users"):
        load_taobao(root, max_users=0)


def test_missing_directory_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_taobao(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="missing"):
        load_hm(tmp_path)
    (tmp_path / "taobao").mkdir()
    csv_path = tmp_path / "taobao" / "user_behavior.csv"
    csv_path.write_text("user_id,item_id,category_id,behavior,timestamp\n"
                        "1,2,3,pv,1511544070\n1,2,3,like,1511544071\n")
    with pytest.raises(DatasetError, match=r"user_behavior.csv:3: unknown behaviour 'like'"):
        load_taobao(tmp_path)
    csv_path.write_text("user_id,item_id,behavior,timestamp\n1,2,pv,1511544070\n")
    with pytest.raises(DatasetError, match="category_id"):
        load_taobao(tmp_path)


def test_duplicates_are_dropped_and_arrays_encode(tmp_path: Path) -> None:
    (tmp_path / "hm").mkdir()
    (tmp_path / "hm" / "transactions.csv").write_text(
        "t_dat,customer_id,article_id,price,sales_channel_id\n"
        "2019-01-02,a,0123,0.1,1\n2019-01-02,a,0123,0.1,1\n2019-01-01,b,0000000456,0.2,2\n")
    events = load_hm(tmp_path)
    assert [(e.user, e.item) for e in events] == [("b", "0000000456"), ("a", "0000000123")]
    vocab = Vocabulary.build(events)
    arrays = InteractionArrays.encode(events, vocab)
    assert arrays.users.tolist() == [0, 1] and arrays.items.tolist() == [0, 1]
    assert arrays.behaviors.tolist() == [BEHAVIORS.index("purchase")] * 2
    assert np.all(np.diff(arrays.t) == 86400.0)
    with pytest.raises(DatasetError, match="vocabulary"):
        InteractionArrays.encode(events, Vocabulary(("b",), ("0000000456",)))
