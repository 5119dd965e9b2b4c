"""Paper 002 rules: category matrix (§3.4), trendiness and modulation (§3.3, §3.5), gender
compatibility (§4.2), Haversine distance (§3.6)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from models.demo_catalog import KINDS
from models.gender import gender_compatible, infer_gender
from models.popularity import norm_pop
from serving.rules.category import (
    GROUP_SIMILARITY,
    GROUPS,
    category_similarity,
    semantic_group,
)
from serving.rules.distance import distance_penalty, haversine_km, within_distance
from serving.rules.trend import popularity_modulation, shopper_trendiness


def test_group_matrix_symmetric_and_in_range() -> None:
    for a, b in itertools.product(GROUPS, GROUPS):
        value = GROUP_SIMILARITY[a][b]
        assert value == GROUP_SIMILARITY[b][a]
        if a == b:
            assert value == 0.8
        else:
            assert 0.1 <= value <= 0.4


def test_category_levels_and_the_papers_example() -> None:
    assert category_similarity("Tshirts", "Tshirts") == 1.0
    assert category_similarity("Tshirts", "Shirts") == 0.8
    # §3.4: a Cardigan buyer gets a Sweater over a Skirt
    assert category_similarity("Cardigan", "Sweater") > category_similarity("Cardigan", "Skirt")
    assert 0.1 <= category_similarity("Jeans", "Handbags") <= 0.4
    for a, b in [("Jeans", "Caps"), ("Dress", "Sneakers"), ("Watches", "Bra")]:
        assert category_similarity(a, b) == category_similarity(b, a)


def test_every_demo_category_has_a_group() -> None:
    groups = {k.category: semantic_group(k.category, k.group) for k in KINDS}
    assert "Other" not in groups.values()
    assert groups["Jeans"] == groups["Trousers"] == groups["Skirts"] == "Bottomwear"


def test_unknown_category_falls_back_to_coarse_group_then_keywords() -> None:
    assert semantic_group("Mystery Thing", "Garment Lower body") == "Bottomwear"
    assert semantic_group("Denim jacket deluxe") == "Outerwear"
    assert semantic_group("zzz") == "Other"


def test_norm_pop_min_max() -> None:
    assert norm_pop({"a": 2.0, "b": 4.0, "c": 3.0}) == {"a": 0.0, "b": 1.0, "c": 0.5}
    assert norm_pop({"a": 5.0, "b": 5.0}) == {"a": 0.0, "b": 0.0}
    assert norm_pop({}) == {}


def test_trendiness_moves_as_choices_move() -> None:
    pop = norm_pop({"hit": 100.0, "mid": 50.0, "niche": 0.0})
    niche_shopper = shopper_trendiness({"niche": 10.0, "mid": 1.0}, pop)
    assert niche_shopper < 0.1
    after = shopper_trendiness({"niche": 10.0, "mid": 1.0, "hit": 30.0}, pop)
    assert after > 0.6 > niche_shopper
    assert shopper_trendiness({}, pop) == 0.5


def test_popularity_modulation_prefers_matching_popularity() -> None:
    assert popularity_modulation(0.9, 0.9) == 1.0
    assert popularity_modulation(0.9, 1.0) > popularity_modulation(0.9, 0.2)
    assert popularity_modulation(0.0, 1.0) == 0.0
    # a larger even exponent tolerates small differences (§3.5)
    assert popularity_modulation(0.5, 0.7, p=4) > popularity_modulation(0.5, 0.7, p=2)
    with pytest.raises(ValueError, match="even"):
        popularity_modulation(0.5, 0.5, p=3)


def test_popularity_modulation_over_arrays_as_the_rule_stage_calls_it() -> None:
    """The rule stage passes every candidate's NormPop at once (an array).

    Catches: the array form drifting from §3.5's ``1 − |τ − NormPop|^p`` (a lost absolute
    value with odd powers, a wrong exponent, a clipped or rescaled result)."""
    pops = np.array([0.0, 0.25, 0.5, 1.0])
    assert popularity_modulation(0.5, pops).tolist() == pytest.approx([0.75, 0.9375, 1.0, 0.75])
    assert popularity_modulation(0.5, pops, p=4).tolist() == pytest.approx(
        [0.9375, 0.99609375, 1.0, 0.9375])


def test_gender_compatibility() -> None:
    assert gender_compatible("Men", "Men") and gender_compatible("Men", "Unisex")
    assert not gender_compatible("Men", "Women") and not gender_compatible("Women", "Boys")
    assert gender_compatible("Women", "Girls") and gender_compatible(None, "Women")
    assert infer_gender(["Women", "Unisex", "Women", "Men"]) == "Women"
    assert infer_gender(["Unisex"]) is None and infer_gender([]) is None


def test_haversine_known_distances() -> None:
    paris, london = (48.8566, 2.3522), (51.5074, -0.1278)
    assert haversine_km(*paris, *london) == pytest.approx(343.5, abs=0.5)
    assert haversine_km(*paris, *paris) == 0.0
    # a quarter of a great circle along the equator
    assert haversine_km(0, 0, 0, 90) == pytest.approx(math.pi / 2 * 6371.0, rel=1e-9)
    assert haversine_km(40.7128, -74.0060, 34.0522, -118.2437) == pytest.approx(3936, abs=5)
    with pytest.raises(ValueError, match="lat1"):
        haversine_km(91, 0, 0, 0)


def test_distance_filter_and_penalty() -> None:
    assert within_distance(3.0, 5.0) and not within_distance(6.0, 5.0)
    assert within_distance(None, 5.0) and within_distance(100.0, None)
    assert distance_penalty(10.0, 20.0) == 0.5 and distance_penalty(50.0, 20.0) == 1.0
    assert distance_penalty(None) == 0.0
