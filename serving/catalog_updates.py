"""New-item cold start online: ``catalog-updates`` → features → index → ranking.

Paper 000 §3.3.5 computes item features "offline" and looks them up online; a new product
would then stay invisible until the next offline run. Here a new (or changed) catalog record
arriving on ``catalog-updates`` (key = item id, value = UTF-8 JSON of a
:class:`~models.catalog.CatalogItem`) is onboarded while the rerank worker runs:

1. :func:`parse_catalog_update` validates the record (bad ones are logged with the reason and
   counted as ``invalid`` in ``stylestream_catalog_updates_total{outcome}``);
2. :meth:`ItemOnboarder.prepare` (CPU-heavy, run in a thread) encodes the items with the *same*
   extractor the feature store was built with (its ``meta.json``: backbone, weights, image size,
   text model, seed; Eq. 7 GAP and Eq. 10–11 ``T``) and fuses them (Eq. 13–18) with the network
   that fused the store: the serving checkpoint when a stage of the chain is built on it
   (:class:`~serving.scorer.FusesItems`), else the seeded untrained network of
   :func:`models.feature_store.build_store` (``fused_by = "untrained-seed-<n>"``); every stage
   that takes new items (:class:`~serving.scorer.AcceptsNewItems`) prepares them too (the
   paper-002 rule stage extends its catalog, visual vectors and category table);
3. :meth:`ItemOnboarder.apply` (cheap, on the event loop, between two refresh micro-batches)
   appends them to the FAISS index (content recall finds them) and applies the stages' prepared
   steps (the fusion scorer's ``add_items``, the rule stage's tables) — so they are recalled and
   ranked without a restart. The chain itself is never rebuilt or edited.

Without a feature store the items still join the rule stage's catalog: category, gender and
popularity rules need no features. A store fused by a checkpoint the worker does not serve
cannot be extended consistently; then (logged once) items join the rule catalog only.

Our reading where the design is silent: a record for an id that already exists *replaces* it
(features re-encoded, catalog entry overwritten); within one micro-batch the last record of an
id wins; ``image`` is relative to the catalog directory (or absolute inside it or one of its
image roots) and may not leave it: absolute paths elsewhere, ``..`` and symbolic links that lead
out are refused as invalid with the reason (:func:`models.catalog.resolve_image`); a missing
or unreadable image is not an error (the item is encoded like an item without a picture).
Records larger than the ``STYLESTREAM_MAX_MESSAGE_BYTES`` limit, item ids longer than
``STYLESTREAM_MAX_ID_LENGTH`` or with control characters, and values of the wrong type are
refused with their reason (``tests/test_fuzz_input.py``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from prometheus_client import Counter

from models.catalog import (
    CatalogItem,
    UnsafeImagePath,
    image_path_problem,
    image_roots,
    resolve_image,
)
from models.feature_store import Encoders, ExtractConfig, FeatureStore, encode_items
from models.fusion import FusionConfig, FusionRanker, ItemFeatures
from serving.chain import ScorerChain
from serving.scorer import NewItems
from streams.config import InputLimits
from streams.contract import DEFAULT_LIMITS

log = logging.getLogger(__name__)

CATALOG_UPDATES = Counter(
    "stylestream_catalog_updates_total",
    "catalog-updates records by outcome: applied, invalid (unreadable record), failed "
    "(valid record whose onboarding raised)", ["outcome"])
OUTCOMES = ("applied", "invalid", "failed")
for _outcome in OUTCOMES:
    CATALOG_UPDATES.labels(_outcome)  # export zeros from the start

REQUIRED = ("item_id", "title", "category", "group")
_OPTIONAL_TEXT = ("gender", "colour", "description")
_OPTIONAL_NULLABLE_TEXT = ("image", "store_id")


class CatalogRecordError(ValueError):
    """A catalog-updates record that cannot become a :class:`CatalogItem`; says why."""


def _short(value: object) -> str:
    """A bounded repr for messages (hostile values may be megabytes long)."""
    text = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def parse_catalog_update(key: bytes | None, value: bytes | None,
                         limits: InputLimits = DEFAULT_LIMITS) -> CatalogItem:
    """One ``catalog-updates`` record → :class:`CatalogItem`, or :class:`CatalogRecordError`.

    Required: ``item_id`` (string or integer), ``title``, ``category``, ``group`` (non-empty
    strings). Optional fields must have the types of :class:`CatalogItem`; unknown fields are
    ignored. A message key, when present, must equal the item id (the topic is keyed by it).
    Never raises anything else, whatever the bytes."""
    try:
        return _parse_catalog_update(key, value, limits)
    except CatalogRecordError:
        raise
    except Exception as exc:  # noqa: BLE001 - bad input must never stop the rerank worker
        raise CatalogRecordError(f"record could not be checked ({type(exc).__name__})") from None


def _parse_catalog_update(key: bytes | None, value: bytes | None,
                          limits: InputLimits) -> CatalogItem:
    if not value:
        raise CatalogRecordError("empty message value")
    if len(value) > limits.max_message_bytes or (key and len(key) > limits.max_message_bytes):
        raise CatalogRecordError(f"record has {len(value)} bytes, more than the "
                                 f"{limits.max_message_bytes} accepted")
    try:
        data = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CatalogRecordError(f"value is not UTF-8: {exc}") from exc
    except ValueError as exc:
        raise CatalogRecordError(f"value is not JSON: {exc}") from exc
    except RecursionError:
        raise CatalogRecordError("value is not JSON: it nests too deeply") from None
    if not isinstance(data, dict):
        raise CatalogRecordError(f"value must be a JSON object, got {type(data).__name__}")
    raw_id = data.get("item_id")
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        data["item_id"] = str(raw_id)
    for name in REQUIRED:
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise CatalogRecordError(f"field {name!r} must be a non-empty string, "
                                     f"got {_short(data.get(name))}")
    item_id = data["item_id"]
    if len(item_id) > limits.max_id_length or not item_id.isprintable():
        raise CatalogRecordError(f"item_id {_short(item_id)} is longer than "
                                 f"{limits.max_id_length} characters or has control characters")
    for name in _OPTIONAL_TEXT:
        if name in data and not isinstance(data[name], str):
            raise CatalogRecordError(f"field {name!r} must be a string, got "
                                     f"{_short(data[name])}")
    for name in _OPTIONAL_NULLABLE_TEXT:
        if data.get(name) is not None and not isinstance(data[name], str):
            raise CatalogRecordError(f"field {name!r} must be a string or null, "
                                     f"got {_short(data[name])}")
    if data.get("image") is not None:
        problem = image_path_problem(data["image"], allow_absolute=True)
        if problem:
            raise CatalogRecordError(problem)
    price = data.get("price")
    if price is not None and (isinstance(price, bool) or not isinstance(price, int | float)
                              or isinstance(price, float) and not math.isfinite(price)
                              or not 0 <= price <= 1e15):
        raise CatalogRecordError(f"field 'price' must be a finite number >= 0 or null, "
                                 f"got {_short(price)}")
    extra = data.get("extra", {})
    if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
        raise CatalogRecordError(f"field 'extra' must map strings to strings, got "
                                 f"{_short(extra)}")
    if key is not None:
        try:
            key_id = key.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CatalogRecordError(f"message key is not UTF-8: {exc}") from exc
        if key_id != item_id:
            raise CatalogRecordError(f"message key {_short(key_id)} differs from item_id "
                                     f"{_short(item_id)}")
    if isinstance(price, int):
        data["price"] = float(price)
    return CatalogItem.from_dict(data)


def read_updates(records: Iterable[tuple[bytes | None, bytes | None]],
                 limits: InputLimits = DEFAULT_LIMITS,
                 catalog_dir: str | Path | None = None) -> list[CatalogItem]:
    """The valid items of a micro-batch of (key, value) records, last record per id winning;
    invalid records are logged with their reason and counted. With ``catalog_dir``, an image
    path outside it and its image roots (absolute, or through a symbolic link) is refused."""
    items: dict[str, CatalogItem] = {}
    for key, value in records:
        try:
            item = parse_catalog_update(key, value, limits)
            if catalog_dir is not None and item.image:
                try:
                    resolve_image(catalog_dir, item.image, image_roots(catalog_dir))
                except UnsafeImagePath as exc:
                    raise CatalogRecordError(str(exc)) from None
        except CatalogRecordError as exc:
            log.warning("catalog update skipped (key %s): %s", _short(key), exc)
            CATALOG_UPDATES.labels("invalid").inc()
            continue
        items.pop(item.item_id, None)
        items[item.item_id] = item
    return list(items.values())


def extract_config(meta: Mapping[str, object]) -> ExtractConfig:
    """The :class:`ExtractConfig` a feature store was built with (its ``meta.json``)."""
    known = {f.name for f in fields(ExtractConfig)}
    return ExtractConfig(**{k: v for k, v in meta.items() if k in known})


@dataclass
class Prepared:
    """Encoded new items and the chain's prepared steps, ready for
    :meth:`ItemOnboarder.apply`."""

    items: list[CatalogItem]
    features: ItemFeatures | None = None
    fused: np.ndarray | None = None
    steps: list[Callable[[], None]] = field(default_factory=list)


class ItemOnboarder:
    """Makes new catalog items recallable and rankable in a running worker (module docstring).

    ``store``: the worker's feature store (its FAISS index is the content recall index), or
    ``None``; ``catalog_dir``: where relative image paths live (default: the store's
    ``meta["catalog"]``); ``encoders``: already loaded encoders (default: loaded lazily from the
    store's meta on the first new item). :meth:`prepare` may run in a worker thread while the
    event loop serves refreshes; :meth:`apply` must run on the loop (it mutates what
    :meth:`RerankWorker.rank` reads).
    """

    def __init__(self, store: FeatureStore | None = None, catalog_dir: str | Path | None = None,
                 encoders: Encoders | None = None, limits: InputLimits | None = None) -> None:
        self.store = store
        self.limits = limits or InputLimits()
        catalog = catalog_dir or (store.meta.get("catalog") if store is not None else None)
        self.catalog_dir = Path(str(catalog)) if catalog else None
        self._encoders = encoders
        self._untrained: FusionRanker | None = None
        self._lock = threading.Lock()
        self._warned = False

    def read(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> list[CatalogItem]:
        """:func:`read_updates` under this worker's limits and catalog directory."""
        return read_updates(records, self.limits, self.catalog_dir)

    # ---- encoding (thread) -----------------------------------------------------------------
    def encoders(self) -> Encoders:
        """The store's encoders, loaded on first use."""
        with self._lock:
            if self._encoders is None:
                assert self.store is not None
                config = extract_config(self.store.meta)
                log.info("loading encoders for new items: %s", config)
                self._encoders = Encoders.load(config)
            return self._encoders

    def _fuser(self, chain: ScorerChain) -> FusionRanker | None:
        """The network whose fused vectors fill the store (see the module docstring)."""
        assert self.store is not None
        served = chain.item_fuser()
        if served is not None:
            return served
        fused_by = str(self.store.meta.get("fused_by", ""))
        seed = self.store.meta.get("seed", 0)
        if fused_by != f"untrained-seed-{seed}":
            if not self._warned:
                log.warning("feature store %s was fused by %r, which this worker does not "
                            "serve (start it with that --checkpoint): new items join the rule "
                            "catalog but not content recall", self.store.version, fused_by)
                self._warned = True
            return None
        with self._lock:
            if self._untrained is None:
                # build_store: torch.manual_seed(seed), then a default-sized FusionRanker
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(seed))
                    self._untrained = FusionRanker(FusionConfig(
                        visual_in=self.store.visual.shape[1],
                        text_in=self.store.text.shape[1])).eval()
            return self._untrained

    @torch.no_grad()
    def prepare(self, items: list[CatalogItem], chain: ScorerChain) -> Prepared:
        """Encode and fuse ``items`` and prepare the chain's stages for them: the heavy part,
        which only reads the store and the chain (safe in a thread while the loop serves)."""
        prepared = Prepared(list(items))
        fuser = self._fuser(chain) if self.store is not None and items else None
        if fuser is not None:
            features, stats = encode_items(items, self.catalog_dir or Path("."),
                                           self.encoders())
            if stats.missing_images:
                log.info("%d of %d new items have no readable image", stats.missing_images,
                         len(items))
            device = next(fuser.parameters()).device
            prepared.features = features
            prepared.fused = fuser.fuse(features.visual.to(device), features.text.to(device),
                                        features.present.to(device)).cpu().numpy()
        if items:
            prepared.steps = chain.onboarding_steps(NewItems(prepared.items, prepared.features))
        return prepared

    # ---- applying (event loop) -------------------------------------------------------------
    def apply(self, prepared: Prepared) -> None:
        """Add prepared items to the index and run the stages' prepared steps (cheap; on the
        event loop, between two micro-batches)."""
        if prepared.features is not None and prepared.fused is not None:
            assert self.store is not None
            self.store.add_items(prepared.features.ids, prepared.fused, prepared.features)
        for step in prepared.steps:
            step()
        CATALOG_UPDATES.labels("applied").inc(len(prepared.items))

    def onboard(self, items: list[CatalogItem], chain: ScorerChain) -> None:
        """:meth:`prepare` then :meth:`apply`, in the calling thread (for scripts and tests)."""
        self.apply(self.prepare(items, chain))

    @staticmethod
    def count_failed(n: int) -> None:
        CATALOG_UPDATES.labels("failed").inc(n)
