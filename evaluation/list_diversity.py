"""Intra-list diversity of the replay's Top-5 lists: how unlike each other the five items are.

ILD@5 (Ziegler et al. 2005) is the mean dissimilarity d(i, j) over the pairs of a Top-5,
averaged over the shoppers; one dissimilarity per data set:

- **categories known** (Taobao item level: ``category_id`` of each item in the log; H&M:
  ``product_type_name`` of ``articles.csv``): d = 1 when the two items are of different
  categories, 0 when of the same; pairs with an item of unknown category are left out (most
  H&M transaction articles have no ``articles.csv`` row), as are lists with no such pair;
- **the items are categories** (Taobao category level) or nothing is known of them:
  d = 1 − cosine of the two items' shopper sets in the log before the cut (binary
  co-occurrence, ItemCF's similarity): 0 for two items always touched by the same shoppers,
  1 for two items no shopper touched both of.

Coverage, beside it, is the share of the log's items shown in anyone's Top-5.
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np

from models.datasets import Interaction, data_dir

#: d(i, j) in [0, 1], None when undefined for the pair
Dissimilarity = Callable[[str, str], float | None]


def category_dissimilarity(categories: Mapping[str, str]) -> Dissimilarity:
    """1 for different categories, 0 for the same, None when either is unknown."""
    def d(a: str, b: str) -> float | None:
        ca, cb = categories.get(a), categories.get(b)
        if ca is None or cb is None:
            return None
        return float(ca != cb)
    return d


def covisit_dissimilarity(events: Sequence[Interaction]) -> Dissimilarity:
    """1 − |U_i ∩ U_j| / sqrt(|U_i| · |U_j|) over the shoppers U of each item in ``events``;
    None for an item absent from them."""
    shoppers: dict[str, set[str]] = defaultdict(set)
    for e in events:
        shoppers[e.item].add(e.user)

    def d(a: str, b: str) -> float | None:
        ua, ub = shoppers.get(a), shoppers.get(b)
        if not ua or not ub:
            return None
        return 1.0 - len(ua & ub) / math.sqrt(len(ua) * len(ub))
    return d


def intra_list_diversity(lists: Mapping[str, Sequence[str]], users: Sequence[str],
                         d: Dissimilarity, k: int = 5) -> float:
    """Mean over shoppers of the mean ``d`` over the defined pairs of their Top-``k``; NaN when
    no list has a defined pair."""
    per_list = []
    for user in users:
        top = list(lists.get(user, ()))[:k]
        values = [v for a, b in combinations(top, 2) if (v := d(a, b)) is not None]
        if values:
            per_list.append(sum(values) / len(values))
    return float(np.mean(per_list)) if per_list else math.nan


def taobao_categories(path: str | os.PathLike[str]) -> dict[str, str]:
    """``item_id → category_id`` of a log in the Taobao layout."""
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return {row["item_id"]: row["category_id"] for row in csv.DictReader(handle)}


def hm_categories(root: str | os.PathLike[str] | None) -> dict[str, str]:
    """``article_id → product_type_name`` of ``hm/articles.csv`` (empty without the file)."""
    from models.catalog_import import import_catalog

    hm = data_dir(root) / "hm"
    if not (hm / "articles.csv").is_file():
        return {}
    return {a.item_id: a.category for a in import_catalog("hm", hm.parent).items}


def replay_dissimilarity(dataset: str, level: str, before: Sequence[Interaction],
                         root: str | os.PathLike[str] | None = None,
                         events_path: str | os.PathLike[str] | None = None,
                         ) -> tuple[Dissimilarity, str]:
    """The dissimilarity of a replay's data set (see the module docstring) and its name."""
    if dataset == "taobao" and level == "item":
        path = events_path or data_dir(root) / "taobao" / "user_behavior.csv"
        return (category_dissimilarity(taobao_categories(path)),
                "1 − same category_id (pairs of different categories)")
    if dataset == "hm" and events_path is None:
        categories = hm_categories(root)
        if categories:
            return (category_dissimilarity(categories),
                    "1 − same product_type_name (pairs of articles with an articles.csv row)")
    return (covisit_dissimilarity(before),
            "1 − cosine of the two items' shopper sets before T (co-visitation)")
