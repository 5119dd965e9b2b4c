"""Paper 002 ranking rules as pure functions: category similarity (§3.4), popularity and
trendiness (§3.3, §3.5), gender compatibility (§4.2) and store distance (§3.6)."""

from models.gender import gender_compatible, infer_gender
from models.popularity import norm_pop
from serving.rules.category import category_similarity, semantic_group
from serving.rules.distance import distance_penalty, haversine_km, within_distance
from serving.rules.trend import popularity_modulation, shopper_trendiness

__all__ = ["category_similarity", "semantic_group", "distance_penalty", "haversine_km",
           "within_distance", "gender_compatible", "infer_gender", "norm_pop",
           "popularity_modulation", "shopper_trendiness"]
