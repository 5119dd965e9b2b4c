"""Item content for the fusion network offline: the product's feature store, row-aligned with
the evaluation vocabulary.

H&M is the one dataset with content (article image + ``prod_name``/``detail_desc`` text in
``hm/articles.csv``). The vocabulary's articles are imported with the product's own importer
(:func:`models.catalog_import.import_catalog`) and encoded with the product's own extractor
(:func:`models.feature_store.build_store`: EfficientNet-Lite0 ImageNet weights, the offline
pretrained backbone, and the packaged MiniLM BERT, Eq. 5–12), so the offline numbers measure the
features that serve. The store is cached under ``<cache>/hm-<hash of the item set>/`` and reused
by every later run over the same items.

Vocabulary items that ``articles.csv`` does not describe (about a third of the transaction
articles) have neither image nor text: their rows are zeros with ``present = False``, so the
network sees them as one featureless item; the tables report how many there are.
Taobao has no content at all (:func:`content_features` returns None).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from models.datasets import Vocabulary, data_dir
from models.fusion import ItemFeatures

log = logging.getLogger(__name__)
DEFAULT_CACHE = Path("var") / "eval"


def _store_dir(items: list[str], cache: Path) -> Path:
    digest = hashlib.sha1("\n".join(sorted(items)).encode()).hexdigest()[:12]
    return cache / f"hm-{digest}"


def hm_store(items: list[str], root: str | os.PathLike[str] | None = None,
             cache: str | os.PathLike[str] = DEFAULT_CACHE, progress: bool = True):
    """The feature store of the H&M articles among ``items`` (built once, then loaded)."""
    from models.catalog import save_catalog
    from models.catalog_import import import_catalog
    from models.feature_store import ExtractConfig, FeatureStore, build_store, resolve_store

    where = _store_dir(items, Path(cache))
    try:
        return FeatureStore.load(resolve_store(where / "features"))
    except FileNotFoundError:
        pass
    wanted = set(items)
    articles = [a for a in import_catalog("hm", data_dir(root)).items if a.item_id in wanted]
    if not articles:
        raise ValueError("none of the evaluated H&M articles is in hm/articles.csv")
    save_catalog(where / "catalog", articles)
    log.info("encoding %d H&M articles into %s", len(articles), where / "features")
    return build_store(where / "catalog", where / "features",
                       ExtractConfig(backbone="efficientnet_lite0", weights="imagenet"),
                       progress=progress)


def align(store_features: ItemFeatures, vocab: Vocabulary) -> tuple[ItemFeatures, torch.Tensor]:
    """``store_features`` re-ordered to the vocabulary (row k = item k); items the store lacks
    get zero rows and ``present = False``. Returns the aligned features and the ``known [N]``
    mask of the items the store has (the ones content recall may return)."""
    rows = store_features.index()
    n = vocab.n_items
    visual = torch.zeros(n, store_features.visual.shape[1])
    text = torch.zeros(n, store_features.text.shape[1])
    present = torch.zeros(n, dtype=torch.bool)
    known = torch.zeros(n, dtype=torch.bool)
    have = [(k, rows[item]) for k, item in enumerate(vocab.items) if item in rows]
    if have:
        dst = torch.tensor([k for k, _ in have])
        src = torch.tensor([r for _, r in have])
        visual[dst] = store_features.visual[src]
        text[dst] = store_features.text[src]
        present[dst] = store_features.present[src]
        known[dst] = True
    return ItemFeatures(list(vocab.items), visual, text, present), known


def content_features(dataset: str, vocab: Vocabulary,
                     root: str | os.PathLike[str] | None = None,
                     cache: str | os.PathLike[str] = DEFAULT_CACHE,
                     progress: bool = True) -> ItemContent | None:
    """Vocabulary-aligned image + text inputs of the fusion network, or None (no content)."""
    if dataset != "hm":
        return None
    store = hm_store(list(vocab.items), root, cache, progress)
    features, known = align(store.features(), vocab)
    return ItemContent(features, known, store.version)


@dataclass
class ItemContent:
    """Fusion-network inputs for every vocabulary item and which items have any content."""

    features: ItemFeatures
    known: torch.Tensor
    store_version: str

    def info(self) -> dict[str, int]:
        return {"content_items": int(self.known.sum()),
                "content_images": int(self.features.present.sum()),
                "content_missing": int((~self.known).sum())}
