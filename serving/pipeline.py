"""Assembles a rerank worker from settings: store, scorer chain, content index."""

from __future__ import annotations

from serving.decay_scorer import DecayCovisScorer
from serving.worker import RerankWorker
from streams.config import Settings
from streams.store import ScoreStore


def load_titles(catalog_dir: str | None) -> dict[str, str]:
    if not catalog_dir:
        return {}
    from models.catalog import iter_catalog

    return {item.item_id: item.title for item in iter_catalog(catalog_dir)}


def build_worker(settings: Settings, catalog_dir: str | None = None,
                 max_batch: int = 64) -> RerankWorker:
    store = ScoreStore.from_url(settings.redis, settings.decay)
    scorer = DecayCovisScorer(load_titles(catalog_dir))
    return RerankWorker(settings, store, scorer, max_batch=max_batch)
