"""Paper 002's relevance score as a :class:`~serving.scorer.Scorer` (§3.5, §3.6, §4.2).

For a shopper u and a candidate item c:

    relevance(u, c) = max_a [ α · cos(v_a, v_c) + γ · CatSim(a, c) ]          (visual + category)
                    + β · (1 − |τ_u − NormPop_c|^p)                            (popularity fit)
                    + δ · base_c                                               (wrapped scorer)
                    − ω · min(dist(u, store_c) / scale, 1)                     (store distance)

- The anchors ``a`` are the shopper's strongest items (highest decayed score S(u,a,T), at most
  ``max_anchors``). The paper ranks candidates "per purchase" (§3.5, §4.2); serving one list per
  shopper, we take for each candidate its best anchor — the union of the per-purchase lists, in
  the order of their scores. The offline study (:mod:`evaluation.trend`) passes one purchase
  as the only anchor, which is the paper's setting exactly.
- Visual similarity is the cosine of the item vectors given (any ``{item_id: vector}``; a missing
  vector contributes 0). Category similarity is §3.4 (:mod:`serving.rules.category`); the
  popularity fit is :func:`serving.rules.trend.popularity_modulation`.
- τ_u is the shopper's trendiness (``ShopperContext.trendiness`` when set, e.g. by a simulator;
  else estimated from the shopper's scores, :func:`serving.rules.trend.shopper_trendiness`);
  NormPop is min-max over the decayed counts of the request's popularity snapshot.
- ``base_c``: an optional wrapped scorer's score (e.g. the fusion network), min-max normalised
  over the shopper's candidates so that its scale does not matter; its reasons are kept.
- Filters (§3.5, §4.2, §3.6): purchased items are excluded, candidates must be gender compatible
  with the shopper (given, or inferred from the anchors), and optionally lie within ``max_km``.
  Filtered candidates are *left out* of the returned list (so fewer items may come back than went
  in); everything kept gets one :class:`ScoredItem`.

The paper's default weights did not survive in its text; ours (α = 0.5, β = 0.3, γ = 0.2, p = 2
as in §4.2) are documented in :class:`RuleConfig`. Setting a weight to 0 (or its ``use_*`` flag to
False) is the ablation of §4.5.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from models.behaviors import BEHAVIOR_PAST
from models.catalog import CatalogItem
from models.gender import gender_compatible, infer_gender
from models.popularity import norm_pop
from serving.decay_scorer import history_reason
from serving.rules.category import category_similarity
from serving.rules.distance import distance_penalty, haversine_km, within_distance
from serving.rules.trend import popularity_modulation, shopper_trendiness
from serving.scorer import NewItems, RerankRequest, ScoredItem, Scorer, ShopperContext


@dataclass(frozen=True)
class RuleConfig:
    """Weights and switches of every stage (defaults documented in the module docstring).

    ``alpha``/``beta``/``gamma``: visual, popularity-modulation and category weights (§3.5).
    ``delta``: weight of the wrapped base scorer. ``p``: even popularity exponent (§4.2: 2).
    ``max_km``: drop candidates farther than this from the shopper (§3.6), ``None`` = no filter;
    ``distance_weight``/``distance_scale_km``: optional linear penalty. ``max_anchors``: how many
    of the shopper's strongest items act as anchors. Reason thresholds: ``trending_at`` (NormPop),
    ``style_fit_at`` (modulation), ``similar_image_at`` (cosine); reasons are written for the
    ``reasons_top`` most relevant candidates of a shopper only.
    """

    alpha: float = 0.5
    beta: float = 0.3
    gamma: float = 0.2
    delta: float = 0.0
    p: int = 2
    use_visual: bool = True
    use_popularity: bool = True
    use_category: bool = True
    gender_filter: bool = True
    exclude_purchased: bool = True
    max_km: float | None = None
    distance_weight: float = 0.0
    distance_scale_km: float = 20.0
    max_anchors: int = 5
    trending_at: float = 0.8
    style_fit_at: float = 0.9
    similar_image_at: float = 0.8
    reasons_top: int = 20

    def __post_init__(self) -> None:
        if self.p <= 0 or self.p % 2:
            raise ValueError(f"p must be a positive even integer, got {self.p}")
        if min(self.alpha, self.beta, self.gamma, self.delta, self.distance_weight) < 0:
            raise ValueError("rule weights must be >= 0")
        if self.max_anchors < 1 or self.reasons_top < 0:
            raise ValueError("max_anchors must be >= 1 and reasons_top >= 0")
        if self.max_km is not None and self.max_km < 0:
            raise ValueError("max_km must be >= 0")


@dataclass
class RuleTerms:
    """Every term of one candidate's relevance (kept for evaluation and reasons)."""

    item_id: str
    relevance: float = 0.0
    visual: float = 0.0
    category: float = 0.0
    popularity: float = 0.0
    normpop: float = 0.0
    base: float = 0.0
    distance_km: float | None = None
    anchor: str | None = None
    reasons: list[str] = field(default_factory=list)


class RuleScorer:
    """The paper-002 ranker (module docstring); implements :class:`serving.scorer.Scorer`."""

    reads_popularity = True  # NormPop and trendiness: the worker's popularity snapshot

    def __init__(self, catalog: Mapping[str, CatalogItem] | list[CatalogItem],
                 vectors: Mapping[str, np.ndarray] | None = None,
                 stores: Mapping[str, tuple[float, float]] | None = None,
                 config: RuleConfig | None = None, base: Scorer | None = None) -> None:
        self.catalog = dict(catalog) if isinstance(catalog, Mapping) else {
            item.item_id: item for item in catalog}
        self.config = config or RuleConfig()
        self.stores = dict(stores or {})
        self.base = base
        self._row, self._unit = _unit_rows(vectors or {})
        self._catkey, self._catmat = _category_tables(self.catalog)

    @property
    def version(self) -> str:
        """``rules-1``, then the wrapped scorer's version (it follows that one's reloads)."""
        return "rules-1" + (f"+{self.base.version}" if self.base is not None else "")

    def prepare_items(self, new: NewItems) -> Callable[[], None]:
        """New catalog items (and their visual vectors, when encoded) for the catalog, the
        unit vectors and the category table; an item already known is replaced. The tables
        are built here (any thread); the returned step swaps them in."""
        catalog = {**self.catalog, **{item.item_id: item for item in new.items}}
        rows, unit = self._row, self._unit
        added_rows, added = _unit_rows({} if new.features is None else dict(zip(
            new.features.ids, new.features.visual.numpy(), strict=True)))
        if added_rows:
            if rows and added.shape[1] != unit.shape[1]:
                raise ValueError(f"new item vectors have {added.shape[1]} dimensions, the rule "
                                 f"stage's {unit.shape[1]}")
            kept = [i for i in rows if i not in added_rows]
            unit = (np.concatenate([unit[[rows[i] for i in kept]], added]) if kept
                    else added)
            rows = {item_id: k for k, item_id in enumerate([*kept, *added_rows])}
        catkey, catmat = _category_tables(catalog)

        def swap() -> None:
            self.catalog, self._row, self._unit = catalog, rows, unit
            self._catkey, self._catmat = catkey, catmat
        return swap

    # ---- single terms ---------------------------------------------------------------------

    def _title(self, item_id: str) -> str:
        item = self.catalog.get(item_id)
        return item.title if item is not None and item.title else item_id

    def _visual(self, anchors: list[str], items: list[str]) -> np.ndarray:
        """Cosine similarities, shape (anchors, items); 0 where a vector is missing."""
        out = np.zeros((len(anchors), len(items)), dtype=np.float32)
        if not self._row:
            return out
        a_rows = [(k, self._row[a]) for k, a in enumerate(anchors) if a in self._row]
        i_rows = [(k, self._row[i]) for k, i in enumerate(items) if i in self._row]
        if a_rows and i_rows:
            sims = self._unit[[r for _, r in a_rows]] @ self._unit[[r for _, r in i_rows]].T
            out[np.ix_([k for k, _ in a_rows], [k for k, _ in i_rows])] = sims
        return out

    # ---- one shopper ----------------------------------------------------------------------
    def anchors(self, shopper: ShopperContext) -> list[str]:
        """The shopper's strongest catalog items (at most ``max_anchors``)."""
        ranked = sorted((i for i in shopper.scores if i in self.catalog),
                        key=lambda i: (-shopper.scores[i], i))
        return ranked[: self.config.max_anchors]

    def _store_distances(self, shopper: ShopperContext) -> dict[str, float]:
        """Distance from the shopper to every store (a handful: computed once per shopper)."""
        if shopper.lat is None or shopper.lon is None:
            return {}
        return {sid: haversine_km(shopper.lat, shopper.lon, lat, lon)
                for sid, (lat, lon) in self.stores.items()}

    def terms(self, shopper: ShopperContext, item_ids: list[str],
              normpop: Mapping[str, float],
              base_scores: Mapping[str, tuple[float, list[str]]] | None = None
              ) -> list[RuleTerms]:
        """Relevance terms of the kept candidates (filters applied), in input order;
        ``normpop``: NormPop of the items (:func:`models.popularity.norm_pop`).

        The terms are computed as arrays (anchors × candidates); reasons are written for the
        ``reasons_top`` most relevant candidates only (the worker publishes five)."""
        cfg = self.config
        anchors = self.anchors(shopper)
        gender = shopper.gender or infer_gender(self.catalog[a].gender for a in anchors)
        tau = shopper.trendiness if shopper.trendiness is not None else shopper_trendiness(
            shopper.scores, normpop)
        to_store = self._store_distances(shopper)
        kept: list[str] = []
        distances: list[float | None] = []
        for item_id in item_ids:
            item = self.catalog.get(item_id)
            if item is None:
                continue
            if cfg.exclude_purchased and item_id in shopper.purchased:
                continue
            if cfg.gender_filter and not gender_compatible(gender, item.gender):
                continue
            distance = to_store.get(item.store_id or "")
            if not within_distance(distance, cfg.max_km):
                continue
            kept.append(item_id)
            distances.append(distance)
        if not kept:
            return []
        alpha = cfg.alpha if cfg.use_visual else 0.0
        gamma = cfg.gamma if cfg.use_category else 0.0
        beta = cfg.beta if cfg.use_popularity else 0.0
        n = len(kept)
        visual = np.zeros(n)
        category = np.zeros(n)
        best_anchor: list[str | None] = [None] * n
        if anchors:
            vis = self._visual(anchors, kept).astype(np.float64)
            cat = self._catmat[np.ix_([self._catkey[a] for a in anchors],
                                      [self._catkey[i] for i in kept])]
            best = np.argmax(alpha * vis + gamma * cat, axis=0)  # first best anchor on ties
            cols = np.arange(n)
            visual, category = vis[best, cols], cat[best, cols]
            best_anchor = [anchors[b] for b in best]
        pop = np.array([normpop.get(i, 0.0) for i in kept])
        modulation = popularity_modulation(tau, pop, cfg.p)
        base = np.array([(base_scores or {}).get(i, (0.0, []))[0] for i in kept])
        penalty = (np.array([distance_penalty(d, cfg.distance_scale_km) for d in distances])
                   if cfg.distance_weight > 0 else np.zeros(n))
        relevance = (alpha * visual + gamma * category + beta * modulation + cfg.delta * base
                     - cfg.distance_weight * penalty)
        out = [RuleTerms(item_id, relevance=float(relevance[k]), visual=float(visual[k]),
                         category=float(category[k]), popularity=float(modulation[k]),
                         normpop=float(pop[k]), base=float(base[k]), distance_km=distances[k],
                         anchor=best_anchor[k])
               for k, item_id in enumerate(kept)]
        for k in np.argsort(-relevance, kind="stable")[: cfg.reasons_top]:
            t = out[k]
            base_reasons = (base_scores or {}).get(t.item_id, (0.0, []))[1]
            t.reasons = self._reasons(shopper, t, alpha, beta, gamma, base_reasons)
        return out

    def _reasons(self, shopper: ShopperContext, t: RuleTerms, alpha: float, beta: float,
                 gamma: float, base_reasons: list[str]) -> list[str]:
        cfg = self.config
        reasons = []
        if t.item_id in shopper.scores:  # the shopper's own item: say so, not "like itself"
            reasons.append(history_reason(shopper, t.item_id))
        if t.anchor is not None and t.anchor != t.item_id:
            title = self._title(t.anchor)
            did = BEHAVIOR_PAST.get(shopper.behaviors.get(t.anchor, ""), "")
            suffix = f" you {did}" if did else ""
            if alpha > 0 and t.visual >= cfg.similar_image_at:
                reasons.append(f"similar image to {title}{suffix}")
            if gamma > 0 and t.category >= 1.0:
                reasons.append(f"same category as {title}")
            elif gamma > 0 and t.category >= 0.8:
                reasons.append(f"same kind of item as {title}")
        if beta > 0 and t.normpop >= cfg.trending_at:
            reasons.append("trending")
        if beta > 0 and t.popularity >= cfg.style_fit_at:
            reasons.append("matches your style (popularity fit)")
        if t.distance_km is not None:
            reasons.append(f"store {t.distance_km:.1f} km away")
        if cfg.delta > 0:
            reasons.extend(r for r in base_reasons if r not in reasons)
        return reasons

    # ---- the Scorer interface -------------------------------------------------------------
    def _base_scores(self, request: RerankRequest) -> list[dict[str, tuple[float, list[str]]]]:
        if self.base is None or self.config.delta <= 0:
            return [{} for _ in request.shoppers]
        out = []
        for scored in self.base.score(request):
            values = [s.score for s in scored]
            low, high = (min(values), max(values)) if values else (0.0, 0.0)
            span = high - low
            out.append({s.item_id: ((s.score - low) / span if span > 0 else 1.0, s.reasons)
                        for s in scored})
        return out

    def score(self, request: RerankRequest) -> list[list[ScoredItem]]:
        normpop = norm_pop(request.popularity.values)
        bases = self._base_scores(request)
        return [[ScoredItem(t.item_id, t.relevance, t.reasons)
                 for t in self.terms(shopper, [c.item_id for c in cands], normpop, base)]
                for shopper, cands, base in zip(request.shoppers, request.candidates, bases,
                                                strict=True)]


def _unit_rows(vectors: Mapping[str, np.ndarray]) -> tuple[dict[str, int], np.ndarray]:
    """Row per item id and the L2-normalised vectors (items with an empty vector left out)."""
    ids = [i for i in vectors if np.size(vectors[i])]
    if not ids:
        return {}, np.zeros((0, 0), dtype=np.float32)
    rows = [np.asarray(vectors[i], dtype=np.float32).ravel() for i in ids]
    if len({r.size for r in rows}) > 1:
        raise ValueError("item vectors must all have the same length, got sizes "
                         f"{sorted({r.size for r in rows})}")
    matrix = np.stack(rows)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return {item_id: k for k, item_id in enumerate(ids)}, matrix / np.where(norms > 0, norms, 1.0)


def _category_tables(catalog: Mapping[str, CatalogItem]
                     ) -> tuple[dict[str, int], np.ndarray]:
    """§3.4 similarity between every pair of distinct (category, group) of the catalog, and
    each item's row in it."""
    keys = sorted({(i.category, i.group) for i in catalog.values()})
    index = {key: k for k, key in enumerate(keys)}
    catkey = {i: index[(item.category, item.group)] for i, item in catalog.items()}
    catmat = np.array([[category_similarity(ca, cb, ga, gb) for cb, gb in keys]
                       for ca, ga in keys], dtype=np.float64).reshape(len(keys), len(keys))
    return catkey, catmat
